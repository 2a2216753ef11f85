// Embedding table specifications and the one ShardingType enum of the project.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardrec {

// How a table is split across ranks (docs/sharding.md):
//   kTableWise     the whole table on one rank
//   kRowWise       contiguous row blocks of ceil(rows / N) (TorchRec's layout: a checkpoint's
//                  global row ids map to ranks without a hash, and a rank's rows are one slab)
//   kColumnWise    the embedding dimension split into up to N column blocks, one per rank
//   kDataParallel  replicated on every rank; gradients all-reduced (small, hot tables)
enum class ShardingType { kTableWise, kRowWise, kColumnWise, kDataParallel };
const char* ShardingTypeName(ShardingType t);  // "table_wise", ...
// Accepts "table_wise"/"tw", "row_wise"/"rw", "column_wise"/"cw", "data_parallel"/"dp".
ShardingType ParseShardingType(const std::string& s);

enum class Pooling { kNone, kSum, kMean };  // kNone: one vector per id (sequence features)

enum class OptimizerType { kSgd, kRowWiseAdagrad, kAdam };
const char* OptimizerName(OptimizerType o);
OptimizerType ParseOptimizer(const std::string& s);

struct OptimizerConfig {
  OptimizerType type = OptimizerType::kRowWiseAdagrad;
  double lr = 0.01;
  double eps = 1e-8;           // adagrad, adam
  double beta1 = 0.9, beta2 = 0.999;  // adam
  double initial_accumulator = 0.0;   // adagrad
  // Optimizer state per row in units of the row's dim (for memory estimates):
  // sgd 0, row-wise adagrad 1/dim (one float per row), adam 2 (two moments).
  double StateFactor(int64_t dim) const;
};

struct TableSpec {
  std::string name;
  int64_t rows = 0;
  int64_t dim = 0;
  std::vector<std::string> features;  // features that look this table up
  Pooling pooling = Pooling::kNone;
  OptimizerConfig optimizer;
  double init_scale = 0.0;  // rows start uniform in [-s, s]; 0 = 1/sqrt(dim)
  double lookups_per_sample = 1.0;  // planner: expected ids per sample over all its features
  std::optional<ShardingType> pinned;  // force this sharding (config)
};

// Throws UserError for an empty name, rows/dim < 1, duplicate table or feature names.
void ValidateTables(const std::vector<TableSpec>& tables);

}  // namespace shardrec
