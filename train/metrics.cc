#include "train/metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <glog/logging.h>

#include "common/error.h"

namespace shardrec {

std::vector<UserResult> RankTargets(const at::Tensor& scores_in, const std::vector<int64_t>& users,
                                    const std::vector<int64_t>& targets,
                                    const std::vector<std::vector<int64_t>>& excluded) {
  at::Tensor scores = scores_in.to(at::kCPU, at::kFloat).contiguous().clone();
  const int64_t b = scores.size(0), n = scores.size(1);
  constexpr float kOut = -std::numeric_limits<float>::infinity();
  std::vector<UserResult> out(static_cast<size_t>(b));
  float* base = scores.data_ptr<float>();
  for (int64_t i = 0; i < b; ++i) {
    float* s = base + i * n;
    const int64_t t = targets[i];
    for (int64_t e : excluded[i]) {
      if (e != t && e >= 0 && e < n) s[e] = kOut;
    }
    const float st = s[t];
    int64_t rank = 0;
    for (int64_t j = 0; j < n; ++j) rank += (s[j] > st) || (s[j] == st && j < t);
    out[i].user = users[i];
    out[i].rank = rank;
  }
  at::Tensor top = std::get<1>(at::topk(scores, std::min<int64_t>(kListLength, n), 1, true, true)).contiguous();
  for (int64_t i = 0; i < b; ++i) {
    // topk's order among equal scores is unspecified: re-sort the top candidates by (score, id).
    const int64_t* t = top.data_ptr<int64_t>() + i * top.size(1);
    std::vector<int64_t> ids(t, t + top.size(1));
    const float* s = base + i * n;
    std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t c) { return s[a] > s[c] || (s[a] == s[c] && a < c); });
    // Excluded items are not recommendations: a list of a small catalogue ends before them.
    while (!ids.empty() && s[ids.back()] == kOut) ids.pop_back();
    out[i].top = std::move(ids);
  }
  return out;
}

namespace {

constexpr int kCuts = static_cast<int>(std::size(kListCutoffs));
// Per-user figures gathered from every rank: user, rank, history, then per cut-off novelty,
// popularity percentile and diversity (each a mean over the user's list).
constexpr int kWidth = 3 + 3 * kCuts;

struct HistoryBucket {
  const char* name;
  int64_t lo, hi;  // training events in [lo, hi]
};
constexpr HistoryBucket kBuckets[] = {
    {"hist_1-2", 1, 2}, {"hist_3-5", 3, 5}, {"hist_6-20", 6, 20}, {"hist_21+", 21, std::numeric_limits<int64_t>::max()}};

// Mid-rank popularity percentile of every item by its training count (1 = the most trained).
std::vector<double> PopularityPercentiles(const std::vector<int64_t>& counts) {
  const int64_t n = static_cast<int64_t>(counts.size());
  std::vector<double> out(counts.size(), 0.5);
  if (n < 2) return out;
  std::vector<int64_t> order(counts.size());
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return counts[a] < counts[b]; });
  for (int64_t lo = 0; lo < n;) {
    int64_t hi = lo;
    while (hi < n && counts[order[hi]] == counts[order[lo]]) ++hi;
    const double mid = (static_cast<double>(lo) + static_cast<double>(hi - 1)) / 2.0 / static_cast<double>(n - 1);
    for (int64_t k = lo; k < hi; ++k) out[order[k]] = mid;
    lo = hi;
  }
  return out;
}

// This rank's per-user rows, and the items its lists cover at each cut-off (1 = listed).
void LocalFigures(const std::vector<UserResult>& local, const ListContext& c, std::vector<double>* rows,
                  at::Tensor* covered) {
  const std::vector<double> pct = PopularityPercentiles(c.item_counts);
  double total_events = 0;
  for (int64_t n : c.item_counts) total_events += static_cast<double>(n);
  total_events = std::max(1.0, total_events);
  const bool diverse = c.features.defined();
  at::Tensor feats = diverse ? c.features.to(at::kCPU, at::kFloat).contiguous() : at::Tensor();
  const int64_t f = diverse ? feats.size(1) : 0;
  const float* fv = diverse ? feats.data_ptr<float>() : nullptr;
  *covered = at::zeros({kCuts, c.num_items}, at::kFloat);
  float* cov = covered->data_ptr<float>();
  rows->assign(local.size() * kWidth, 0.0);
  std::vector<double> sum(static_cast<size_t>(f));
  for (size_t u = 0; u < local.size(); ++u) {
    const UserResult& r = local[u];
    double* row = rows->data() + u * kWidth;
    row[0] = static_cast<double>(r.user);
    row[1] = static_cast<double>(r.rank);
    row[2] = static_cast<double>(r.history);
    std::fill(sum.begin(), sum.end(), 0.0);
    double novelty = 0, popularity = 0, squares = 0;
    size_t k = 0;
    for (int cut = 0; cut < kCuts; ++cut) {
      const size_t end = std::min(r.top.size(), static_cast<size_t>(kListCutoffs[cut]));
      for (; k < end; ++k) {
        const int64_t item = r.top[k];
        CHECK(item >= 0 && item < c.num_items) << "listed item " << item << " outside the catalogue";
        for (int later = cut; later < kCuts; ++later) cov[later * c.num_items + item] = 1;
        const double count = item < static_cast<int64_t>(c.item_counts.size()) ? c.item_counts[item] : 0;
        novelty += -std::log2(std::max(1.0, count) / total_events);
        popularity += item < static_cast<int64_t>(pct.size()) ? pct[item] : 0.0;
        for (int64_t d = 0; d < f; ++d) {
          const double v = fv[item * f + d];
          sum[d] += v;
          squares += v * v;
        }
      }
      const double listed = static_cast<double>(end);
      double* at_cut = row + 3 + 3 * cut;
      at_cut[0] = end ? novelty / listed : 0;
      at_cut[1] = end ? popularity / listed : 0;
      if (diverse && end >= 2) {
        double norm2 = 0;
        for (double v : sum) norm2 += v * v;
        // Sum over ordered pairs i != j of <v_i, v_j> = |sum v|^2 - sum |v|^2.
        at_cut[2] = 1.0 - (norm2 - squares) / (listed * (listed - 1));
      }
    }
  }
}

}  // namespace

