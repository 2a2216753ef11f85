// The two-tower recall model (docs/architecture.md, "One batch", steps 5-7).
//   Item tower: sharded item-id embedding + pooled category embedding + projected content vector,
//               summed (and L2-normalised under cosine scores).
//   User tower: a causal pre-norm Transformer over the item-tower outputs of the history, with
//               learned positions, time-gap buckets and context (the hour and day of each event
//               and of the request, and the gap to it); one vector per position (L2-normalised
//               under cosine scores).
// Embedding tables live in a ShardedEmbeddingCollection (sparse optimizer, row gradients sent to
// their owners); dense parameters are replicated (identical at start, gradients all-reduced by the
// trainer). Tensor code is device-agnostic: everything lives on the communicator's device.
// Not thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "model/history.h"
#include "sharding/embedding_collection.h"
#include "sharding/planner.h"

namespace shardrec {

struct ModelConfig {
  int64_t dim = 64;
  int64_t blocks = 2;
  int64_t heads = 1;
  int64_t max_len = 50;
  double dropout = 0.2;
  int64_t time_buckets = 16;  // 0 = off (also off when the data has no timestamps)
  // Context (also off when the data has no timestamps): hour of day and day of week of each event
  // and of the request, and the gap from the last event to the request (model/history.h).
  bool context = true;
  bool use_categories = true;
  bool use_content = true;
  OptimizerConfig embedding_optimizer{.type = OptimizerType::kRowWiseAdagrad, .lr = 0.05};
  std::string sharding = "auto";  // auto (planner) or a ShardingType name for every table
  // Position embeddings counted from the newest event (the last event of every history has the same
  // position, as left padding gives) or from the oldest.
  bool positions_from_newest = false;
  // cosine: item and user vectors are L2-normalised (scores in [-1, 1], divided by the loss's
  // temperature); dot: raw inner products, so a vector's norm can carry an item's popularity.
  bool cosine = true;
  // Separate input vectors: the user tower reads items through a second id table ("item_input_id")
  // while scores use the first, so an item's input vector can sit near its successors' output
  // vectors (tied: one table for both). Categories and content feed both sides.
  bool separate_input_vectors = false;
  // Id dropout (training only, and only when the item tower has categories or content): each
  // distinct item of a step loses its id vector with this probability, so the content path learns
  // to stand on its own and can serve items that have no trained id row (cold start).
  double id_dropout = 0;
  // How eval, export and query serve an item without a trained id row (a cold or newly added item):
  // false: from its content path alone; true: its id rows imputed from its nearest trained items by
  // content (ImputeUntrainedIdRows), which puts it on the trained items' scale.
  bool impute_untrained = false;

  HistoryFeatures history_features() const { return {.time_buckets = time_buckets, .context = context}; }
};

// The item tower's vectors for a set of items: `output` (what scores are taken against) and `input`
// (what the user tower reads). They are the same vectors unless the model has separate input vectors.
struct ItemVectors {
  at::Tensor output;  // [n_out x dim], row i the item output_ids[i]
  at::Tensor input;   // [n_in x dim], row i the item input_ids[i]
  // [n_out x dim], only when asked for: the output vectors without the id rows (categories +
  // content, normalised under cosine scores), as an item without a trained id row is served.
  at::Tensor content;
};

// What the item tower knows about the catalogue (on every rank; small next to the id table).
struct ItemCatalog {
  int64_t num_items = 0;
  int64_t num_categories = 0;           // 0 = none
  std::vector<int64_t> category_offsets;  // CSR [I+1]
  std::vector<int64_t> category_values;
  at::Tensor content;                   // float [I x D] or undefined
  // Where the catalogue came from (empty for one built in code): the dataset file and its item-id
  // fingerprint (io/dataset.h). Checkpoints record them, so rows are never loaded into another id
  // space unnoticed.
  std::string data;
  std::string item_ids_fingerprint;
};

// Parameters of the dense tower (user tower, position, time, context and content layers).
int64_t DenseParameterCount(const ModelConfig& config, int64_t content_dim);

// The item tower's embedding tables (item ids; categories when the catalogue has them and the
// config uses them): what the planner places.
std::vector<TableSpec> ItemTowerTables(const ModelConfig& config, const ItemCatalog& catalog);
// COLLECTIVE. Rank 0 plans the item tower's tables (config.sharding pins a type for every table;
// "auto" lets the planner choose within `options`' budget), and every rank gets its plan.
// options.world_size is taken from the communicator.
ShardingPlan PlanItemTables(const ModelConfig& config, const ItemCatalog& catalog, Communicator& comm,
                            PlannerOptions options = {});

// Throws UserError naming the flag of a value out of range (--dim, --heads, --dropout, ...).
void CheckModelConfig(const ModelConfig& config);

class TwoTowerModel {
 public:
  // Collective in that every rank must pass the same plan (from PlanItemTables). Dense parameters
  // are initialised from `seed` and broadcast from rank 0 so every rank starts identical.
  TwoTowerModel(const ModelConfig& config, const ItemCatalog& catalog, const ShardingPlan& plan, Communicator* comm,
                uint64_t seed);
  ~TwoTowerModel();

