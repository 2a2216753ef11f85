#include "train/metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace shardrec {

std::vector<UserResult> RankTargets(const at::Tensor& scores_in, const std::vector<int64_t>& users,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int64_t>>& excluded) {
  at::Tensor scores = scores_in.to(at::kCPU, at::kFloat).contiguous().clone();
  const int64_t b = scores.size(0), n = scores.size(1);
  std::vector<UserResult> out(static_cast<size_t>(b));
  float* base = scores.data_ptr<float>();
  for (int64_t i = 0; i < b; ++i) {
    float* s = base + i * n;
    const int64_t t = targets[i];
    for (int64_t e : excluded[i]) {
      if (e != t && e >= 0 && e < n) s[e] = -std::numeric_limits<float>::infinity();
    }
    const float st = s[t];
    int64_t rank = 0;
    for (int64_t j = 0; j < n; ++j) rank += (s[j] > st) || (s[j] == st && j < t);
    out[i].user = users[i];
    out[i].rank = rank;
  }
  at::Tensor top = std::get<1>(at::topk(scores, std::min<int64_t>(10, n), 1, true, true));
  for (int64_t i = 0; i < b; ++i) {
    // topk's order among equal scores is unspecified: re-sort the top candidates by (score, id).
    std::vector<int64_t> ids(top[i].data_ptr<int64_t>(), top[i].data_ptr<int64_t>() + top.size(1));
    const float* s = base + i * n;
    std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t c) { return s[a] > s[c] || (s[a] == s[c] && a < c); });
    out[i].top10 = ids;
  }
  return out;
}

std::map<std::string, double> ReduceMetrics(Communicator& comm, const std::vector<UserResult>& local,
                                            int64_t num_items, const std::vector<int64_t>& item_counts) {
  // Pack (user, rank, top10 x10) per row; gather with padding to the largest rank's count.
  const int64_t width = 12;
  at::Tensor count = at::full({1}, static_cast<int64_t>(local.size()), at::kLong).to(comm.device());
  at::Tensor counts = comm.AllGather(count).cpu();
  const int64_t max_rows = counts.max().item<int64_t>();
  // Packed on the host (one element at a time through tensor indexing costs a dispatch each).
  std::vector<int64_t> packed(static_cast<size_t>(max_rows * width), -1);
  for (size_t i = 0; i < local.size(); ++i) {
    int64_t* row = packed.data() + i * width;
    row[0] = local[i].user;
    row[1] = local[i].rank;
    for (size_t k = 0; k < local[i].top10.size() && k < 10; ++k) row[2 + k] = local[i].top10[k];
  }
  at::Tensor rows = at::tensor(packed, at::kLong).view({max_rows, width});
  at::Tensor all = comm.AllGather(rows.to(comm.device())).cpu().contiguous();
  const int64_t* gathered = all.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> results;
  for (int r = 0; r < comm.world_size(); ++r) {
    for (int64_t i = 0; i < counts[r].item<int64_t>(); ++i) {
      const int64_t* row = gathered + (r * max_rows + i) * width;
      results.emplace_back(row, row + width);
    }
  }
  std::sort(results.begin(), results.end());  // user order: independent of the world size
  double total_events = 0;
  for (int64_t c : item_counts) total_events += static_cast<double>(c);
  std::map<std::string, double> m;
  const int ks[] = {10, 50, 200};
  double mrr = 0, novelty = 0;
  int64_t novelty_n = 0;
  std::set<int64_t> covered;
  for (const auto& r : results) {
    const int64_t rank = r[1];
    for (int k : ks) {
      if (rank < k) {
        m["hr@" + std::to_string(k)] += 1;
        m["ndcg@" + std::to_string(k)] += 1.0 / std::log2(rank + 2.0);
      }
    }
    mrr += 1.0 / (rank + 1.0);
    for (int k = 2; k < width; ++k) {
      if (r[k] < 0) continue;
      covered.insert(r[k]);
      const double c = std::max<double>(1.0, r[k] < static_cast<int64_t>(item_counts.size()) ? item_counts[r[k]] : 0);
      novelty += -std::log2(c / std::max(1.0, total_events));
      ++novelty_n;
    }
  }
  const double n = std::max<size_t>(1, results.size());
  for (int k : ks) {
    m["hr@" + std::to_string(k)] /= n;
    m["ndcg@" + std::to_string(k)] /= n;
  }
  m["mrr"] = mrr / n;
  m["coverage@10"] = num_items ? static_cast<double>(covered.size()) / num_items : 0;
  m["novelty@10"] = novelty_n ? novelty / novelty_n : 0;
  m["users"] = static_cast<double>(results.size());
  m["items"] = static_cast<double>(num_items);
  return m;
}

}  // namespace shardrec
