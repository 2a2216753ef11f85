#include "eval/metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <glog/logging.h>

#include "common/error.h"

namespace shardrec {

std::vector<std::vector<int64_t>> TopLists(const at::Tensor& scores) {
  CHECK(scores.device().is_cpu() && scores.scalar_type() == at::kFloat && scores.is_contiguous());
  const int64_t b = scores.size(0), n = scores.size(1);
  constexpr float kOut = -std::numeric_limits<float>::infinity();
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(b));
  const int64_t want = std::min<int64_t>(kListLength, n);
  if (b == 0 || want == 0) return out;
  const float* base = scores.data_ptr<float>();
  auto [top_scores, top_ids] = at::topk(scores, want, 1, true, true);
  const at::Tensor top = top_ids.contiguous();
  // Rows where more items tie with the last listed score than the list holds: only those need the
  // fill by id below (one vectorised pass finds them).
  const at::Tensor last_scores = top_scores.narrow(1, want - 1, 1);
  const at::Tensor ties_all = scores.eq(last_scores).sum(1), ties_listed = top_scores.eq(last_scores).sum(1);
  const at::Tensor ambiguous = ties_all.gt(ties_listed).contiguous();
  const bool* tied = ambiguous.data_ptr<bool>();
  for (int64_t i = 0; i < b; ++i) {
    // topk picks arbitrarily among items tied at the last place: keep those above it, fill the
    // tied places by lowest id, then order by (score, id).
    const int64_t* t = top.data_ptr<int64_t>() + i * top.size(1);
    const float* s = base + i * n;
    float last = std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < want; ++k) last = std::min(last, s[t[k]]);
    std::vector<int64_t> ids;
    for (int64_t k = 0; k < want; ++k) {
      if (s[t[k]] > last) ids.push_back(t[k]);
    }
    if (tied[i]) {
      for (int64_t j = 0; j < n && static_cast<int64_t>(ids.size()) < want; ++j) {
        if (s[j] == last) ids.push_back(j);
      }
    } else {
      for (int64_t k = 0; k < want; ++k) {
        if (s[t[k]] == last) ids.push_back(t[k]);
      }
    }
    std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t c) { return s[a] > s[c] || (s[a] == s[c] && a < c); });
    // Excluded items are not recommendations: a list of a small catalogue ends before them.
    while (!ids.empty() && s[ids.back()] == kOut) ids.pop_back();
    out[i] = std::move(ids);
  }
  return out;
}

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
    out[i].target = t;
  }
  auto lists = TopLists(scores);
  for (int64_t i = 0; i < b; ++i) out[i].top = std::move(lists[i]);
  return out;
}

