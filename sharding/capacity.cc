#include "sharding/capacity.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace shardrec {
namespace {

constexpr int64_t kExactRanks = int64_t{1} << 20;

// Sum of i^-s for i in [begin, end) (1-based): exact below kExactRanks, a midpoint integral above.
double PowerSum(double s, int64_t begin, int64_t end) {
  double sum = 0;
  const int64_t exact_end = std::min(end, kExactRanks);
  for (int64_t i = begin; i < exact_end; ++i) sum += std::pow(static_cast<double>(i), -s);
  const int64_t a = std::max(begin, exact_end);
  if (a < end) {
    // sum_{i=a}^{end-1} i^-s ~ integral from a - 1/2 to end - 1/2.
    const double lo = a - 0.5, hi = end - 0.5;
    sum += std::abs(s - 1.0) < 1e-12 ? std::log(hi / lo) : (std::pow(hi, 1.0 - s) - std::pow(lo, 1.0 - s)) / (1.0 - s);
  }
  return sum;
}

// Simpson's rule of g(x) over [lo, hi] in log space (x = e^u, dx = x du): smooth for the power
// laws here, so a few thousand panels reach 1e-9.
template <typename G>
double LogIntegral(G g, double lo, double hi) {
  const int n = 4096;  // even
  const double u0 = std::log(lo), h = (std::log(hi) - u0) / n;
  double sum = 0;
  for (int k = 0; k <= n; ++k) {
    const double x = std::exp(u0 + k * h);
    const double w = (k == 0 || k == n) ? 1.0 : (k % 2 ? 4.0 : 2.0);
    sum += w * g(x) * x;
  }
  return sum * h / 3.0;
}

double OptimizerBytesPerRow(const OptimizerConfig& o, int64_t cols, int64_t bytes) {
  switch (o.type) {
    case OptimizerType::kSgd: return 0;
    case OptimizerType::kRowWiseAdagrad: return static_cast<double>(bytes);  // one value per row (every shard of it)
    case OptimizerType::kAdam: return 2.0 * static_cast<double>(cols * bytes);
  }
  return 0;
}

// Memory traffic of serving one row of `cols` columns in a step: the forward gather reads it, the
// sparse update reads and writes it and its optimizer state.
double RowTrafficBytes(const TableSpec& s, double cols, double b) {
  const double row = cols * b;
  return row + 2.0 * (row + OptimizerBytesPerRow(s.optimizer, static_cast<int64_t>(cols), static_cast<int64_t>(b)));
}

}  // namespace

double ExpectedDistinct(double zipf, int64_t rows, double draws, double uniform, int64_t begin, int64_t end) {
  CHECK_GE(rows, 1);
  CHECK(zipf >= 0 && draws >= 0 && uniform >= 0) << zipf << " " << draws << " " << uniform;
  begin = std::max<int64_t>(begin, 1);
  end = std::min<int64_t>(end, rows + 1);
  if (end <= begin) return 0;
  if (rows == 1) return draws + uniform > 0 ? 1.0 : 0.0;
  // log P(no uniform draw hits a row)
  const double keep_uniform = uniform > 0 ? uniform * std::log1p(-1.0 / static_cast<double>(rows)) : 0.0;
  if (zipf == 0 || draws == 0) {
    const double p = 1.0 / static_cast<double>(rows);
    return static_cast<double>(end - begin) * -std::expm1((draws > 0 ? draws * std::log1p(-p) : 0.0) + keep_uniform);
  }
  const double norm = PowerSum(zipf, 1, rows + 1);
  // P(rank i is hit) = 1 - (1 - p_i)^draws (1 - 1/rows)^uniform.
  auto hit = [&](double i) {
    const double p = std::pow(i, -zipf) / norm;
    return -std::expm1(draws * std::log1p(-std::min(p, 1.0 - 1e-15)) + keep_uniform);
  };
  double sum = 0;
  const int64_t exact_end = std::min(end, kExactRanks);
  for (int64_t i = begin; i < exact_end; ++i) sum += hit(static_cast<double>(i));
  const int64_t a = std::max(begin, exact_end);
  if (a < end) sum += LogIntegral(hit, a - 0.5, end - 0.5);
  return sum;
}

