// The two-tower recall model (DESIGN section 3, steps 5-7).
//   Item tower: sharded item-id embedding + pooled category embedding + projected content vector,
//               summed and L2-normalised.
//   User tower: a causal pre-norm Transformer over the item-tower outputs of the history, with
//               learned positions and time-gap buckets; one L2-normalised vector per position.
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
#include "sharding/embedding_collection.h"

namespace shardrec {

struct ModelConfig {
  int64_t dim = 64;
  int64_t blocks = 2;
  int64_t heads = 1;
  int64_t max_len = 50;
  double dropout = 0.2;
  int64_t time_buckets = 16;  // 0 = off (also off when the data has no timestamps)
  bool use_categories = true;
  bool use_content = true;
  OptimizerConfig embedding_optimizer{.type = OptimizerType::kRowWiseAdagrad, .lr = 0.05};
  std::string sharding = "auto";  // auto (planner) or a ShardingType name for every table
};

// What the item tower knows about the catalogue (on every rank; small next to the id table).
struct ItemCatalog {
  int64_t num_items = 0;
  int64_t num_categories = 0;           // 0 = none
  std::vector<int64_t> category_offsets;  // CSR [I+1]
  std::vector<int64_t> category_values;
  at::Tensor content;                   // float [I x D] or undefined
};

class TwoTowerModel {
 public:
  // Collective (plan broadcast from rank 0). Dense parameters are initialised from `seed` and
  // broadcast from rank 0 so every rank starts identical.
  TwoTowerModel(const ModelConfig& config, const ItemCatalog& catalog, Communicator* comm, uint64_t seed);
  ~TwoTowerModel();

  // COLLECTIVE. Item-tower vectors [n x dim] for item ids (int64 [n], any order, duplicates ok).
  // The result takes part in autograd; after loss.backward(), call BackwardEmbeddings().
  at::Tensor EncodeItems(const at::Tensor& ids);
  // Local. User-tower outputs [B x L x dim] for histories given as item-tower vectors
  // [B x L x dim] (left-aligned, lengths [B]) and time-gap buckets int64 [B x L] (or undefined).
  at::Tensor EncodeUsers(const at::Tensor& history, const at::Tensor& lengths, const at::Tensor& gap_buckets);
  // COLLECTIVE. Sends the gradients of every EncodeItems output since the last call to the
  // embedding owners and applies the sparse optimizer. Call once per step, after backward.
  void BackwardEmbeddings();
  // Drops pending EncodeItems contexts without training (evaluation). Local.
  void DiscardEmbeddingGradients();

  std::vector<at::Tensor> dense_parameters();
  std::vector<std::pair<std::string, at::Tensor>> named_dense_parameters();
  void train(bool on);
  const ModelConfig& config() const;
  ShardedEmbeddingCollection& embeddings();
  // Bucket of a time gap in seconds: 0 for the first event, then 1 + floor(log2(1 + gap/60)).
  static int64_t GapBucket(int64_t gap_seconds, int64_t buckets);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec
