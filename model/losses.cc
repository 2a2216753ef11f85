#include "model/losses.h"

#include <ATen/ATen.h>

namespace shardrec {

at::Tensor FullSoftmaxLoss(const at::Tensor& users, const at::Tensor& items, const at::Tensor& targets,
                           double temperature) {
  at::Tensor logits = at::matmul(users, items.t()).div(temperature);
  return at::cross_entropy_loss(logits, targets, {}, at::Reduction::Sum);
}

at::Tensor SampledSoftmaxLoss(const at::Tensor& users, const at::Tensor& candidates,
                              const at::Tensor& target_index, const at::Tensor& log_q, double temperature) {
  at::Tensor logits = at::matmul(users, candidates.t()).div(temperature);
  if (log_q.defined()) logits = logits - log_q.unsqueeze(0);
  return at::cross_entropy_loss(logits, target_index, {}, at::Reduction::Sum);
}

}  // namespace shardrec