namespace {

constexpr int kCuts = static_cast<int>(std::size(kListCutoffs));
// Per-user figures gathered from every rank: user, rank, history, target, rank among cold items,
// then per cut-off the list's length and its mean novelty, mean popularity percentile and diversity.
constexpr int kPerCut = 4;
constexpr int kFirstCut = 5;
constexpr int kWidth = kFirstCut + kPerCut * kCuts;

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

// Sums of the per-user figures, in user order, before they become means.
struct Totals {
  std::map<std::string, double> m;         // metric -> sum over users
  std::map<std::string, double> users_at;  // slice -> users it counts
  double mrr = 0;
};

double Mean(double total, double n) { return n > 0 ? total / n : 0.0; }

// Adds one user's gathered row `r` (kWidth figures: user, rank, history, target, cold rank, then
// kPerCut per cut-off).
void AddUser(const double* r, const ListContext& c, bool diverse, Totals& t) {
  std::map<std::string, double>& m = t.m;
  std::map<std::string, double>& users_at = t.users_at;
  double& mrr = t.mrr;
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
    const double* f = r + kFirstCut + kPerCut * cut;
    if (f[0] >= 1) {
      users_at["listed" + at] += 1;
      m["novelty" + at] += f[1];
      m["popularity_bias" + at] += f[2];
    }
    if (diverse && f[0] >= 2) {
      users_at["pairs" + at] += 1;
      m["diversity" + at] += f[3];
    }
  }
  for (const HistoryBucket& b : kBuckets) {
    if (r[2] < static_cast<double>(b.lo) || r[2] > static_cast<double>(b.hi)) continue;
    const std::string p = std::string(b.name) + ".";
    users_at[b.name] += 1;
    if (rank < 10) m[p + "hr@10"] += 1, m[p + "ndcg@10"] += 1.0 / std::log2(rank + 2.0);
    if (rank < 50) m[p + "hr@50"] += 1;
    m[p + "mrr"] += 1.0 / (rank + 1.0);
  }
  if (!c.cold.empty()) {
    const int64_t target = static_cast<int64_t>(r[3]);
    CHECK(target >= 0 && target < static_cast<int64_t>(c.cold.size())) << "target " << target;
    const bool cold = c.cold[static_cast<size_t>(target)] != 0;
    for (const char* slice : {"all", cold ? "cold" : "warm"}) {
      const std::string p = std::string(slice) + ".";
      users_at[slice] += 1;
      for (int k : {10, 50}) {
        if (rank < k) m[p + "hr@" + std::to_string(k)] += 1, m[p + "ndcg@" + std::to_string(k)] += 1.0 / std::log2(rank + 2.0);
      }
      m[p + "mrr"] += 1.0 / (rank + 1.0);
    }
    if (cold) {
      const double pop = static_cast<double>(c.cold_popularity_rank[static_cast<size_t>(target)]);
      if (pop < 10) m["cold.pop_hr@10"] += 1, m["cold.pop_ndcg@10"] += 1.0 / std::log2(pop + 2.0);
      if (pop < 50) m["cold.pop_hr@50"] += 1;
      const double among = r[4];
      if (among >= 0 && among < 10) m["cold.among_cold_hr@10"] += 1, m["cold.among_cold_ndcg@10"] += 1.0 / std::log2(among + 2.0);
      if (among >= 0 && among < 50) m["cold.among_cold_hr@50"] += 1;
      if (among >= 0) users_at["among_cold"] += 1;
    }
  }
}

// The metrics from the sums over `n` users; listed[cut] = distinct items in some list at that cut.
std::map<std::string, double> Means(Totals t, double n, const at::Tensor& listed, const ListContext& c, bool diverse) {
  std::map<std::string, double>& m = t.m;
  std::map<std::string, double>& users_at = t.users_at;
  const double mrr = t.mrr;
  for (int cut = 0; cut < kCuts; ++cut) {
    const std::string at = "@" + std::to_string(kListCutoffs[cut]);
    m["hr" + at] = Mean(m["hr" + at], n);
    m["ndcg" + at] = Mean(m["ndcg" + at], n);
    m["novelty" + at] = Mean(m["novelty" + at], users_at["listed" + at]);
    m["popularity_bias" + at] = Mean(m["popularity_bias" + at], users_at["listed" + at]);
    if (diverse) m["diversity" + at] = Mean(m["diversity" + at], users_at["pairs" + at]);
    m["coverage" + at] = c.num_items ? static_cast<double>(listed[cut].item<int64_t>()) / static_cast<double>(c.num_items) : 0;
  }
  for (const HistoryBucket& b : kBuckets) {
    const std::string p = std::string(b.name) + ".";
    const double users = users_at[b.name];
    for (const char* name : {"hr@10", "ndcg@10", "hr@50", "mrr"}) m[p + name] = Mean(m[p + name], users);
    m[p + "users"] = users;
  }
  if (!c.cold.empty()) {
    for (const char* slice : {"all", "warm", "cold"}) {
      const std::string p = std::string(slice) + ".";
      const double users = users_at[slice];
      for (const char* name : {"hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr"}) m[p + name] = Mean(m[p + name], users);
      m[p + "users"] = users;
    }
    for (const char* name : {"pop_hr@10", "pop_ndcg@10", "pop_hr@50"}) m[std::string("cold.") + name] = Mean(m[std::string("cold.") + name], users_at["cold"]);
    if (users_at["among_cold"] > 0) {
      for (const char* name : {"among_cold_hr@10", "among_cold_ndcg@10", "among_cold_hr@50"}) {
        m[std::string("cold.") + name] = Mean(m[std::string("cold.") + name], users_at["among_cold"]);
      }
    }
  }
  m["mrr"] = Mean(mrr, n);
  m["users"] = n;
  m["items"] = static_cast<double>(c.num_items);
  return m;
}

}  // namespace