  // COLLECTIVE. Item-tower vectors [n x dim] for ids already sorted and distinct (no deduplication pass): output
  // vectors only (the export's item vectors).
  at::Tensor EncodeDistinctItems(const at::Tensor& sorted_ids);
  // COLLECTIVE. Output vectors of `output_ids` and input vectors of `input_ids` (each sorted and
  // distinct; either may be empty) in one lookup; every row looked up receives a gradient.
  // with_content (and a content path): also ItemVectors::content, differentiable like the others.
  ItemVectors EncodeItemVectors(const at::Tensor& output_ids, const at::Tensor& input_ids, bool with_content = false);

  // Local. The user tower over histories whose items index rows of `input_vectors` (an [n x dim]
  // tensor of ItemVectors::input: the catalogue's, or the rows a step encoded). Returns one vector
  // per position [B x W x dim] (all_positions) or the vector after each history's last event
  // [B x dim] (a history of length 0 gives the vector of its first position). Histories are at
  // most max_len events wide.
  at::Tensor EncodeHistory(const HistoryBatch& history, const at::Tensor& input_vectors, bool all_positions = false);
  // COLLECTIVE. The same, encoding the histories' items first: user vectors [B x dim] for export,
  // recall and query.
  at::Tensor EncodeHistory(const HistoryBatch& history);

  // True when the item tower has a path besides the ids (categories or content vectors): an item
  // without a trained id row still gets a meaningful vector.
  bool has_content_path() const;
  // Local. Sets to zero this rank's id rows (every id table, both input and output) of the items
  // whose train_counts entry is 0 ([I]), so an item nobody trained on is served from its content
  // and categories alone, not from its random initial row. Optimizer state is left as it is.
  void ZeroIdRows(const std::vector<int64_t>& train_counts);
  // Local. Sets to zero this rank's rows of the category table for the categories whose entry in
  // `known` (bool [C], LoadReport::categories_known) is false: categories a loaded model never
  // trained (new in a later catalogue) add nothing to their items' vectors instead of their random
  // initial rows. Does nothing when `known` is undefined or the model reads no categories.
  void ZeroUnknownCategoryRows(const at::Tensor& known);
  // COLLECTIVE. The content path's vectors (categories + projected content, before any
  // normalisation) of item ids [n]: [n x dim], zeros without a content path.
  at::Tensor EncodeContent(const at::Tensor& ids);
  // COLLECTIVE. Serving an item nobody trained on (an all-zero id row: ZeroIdRows, a held-out cold
  // item or one added to the catalogue since training): its id rows become the mean direction of
  // the id rows of the `neighbours` trained items whose content-path vectors are closest to its own
  // (cosine), at their mean length, so it is scored on the scale of the trained items it resembles, popularity included, instead
  // of by its content vector alone, which the trained items' id vectors outscore. Deterministic;
  // does nothing without a content path. Returns the number of items imputed.
  int64_t ImputeUntrainedIdRows(int64_t neighbours = 10);

  std::vector<at::Tensor> dense_parameters();
  std::vector<std::pair<std::string, at::Tensor>> named_dense_parameters();
  void train(bool on);
  bool is_training() const;
  // The seed of the step's dropout and id-dropout masks (model/keyed_mask.h): with the rows' keys
  // (HistoryBatch::keys) and the item ids it decides every mask, the same on every rank.
  void SeedDropout(uint64_t seed);
  const ModelConfig& config() const;
  // The catalogue the model was built for (categories and content as the config uses them).
  const ItemCatalog& catalog() const;
  ShardedEmbeddingCollection& embeddings();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec
