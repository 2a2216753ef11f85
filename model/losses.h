// Retrieval losses over L2-normalised embeddings with a temperature (DESIGN section 3, step 6).
// Each returns the SUM of per-position losses (callers divide by the global position count so
// that N ranks compute the same gradient as one rank).
#pragma once

#include <ATen/core/Tensor.h>

namespace shardrec {

// Full softmax over the catalogue: users [P x d], items [I x d], targets int64 [P] in [0, I).
at::Tensor FullSoftmaxLoss(const at::Tensor& users, const at::Tensor& items, const at::Tensor& targets,
                           double temperature);

// Sampled softmax over a shared candidate set (in-batch targets + uniform negatives):
// users [P x d], candidates [C x d], target_index int64 [P] (row of each position's target in the
// candidates), log_q [C] or undefined: the log of each candidate's expected count in the sample,
// subtracted from its logit (logQ correction, so popular in-batch items are not over-penalised).
at::Tensor SampledSoftmaxLoss(const at::Tensor& users, const at::Tensor& candidates,
                              const at::Tensor& target_index, const at::Tensor& log_q, double temperature);

}  // namespace shardrec