MetricsAccumulator::MetricsAccumulator(ListContext context) : c_(std::move(context)) {
  percentile_ = PopularityPercentiles(c_.item_counts);
  total_events_ = 0;
  for (int64_t n : c_.item_counts) total_events_ += static_cast<double>(n);
  total_events_ = std::max(1.0, total_events_);
  covered_.assign(static_cast<size_t>(kCuts * c_.num_items), 0);
  if (!c_.cold.empty()) {
    CHECK_EQ(static_cast<int64_t>(c_.cold.size()), c_.num_items);
    CHECK_EQ(c_.cold_popularity_rank.size(), c_.cold.size());
  }
  if (c_.num_categories > 0) {
    // Each item's distinct categories; an item without any gets the extra column num_categories.
    CHECK_EQ(static_cast<int64_t>(c_.category_offsets.size()), c_.num_items + 1);
    std::vector<int64_t> off = {0}, val;
    for (int64_t i = 0; i < c_.num_items; ++i) {
      std::vector<int64_t> mine(c_.category_values.begin() + c_.category_offsets[i],
                                c_.category_values.begin() + c_.category_offsets[i + 1]);
      for (int64_t v : mine) CHECK(v >= 0 && v < c_.num_categories) << "category " << v;
      std::sort(mine.begin(), mine.end());
      mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
      if (mine.empty()) mine.push_back(c_.num_categories);
      val.insert(val.end(), mine.begin(), mine.end());
      off.push_back(static_cast<int64_t>(val.size()));
    }
    c_.category_offsets = std::move(off);
    c_.category_values = std::move(val);
  } else if (c_.vectors.defined()) {
    at::Tensor v = c_.vectors.detach().to(at::kCPU, at::kFloat);
    CHECK_EQ(v.size(0), c_.num_items);
    c_.vectors = (v / v.norm(2, 1, true).clamp_min(1e-12)).contiguous();  // unit rows: inner products are cosines
  }
}

// Adds list[*done, end) to the running sum of unit feature vectors `sum` and its squared norm;
// returns the list's diversity so far: 1 - (|sum|^2 - sum of |v|^2) / (n (n - 1)), the mean over
// ordered pairs i != j of 1 - <v_i, v_j>. Each item's vector has unit length.
double MetricsAccumulator::Diversity(const UserResult& r, size_t end, std::vector<double>* sum, double* norm2,
                                     size_t* done) const {
  const std::vector<int64_t>& list = r.top;
  if (c_.num_categories > 0) {  // sparse: the squared norm follows each added coordinate
    for (; *done < end; ++*done) {
      const int64_t item = list[*done];
      const int64_t b = c_.category_offsets[item], e = c_.category_offsets[item + 1];
      const double w = 1.0 / std::sqrt(static_cast<double>(e - b));
      for (int64_t k = b; k < e; ++k) {
        double& s = (*sum)[static_cast<size_t>(c_.category_values[k])];
        *norm2 += 2 * s * w + w * w;
        s += w;
      }
    }
  } else {  // dense: add whole rows (vectorised), then the squared norm once
    const bool own = c_.list_vectors;
    const int64_t d = static_cast<int64_t>(sum->size());
    if (own) CHECK(r.top_vectors.size(0) == static_cast<int64_t>(list.size()) && r.top_vectors.size(1) == d);
    double* s = sum->data();
    for (; *done < end; ++*done) {
      const float* v = own ? r.top_vectors.data_ptr<float>() + *done * d : c_.vectors.data_ptr<float>() + list[*done] * d;
      for (int64_t k = 0; k < d; ++k) s[k] += v[k];
    }
    *norm2 = 0;
    for (int64_t k = 0; k < d; ++k) *norm2 += s[k] * s[k];
  }
  const double n = static_cast<double>(end);
  return 1.0 - (*norm2 - n) / (n * (n - 1));
}