std::map<std::string, double> ReduceMetrics(Communicator& comm, const std::vector<UserResult>& local,
                                            const ListContext& items) {
  std::vector<double> mine;
  at::Tensor covered;
  LocalFigures(local, items, &mine, &covered);
  // Gather with padding to the largest rank's count.
  at::Tensor count = at::full({1}, static_cast<int64_t>(local.size()), at::kLong).to(comm.device());
  at::Tensor counts = comm.AllGather(count).cpu();
  const int64_t max_rows = counts.max().item<int64_t>();
  mine.resize(static_cast<size_t>(max_rows * kWidth), 0.0);
  // Gathered as int64 with the doubles' bits (collectives carry no float64): exact on every backend.
  at::Tensor bits = at::tensor(mine, at::kDouble).view({max_rows, kWidth}).view(at::kLong);
  at::Tensor all = comm.AllGather(bits.to(comm.device())).cpu().contiguous().view(at::kDouble);
  if (items.num_items > 0) {
    covered = covered.to(comm.device());
    comm.AllReduce(covered, ReduceOp::kMax);
    covered = covered.cpu();
  }
  const double* gathered = all.data_ptr<double>();
  std::vector<const double*> results;
  for (int r = 0; r < comm.world_size(); ++r) {
    for (int64_t i = 0; i < counts[r].item<int64_t>(); ++i) results.push_back(gathered + (r * max_rows + i) * kWidth);
  }
  // User order: independent of the world size.
  std::sort(results.begin(), results.end(), [](const double* a, const double* b) { return a[0] < b[0]; });
  std::map<std::string, double> m;
  double mrr = 0;
  std::map<std::string, double> bucket_users;
  for (const double* r : results) {
    const double rank = r[1];
    for (int k : kListCutoffs) {
      if (rank < k) {
        m["hr@" + std::to_string(k)] += 1;
        m["ndcg@" + std::to_string(k)] += 1.0 / std::log2(rank + 2.0);
      }
    }
    mrr += 1.0 / (rank + 1.0);
    for (int cut = 0; cut < kCuts; ++cut) {
      const std::string at = "@" + std::to_string(kListCutoffs[cut]);
      m["novelty" + at] += r[3 + 3 * cut];
      m["popularity_bias" + at] += r[4 + 3 * cut];
      if (items.features.defined()) m["diversity" + at] += r[5 + 3 * cut];
    }
    for (const HistoryBucket& b : kBuckets) {
      if (r[2] < static_cast<double>(b.lo) || r[2] > static_cast<double>(b.hi)) continue;
      const std::string p = std::string(b.name) + ".";
      bucket_users[b.name] += 1;
      if (rank < 10) m[p + "hr@10"] += 1, m[p + "ndcg@10"] += 1.0 / std::log2(rank + 2.0);
      if (rank < 50) m[p + "hr@50"] += 1;
      m[p + "mrr"] += 1.0 / (rank + 1.0);
    }
  }
  const double n = std::max<size_t>(1, results.size());
  for (int k : kListCutoffs) {
    const std::string at = "@" + std::to_string(k);
    for (const char* name : {"hr", "ndcg", "novelty", "popularity_bias"}) m[name + at] /= n;
    if (items.features.defined()) m["diversity" + at] /= n;
  }
  for (const HistoryBucket& b : kBuckets) {
    const std::string p = std::string(b.name) + ".";
    const double users = bucket_users[b.name];
    for (const char* name : {"hr@10", "ndcg@10", "hr@50", "mrr"}) m[p + name] = users ? m[p + name] / users : 0;
    m[p + "users"] = users;
  }
  m["mrr"] = mrr / n;
  for (int cut = 0; cut < kCuts; ++cut) {
    const double listed = items.num_items ? covered[cut].sum().item<double>() : 0;
    m["coverage@" + std::to_string(kListCutoffs[cut])] = items.num_items ? listed / static_cast<double>(items.num_items) : 0;
  }
  m["users"] = static_cast<double>(results.size());
  m["items"] = static_cast<double>(items.num_items);
  return m;
}

at::Tensor CategoryFeatures(int64_t num_items, int64_t num_categories, const std::vector<int64_t>& offsets,
                            const std::vector<int64_t>& values) {
  CHECK_EQ(static_cast<int64_t>(offsets.size()), num_items + 1);
  const int64_t width = num_categories + 1;
  at::Tensor f = at::zeros({num_items, width}, at::kFloat);
  float* p = f.data_ptr<float>();
  for (int64_t i = 0; i < num_items; ++i) {
    // An item without categories gets the last column: similar to the other items without one.
    if (offsets[i + 1] == offsets[i]) p[i * width + num_categories] = 1;
    for (int64_t k = offsets[i]; k < offsets[i + 1]; ++k) {
      CHECK(values[k] >= 0 && values[k] < num_categories) << "category " << values[k];
      p[i * width + values[k]] = 1;
    }
  }
  return UnitRows(f);
}

at::Tensor UnitRows(const at::Tensor& vectors) {
  at::Tensor v = vectors.detach().to(at::kCPU, at::kFloat);
  at::Tensor norm = v.norm(2, 1, true);
  return (v / norm.clamp_min(1e-12)).contiguous();
}

}  // namespace shardrec
