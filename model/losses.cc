#include "model/losses.h"

#include <ATen/ATen.h>

#include <glog/logging.h>

#include "common/error.h"
#include "common/rng.h"

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

RetrievalLoss::RetrievalLoss(const RetrievalLossOptions& options, const std::vector<int64_t>& item_counts,
                             const c10::Device& device)
    : options_(options), num_items_(static_cast<int64_t>(item_counts.size())) {
  if (!(options_.temperature > 0)) Fail("--temperature must be > 0, got ", options_.temperature);
  if (!options_.full && options_.negatives < 0) Fail("--negatives must be >= 0, got ", options_.negatives);
  if (num_items_ < 1) Fail("the catalogue is empty");
  at::Tensor c = at::tensor(item_counts, at::kLong).to(at::kFloat);
  popularity_ = (c / c.sum().clamp_min(1)).to(device);
}

Candidates RetrievalLoss::MakeCandidates(const at::Tensor& targets, int64_t global_positions, int64_t step,
                                         Communicator& comm) const {
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(popularity_.device());
  Candidates c;
  if (options_.full) {
    c.ids = at::arange(num_items_, longs);
    return c;
  }
  // Every rank's targets, padded to a bound every rank knows (no exchange of sizes first).
  const int64_t n = targets.numel(), bound = std::max<int64_t>(1, options_.max_positions_per_rank);
  CHECK_LE(n, bound) << "a rank has more positions than max_positions_per_rank";
  at::Tensor padded = at::full({bound}, -1, longs);
  if (n > 0) padded.narrow(0, 0, n).copy_(targets);
  at::Tensor all = comm.AllGather(padded);
  // The step's negatives: a function of (seed, step) alone, the same on every rank.
  Rng rng(HashKeys({options_.seed, 0x4E4547ULL, static_cast<uint64_t>(step)}));
  std::vector<int64_t> neg(static_cast<size_t>(options_.negatives));
  for (auto& x : neg) x = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(num_items_)));
  at::Tensor pool = at::cat({all.masked_select(all >= 0), at::tensor(neg, at::kLong).to(longs.device())});
  c.ids = std::get<0>(at::_unique2(pool, /*sorted=*/true, false, false));
  if (options_.logq) {
    // Expected count of each candidate in the pool: in-batch by popularity, plus uniform.
    c.log_q = (popularity_.index_select(0, c.ids) * static_cast<double>(global_positions) +
               static_cast<double>(options_.negatives) / static_cast<double>(num_items_))
                  .log();
  }
  return c;
}

at::Tensor RetrievalLoss::Sum(const at::Tensor& users, const at::Tensor& candidate_vectors, const at::Tensor& targets,
                              const Candidates& candidates) const {
  if (options_.full) return FullSoftmaxLoss(users, candidate_vectors, targets, options_.temperature);
  return SampledSoftmaxLoss(users, candidate_vectors, at::searchsorted(candidates.ids, targets), candidates.log_q,
                            options_.temperature);
}

}  // namespace shardrec