double ExpectedDistinct(const std::vector<int64_t>& weights, double total, double draws, double uniform, int64_t begin,
                        int64_t end) {
  CHECK(total > 0) << "popularity weights are all zero";
  if (weights.size() == 1) return draws + uniform > 0 && begin <= 0 && end >= 1 ? 1.0 : 0.0;
  const double keep_uniform = uniform > 0 ? uniform * std::log1p(-1.0 / static_cast<double>(weights.size())) : 0.0;
  double sum = 0;
  for (int64_t i = std::max<int64_t>(0, begin); i < std::min<int64_t>(end, static_cast<int64_t>(weights.size())); ++i) {
    const double p = std::min(static_cast<double>(weights[static_cast<size_t>(i)]) / total, 1.0 - 1e-15);
    sum += -std::expm1(draws * std::log1p(-p) + keep_uniform);
  }
  return sum;
}

DistinctIds::DistinctIds(const TableSpec& s, const TableWorkload& wl) : spec_(&s), workload_(&wl) {
  draws_ = wl.local_draws + wl.shared_draws;
  const std::vector<int64_t>* weights = wl.ids.counts;
  if (weights && static_cast<int64_t>(weights->size()) != s.rows) {
    Fail("capacity: table '", s.name, "' has ", s.rows, " rows, its popularity ", weights->size());
  }
  weight_sum_ = weights ? static_cast<double>(std::accumulate(weights->begin(), weights->end(), int64_t{0})) : 0.0;
  whole_ = wl.all_rows ? static_cast<double>(s.rows)
           : weights   ? ExpectedDistinct(*weights, weight_sum_, draws_, wl.uniform_draws, 0, s.rows)
                       : ExpectedDistinct(wl.ids.zipf, s.rows, draws_, wl.uniform_draws, 1, s.rows + 1);
}

double DistinctIds::rows(int64_t begin, int64_t end) const {
  const TableWorkload& wl = *workload_;
  const int64_t n = spec_->rows;
  if (wl.all_rows) return static_cast<double>(end - begin);
  if (end - begin == n) return whole_;
  if (wl.ids.counts) return ExpectedDistinct(*wl.ids.counts, weight_sum_, draws_, wl.uniform_draws, begin, end);
  if (wl.ids.sorted) return ExpectedDistinct(wl.ids.zipf, n, draws_, wl.uniform_draws, begin + 1, end + 1);
  return whole_ * static_cast<double>(end - begin) / static_cast<double>(n);
}

namespace {

// The all-to-all traffic and buffers of a sharded table: every rank asks each shard's owner for
// asked_of[k] distinct rows (of `all` distinct ids in a batch) and gets them back.
void AddShardedTraffic(const TableSpec& s, const TableWorkload& wl, const TablePlan& tp, double all,
                       const std::vector<double>& asked_of, const ClusterSpec& cluster, double b, CapacityEstimate& e) {
  const int w = static_cast<int>(e.ranks.size());
  auto node = [&](int r) { return r / cluster.gpus_per_node; };
  for (int r = 0; r < w; ++r) {
    RankTraffic& me = e.ranks[r];
    me.distinct += all;
    me.buffers += all * (8.0 + 2.0 * static_cast<double>(s.dim) * b) + wl.outputs * static_cast<double>(s.dim) * b * 2;
    for (size_t k = 0; k < tp.shards.size(); ++k) {
      const Shard& sh = tp.shards[k];
      const double cols = static_cast<double>(sh.col_end - sh.col_begin);
      const double asked = asked_of[k];  // distinct ids of rank r that fall into this shard's rows
      RankTraffic& owner = e.ranks[sh.rank];
      owner.buffers += asked * (8.0 + 2.0 * cols * b);  // ids it serves, rows it sends, gradients it gets
      owner.lookup_seconds += asked * RowTrafficBytes(s, cols, b) / cluster.memory_bandwidth;
      if (sh.rank == r) continue;
      const double up = asked * (8.0 + cols * b);  // ids, then gradients, from r to the owner
      const double down = asked * cols * b;       // rows, from the owner to r
      const bool same = node(r) == node(sh.rank);
      (same ? me.sent_intra : me.sent_inter) += up;
      (same ? owner.received_intra : owner.received_inter) += up;
      (same ? owner.sent_intra : owner.sent_inter) += down;
      (same ? me.received_intra : me.received_inter) += down;
    }
  }
}

}  // namespace