void MetricsAccumulator::Add(const std::vector<UserResult>& results) {
  const bool diverse = c_.num_categories > 0 || c_.vectors.defined() || c_.list_vectors;
  const int64_t width = c_.num_categories > 0 ? c_.num_categories + 1 : c_.list_vectors ? c_.list_vector_dim
                        : c_.vectors.defined()  ? c_.vectors.size(1)
                                                : 0;
  std::vector<double> sum(static_cast<size_t>(width));
  for (const UserResult& r : results) {
    const size_t at = rows_.size();
    rows_.resize(at + kWidth, 0.0);
    double* row = rows_.data() + at;
    row[0] = static_cast<double>(r.user);
    row[1] = static_cast<double>(r.rank);
    row[2] = static_cast<double>(r.history);
    row[3] = static_cast<double>(r.target);
    row[4] = static_cast<double>(r.cold_rank);
    std::fill(sum.begin(), sum.end(), 0.0);
    double novelty = 0, popularity = 0, norm2 = 0;
    size_t k = 0, summed = 0;
    for (int cut = 0; cut < kCuts; ++cut) {
      const size_t end = std::min(r.top.size(), static_cast<size_t>(kListCutoffs[cut]));
      for (; k < end; ++k) {
        const int64_t item = r.top[k];
        CHECK(item >= 0 && item < c_.num_items) << "listed item " << item << " outside the catalogue";
        for (int later = cut; later < kCuts; ++later) covered_[later * c_.num_items + item] = 1;
        const double count = item < static_cast<int64_t>(c_.item_counts.size()) ? c_.item_counts[item] : 0;
        novelty += -std::log2(std::max(1.0, count) / total_events_);
        popularity += item < static_cast<int64_t>(percentile_.size()) ? percentile_[item] : 0.0;
      }
      double* at_cut = row + kFirstCut + kPerCut * cut;
      at_cut[0] = static_cast<double>(end);
      at_cut[1] = end ? novelty / static_cast<double>(end) : 0;
      at_cut[2] = end ? popularity / static_cast<double>(end) : 0;
      at_cut[3] = diverse && end >= 2 ? Diversity(r, end, &sum, &norm2, &summed) : 0;
    }
  }
}

std::map<std::string, double> MetricsAccumulator::Reduce(Communicator& comm) const {
  // Gather with padding to the largest rank's count; doubles travel as their int64 bits
  // (collectives carry no float64), exact on every backend.
  const int64_t mine = static_cast<int64_t>(rows_.size() / kWidth);
  at::Tensor count = at::full({1}, mine, at::kLong).to(comm.device());
  at::Tensor counts = comm.AllGather(count).cpu();
  const int64_t max_rows = counts.max().item<int64_t>();
  std::vector<double> padded(rows_);
  padded.resize(static_cast<size_t>(max_rows * kWidth), 0.0);
  at::Tensor bits = at::tensor(padded, at::kDouble).view({max_rows, kWidth}).view(at::kLong);
  at::Tensor all = comm.AllGather(bits.to(comm.device())).cpu().contiguous().view(at::kDouble);
  at::Tensor covered = at::tensor(std::vector<int32_t>(covered_.begin(), covered_.end()), at::kInt).to(comm.device());
  if (c_.num_items > 0) comm.AllReduce(covered, ReduceOp::kMax);
  const at::Tensor listed =
      c_.num_items > 0 ? covered.cpu().view({kCuts, c_.num_items}).to(at::kLong).sum(1) : at::zeros({kCuts}, at::kLong);
  const double* gathered = all.data_ptr<double>();
  std::vector<const double*> results;
  for (int r = 0; r < comm.world_size(); ++r) {
    for (int64_t i = 0; i < counts[r].item<int64_t>(); ++i) results.push_back(gathered + (r * max_rows + i) * kWidth);
  }
  // User order: independent of the world size.
  std::sort(results.begin(), results.end(), [](const double* a, const double* b) { return a[0] < b[0]; });
  const bool diverse = c_.num_categories > 0 || c_.vectors.defined() || c_.list_vectors;
  Totals totals;
  for (const double* r : results) AddUser(r, c_, diverse, totals);
  return Means(std::move(totals), static_cast<double>(results.size()), listed, c_, diverse);
}

std::map<std::string, double> ReduceMetrics(Communicator& comm, const std::vector<UserResult>& local,
                                            const ListContext& items) {
  MetricsAccumulator acc(items);
  acc.Add(local);
  return acc.Reduce(comm);
}

}  // namespace shardrec
