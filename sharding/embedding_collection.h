// ShardedEmbeddingCollection: TorchRec's EmbeddingCollection in C++. Tables are sharded by a plan
// (table-, row-, column-wise or data-parallel); a forward pass is input_dist -> lookup ->
// output_dist per table, and the backward pass sends row gradients back to their owners, merges them
// per unique row and applies the fused sparse optimizer in place. The same model trains identically
// (up to float summation order) at any world size and under any plan.
//
// Shapes: a feature batch is jagged: ids int64 [n] and lengths int64 [B] (sum = n; a sample may
// have no ids). Output of a feature: pooling none -> [n x dim] (one row per id, the jagged layout);
// sum/mean -> [B x dim] (an empty sample pools to zeros). Tensors live on the communicator's
// device; ids may come on the CPU.
//
// Thread-compatibility: one collection per rank, used from that rank's thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "sharding/plan.h"
#include "sharding/sparse_optimizer.h"
#include "sharding/types.h"

namespace shardrec {

struct JaggedIds {
  at::Tensor ids;      // int64 [n]
  at::Tensor lengths;  // int64 [B]
};
using FeatureBatch = std::map<std::string, JaggedIds>;
using FeatureOutputs = std::map<std::string, at::Tensor>;

struct CollectionOptions {
  uint64_t seed = 0;   // row r of table t starts as InitRows(spec, seed, r)
  bool dedup = true;   // send each distinct id once per rank and step (off: for benchmarks)
};

// Initial values of rows [row_begin, row_end) x columns [col_begin, col_end) of a table: a pure
// function of (seed, table name, global row id), uniform in [-s, s] (s = init_scale or
// 1/sqrt(dim)), so every plan and world size starts from identical tables. float32 CPU tensor.
at::Tensor InitRows(const TableSpec& spec, uint64_t seed, int64_t row_begin, int64_t row_end,
                    int64_t col_begin, int64_t col_end);

class ShardedEmbeddingCollection {
 public:
  // Collective only in that every rank must build it with the same specs and plan (no messages).
  // Throws UserError if the plan does not fit the specs or the world size.
  ShardedEmbeddingCollection(std::vector<TableSpec> specs, ShardingPlan plan, Communicator* comm,
                             CollectionOptions options = {});
  ~ShardedEmbeddingCollection();

  // The three stages of a forward pass (TorchRec's split), for callers that overlap them with other
  // work; Forward runs them in order. Between InputDist and OutputDist no other collective of this
  // communicator may run.
  //   InputDist  COLLECTIVE. Every feature of every table must be present (possibly with B = 0);
  //              an id outside [0, rows) is a UserError naming the table, feature, id and
  //              position. Ids are deduplicated per table and sent to their owners: one exchange
  //              of counts and one of ids for all tables together.
  //   Lookup     Local. Gathers the rows asked of this rank from its shards.
  //   OutputDist COLLECTIVE. Rows go back to the requesters (one exchange for all tables) and are
  //              expanded to the batch layout (and pooled).
  void InputDist(const FeatureBatch& batch);
  void Lookup();
  FeatureOutputs OutputDist();
  FeatureOutputs Forward(const FeatureBatch& batch);
  // COLLECTIVE. Gradients of the loss w.r.t. the outputs of the last forward (same shapes and
  // features); merges them per distinct row, sends each owner its rows in one exchange for all
  // tables, and applies the optimizer step to every table. Training code reaches it through
  // autograd (sharding/lookup_function.h), not by hand.
  void Backward(const FeatureOutputs& grads);

  const std::vector<TableSpec>& specs() const { return specs_; }
  const ShardingPlan& plan() const { return plan_; }
  // This rank's shard of a table (nullptr when it holds none) and its weights [rows x cols].
  const Shard* LocalShard(const std::string& table) const;
  at::Tensor LocalWeights(const std::string& table) const;
  SparseOptimizer* LocalOptimizer(const std::string& table);
  // Bytes moved through all-to-all by this rank in the last Forward + Backward (ids and rows).
  int64_t last_comm_bytes() const { return comm_bytes_; }

  struct Table;

 private:
  void GatherIds(Table& t, const FeatureBatch& batch);
  std::vector<int64_t> RowSplits(bool asked_of_me) const;
  void ApplyRowGradients(Table& t, const at::Tensor& row_grads);

  std::vector<TableSpec> specs_;
  ShardingPlan plan_;
  Communicator* comm_;
  CollectionOptions options_;
  std::vector<std::unique_ptr<Table>> tables_;
  std::vector<Table*> sharded_;  // the tables that are not data-parallel, in spec order
  int64_t comm_bytes_ = 0;
};

}  // namespace shardrec