// The (rank, table) counts of the all-to-alls, then each rank's and the step's communication
// time (the busier link of each rank), and the dense all-reduce's.
void FinishCapacity(const ClusterSpec& cluster, CapacityEstimate& e) {
  const int sharded_tables = e.sharded_tables;
  const double allreduce_bytes = e.allreduce_bytes;
  const int w = static_cast<int>(e.ranks.size());
  auto node = [&](int r) { return r / cluster.gpus_per_node; };
  if (sharded_tables > 0 && w > 1) {
    // The (rank, table) counts: one int64 per peer and table, twice forward (ids, rows share them).
    for (int r = 0; r < w; ++r) {
      for (int p = 0; p < w; ++p) {
        if (p == r) continue;
        const bool same = node(r) == node(p);
        (same ? e.ranks[r].sent_intra : e.ranks[r].sent_inter) += 8.0 * sharded_tables;
        (same ? e.ranks[p].received_intra : e.ranks[p].received_inter) += 8.0 * sharded_tables;
      }
    }
  }
  for (auto& r : e.ranks) {
    const double intra = std::max(r.sent_intra, r.received_intra) / cluster.intra_node_bandwidth;
    const double inter = std::max(r.sent_inter, r.received_inter) / cluster.inter_node_bandwidth;
    r.seconds = std::max(intra, inter) + (sharded_tables > 0 && w > 1 ? 4 * cluster.latency_seconds : 0.0);
    e.total_bytes += r.sent_intra + r.sent_inter;
    e.step_seconds = std::max(e.step_seconds, r.seconds);
  }
  if (allreduce_bytes > 0) {
    const double bw = cluster.nodes > 1 ? std::min(cluster.intra_node_bandwidth, cluster.inter_node_bandwidth)
                                        : cluster.intra_node_bandwidth;
    e.dense_allreduce_seconds = allreduce_bytes / bw;
  }
}

void AddTableCapacity(const TableSpec& s, const TablePlan& tp, const TableWorkload& wl, const DistinctIds& ids,
                      const ClusterSpec& cluster, int64_t bytes_per_element, CapacityEstimate& e) {
  const int w = static_cast<int>(e.ranks.size());
  const double b = static_cast<double>(bytes_per_element);
  for (const Shard& sh : tp.shards) {
    const double rows = static_cast<double>(sh.row_end - sh.row_begin), cols = static_cast<double>(sh.col_end - sh.col_begin);
    e.ranks[sh.rank].tables += rows * cols * b;
    e.ranks[sh.rank].optimizer += rows * OptimizerBytesPerRow(s.optimizer, sh.col_end - sh.col_begin, bytes_per_element);
  }
  const double whole = ids.whole();
  if (tp.type == ShardingType::kDataParallel) {
    // Lookups are local; the dense gradient (rows x dim) is all-reduced (ring: 2 (w-1)/w of it).
    if (w > 1) e.allreduce_bytes += 2.0 * (w - 1) / w * static_cast<double>(s.rows * s.dim) * b;
    for (auto& r : e.ranks) {
      r.distinct += whole;
      r.buffers += wl.outputs * static_cast<double>(s.dim) * b * 2 + static_cast<double>(s.rows * s.dim) * b;
      r.lookup_seconds += whole * RowTrafficBytes(s, static_cast<double>(s.dim), b) / cluster.memory_bandwidth;
    }
    return;
  }
  ++e.sharded_tables;
  std::vector<double> asked_of(tp.shards.size());
  for (size_t k = 0; k < tp.shards.size(); ++k) asked_of[k] = ids.rows(tp.shards[k].row_begin, tp.shards[k].row_end);
  AddShardedTraffic(s, wl, tp, whole, asked_of, cluster, b, e);
}

CapacityEstimate EstimateCapacity(const std::vector<TableSpec>& specs, const ShardingPlan& plan,
                                  const std::vector<TableWorkload>& workloads, const ClusterSpec& cluster,
                                  int64_t bytes_per_element) {
  CHECK_EQ(specs.size(), workloads.size());
  if (plan.world_size != cluster.world_size()) {
    Fail("capacity: the plan is for ", plan.world_size, " ranks, the cluster '", cluster.name, "' has ", cluster.world_size());
  }
  CapacityEstimate e;
  e.ranks.assign(plan.world_size, RankTraffic());
  for (size_t t = 0; t < specs.size(); ++t) {
    AddTableCapacity(specs[t], plan.Find(specs[t].name), workloads[t], DistinctIds(specs[t], workloads[t]), cluster,
                     bytes_per_element, e);
  }
  FinishCapacity(cluster, e);
  return e;
}

}  // namespace shardrec
