#include "serve/explain.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"
#include "model/history.h"

namespace shardrec {

at::Tensor HistoryContributions(TwoTowerModel& model, const std::vector<int64_t>& items,
                                const std::vector<int64_t>& timestamps, const std::vector<int64_t>& candidates,
                                int64_t request) {
  if (items.empty()) Fail("explain: the history is empty");
  if (!timestamps.empty() && timestamps.size() != items.size()) Fail("explain: ", items.size(), " items and ", timestamps.size(), " timestamps");
  for (int64_t c : candidates) {
    if (c < 0 || c >= model.catalog().num_items) Fail("explain: item ", c, " is outside the catalogue of ", model.catalog().num_items);
  }
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.train(false);
  const ModelConfig& mc = model.config();
  const c10::Device dev = model.dense_parameters().front().device();
  const int64_t n = std::min<int64_t>(mc.max_len, static_cast<int64_t>(items.size()));
  const std::vector<int64_t> kept(items.end() - n, items.end());
  const std::vector<int64_t> kept_ts = timestamps.empty() ? timestamps : std::vector<int64_t>(timestamps.end() - n, timestamps.end());
  // Row 0: the whole history; row 1 + j: without event j (one shorter).
  HistoryBuilder histories(mc.max_len, !kept_ts.empty());
  histories.Add(kept, kept_ts, request);
  std::vector<int64_t> without, without_ts;
  for (int64_t j = 0; j < n; ++j) {
    without.assign(kept.begin(), kept.end());
    without.erase(without.begin() + j);
    if (!kept_ts.empty()) {
      without_ts.assign(kept_ts.begin(), kept_ts.end());
      without_ts.erase(without_ts.begin() + j);
    }
    histories.Add(without, without_ts, request);
  }
  at::Tensor users = model.EncodeHistory(histories.Build(mc.history_features(), dev));
  // Candidate output vectors, looked up sorted and distinct, then put back in the caller's order.
  std::vector<int64_t> distinct(candidates);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  // Collective: every rank looks up, even with no candidates.
  const at::Tensor vectors = model.EncodeItemVectors(torch::tensor(distinct, torch::kLong), torch::empty({0}, torch::kLong)).output;
  std::vector<int64_t> where;
  for (int64_t c : candidates) where.push_back(std::lower_bound(distinct.begin(), distinct.end(), c) - distinct.begin());
  const at::Tensor scores =
      torch::matmul(users, vectors.index_select(0, torch::tensor(where, torch::kLong).to(vectors.device())).t());
  // One event alone: leaving it out leaves nothing, so it carries the whole score.
  const at::Tensor out = n == 1 ? scores.slice(0, 0, 1) : scores.slice(0, 0, 1) - scores.slice(0, 1);
  model.train(was_training);
  return out.to(torch::kCPU, torch::kFloat).contiguous();
}

}  // namespace shardrec
