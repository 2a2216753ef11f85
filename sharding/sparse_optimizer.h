// Fused sparse optimizers: update only the rows that received gradients, in place, with the
// gradients already merged per unique row. No dense [rows x dim] gradient exists for sharded tables.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "sharding/types.h"

namespace shardrec {

// Optimizer state of one shard ([rows x cols] of a table whose full row has `full_dim` columns).
// Not thread-safe.
class SparseOptimizer {
 public:
  SparseOptimizer(const OptimizerConfig& config, int64_t rows, int64_t cols, int64_t full_dim,
                  const at::TensorOptions& options);

  // weight: [rows x cols] float32, updated in place. local_rows: int64 [m], unique. grads:
  // float32 [m x cols], merged per row. row_square_sum: for row-wise Adagrad on a column shard,
  // the sum of squares of the FULL row's gradient ([m]); otherwise computed from `grads`.
  // Call once per training step even with m == 0 (Adam's step count is global).
  void Step(at::Tensor& weight, const at::Tensor& local_rows, const at::Tensor& grads,
            const std::optional<at::Tensor>& row_square_sum = std::nullopt);

  const OptimizerConfig& config() const { return config_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }  // restoring a checkpoint
  // State tensors (checkpoints): adagrad: [rows] accumulator; adam: [rows x cols] m and v.
  at::Tensor& state1() { return state1_; }
  at::Tensor& state2() { return state2_; }

 private:
  OptimizerConfig config_;
  int64_t full_dim_;
  int64_t steps_ = 0;
  at::Tensor state1_, state2_;
};

}  // namespace shardrec
