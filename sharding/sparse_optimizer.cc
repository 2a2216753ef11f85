#include "sharding/sparse_optimizer.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <cmath>

namespace shardrec {

SparseOptimizer::SparseOptimizer(const OptimizerConfig& config, int64_t rows, int64_t cols,
                                 int64_t full_dim, const at::TensorOptions& options)
    : config_(config), full_dim_(full_dim) {
  const auto f = options.dtype(at::kFloat);
  switch (config_.type) {
    case OptimizerType::kSgd: break;
    case OptimizerType::kRowWiseAdagrad:
      state1_ = at::full({rows}, config_.initial_accumulator, f);
      break;
    case OptimizerType::kAdam:
      state1_ = at::zeros({rows, cols}, f);
      state2_ = at::zeros({rows, cols}, f);
      break;
  }
}

void SparseOptimizer::Step(at::Tensor& weight, const at::Tensor& rows, const at::Tensor& grads,
                           const std::optional<at::Tensor>& row_square_sum) {
  ++steps_;
  if (rows.numel() == 0) return;
  const double lr = config_.lr;
  switch (config_.type) {
    case OptimizerType::kSgd:
      weight.index_add_(0, rows, grads, -lr);
      break;
    case OptimizerType::kRowWiseAdagrad: {
      // One accumulator per row: the mean of the squared gradient over the full row.
      at::Tensor sq = row_square_sum ? row_square_sum->div(static_cast<double>(full_dim_))
                                     : grads.pow(2).sum(1).div(static_cast<double>(full_dim_));
      at::Tensor acc = state1_.index_select(0, rows).add_(sq);
      state1_.index_copy_(0, rows, acc);
      at::Tensor scale = acc.sqrt().add_(config_.eps).reciprocal_().mul_(-lr);
      weight.index_add_(0, rows, grads.mul(scale.unsqueeze(1)));
      break;
    }
    case OptimizerType::kAdam: {
      const double b1 = config_.beta1, b2 = config_.beta2;
      at::Tensor m = state1_.index_select(0, rows).mul_(b1).add_(grads, 1 - b1);
      at::Tensor v = state2_.index_select(0, rows).mul_(b2).add_(grads.pow(2), 1 - b2);
      state1_.index_copy_(0, rows, m);
      state2_.index_copy_(0, rows, v);
      const double c1 = 1 - std::pow(b1, static_cast<double>(steps_));
      const double c2 = 1 - std::pow(b2, static_cast<double>(steps_));
      at::Tensor denom = v.div(c2).sqrt_().add_(config_.eps);
      weight.index_add_(0, rows, m.div(denom), -lr / c1);
      break;
    }
  }
}

}  // namespace shardrec
