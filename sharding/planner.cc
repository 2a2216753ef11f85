#include "sharding/planner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include <glog/logging.h>

#include "common/error.h"

namespace shardrec {

ClusterSpec PlannerCluster(const PlannerOptions& o) {
  if (o.cluster) return *o.cluster;
  ClusterSpec c;
  c.name = "planner";
  c.nodes = 1;
  c.gpus_per_node = o.world_size;
  c.memory_per_gpu_bytes = o.memory_budget_bytes;
  c.memory_bandwidth = o.memory_bandwidth;
  c.intra_node_bandwidth = c.inter_node_bandwidth = o.link_bandwidth;
  return c;
}

namespace {

// Every sharding table `s` may take: table-wise on each rank, row-wise, column-wise (dim >= ranks),
// replicated (small tables); only the pinned one when pinned.
std::vector<TablePlan> Candidates(const TableSpec& s, const PlannerOptions& o) {
  std::vector<ShardingType> types;
  if (s.pinned) {
    types = {*s.pinned};
  } else {
    types = {ShardingType::kTableWise, ShardingType::kRowWise};
    if (s.dim >= o.world_size && o.world_size > 1) types.push_back(ShardingType::kColumnWise);
    if (s.rows <= o.data_parallel_max_rows) types.push_back(ShardingType::kDataParallel);
  }
  std::vector<TablePlan> out;
  for (ShardingType t : types) {
    if (t == ShardingType::kTableWise) {
      for (int r = 0; r < o.world_size; ++r) out.push_back({s.name, t, MakeShards(s, t, o.world_size, r)});
    } else {
      out.push_back({s.name, t, MakeShards(s, t, o.world_size)});
    }
  }
  return out;
}

TableWorkload DefaultWorkload(const TableSpec& s, const PlannerOptions& o) {
  TableWorkload w;
  w.ids = {.zipf = 0, .sorted = false};
  w.local_draws = s.lookups_per_sample * static_cast<double>(o.global_batch_size) / std::max(1, o.world_size);
  w.outputs = w.local_draws;
  return w;
}

[[noreturn]] void NothingFits(const TableSpec& s, const PlannerOptions& o, double min_peak_memory) {
  std::ostringstream os;
  os << "planner: no sharding of table '" << s.name << "' (" << s.rows << " x " << s.dim
     << (s.pinned ? std::string(", pinned ") + ShardingTypeName(*s.pinned) : std::string()) << ") fits the per-rank memory budget of "
     << o.memory_budget_bytes / (1 << 20) << " MiB with " << o.world_size << " ranks: it alone needs at least "
     << min_peak_memory / (1 << 20) << " MiB on one rank, on top of the tables placed before it; add ranks or memory";
  Fail(os.str());
}

// The placements so far (unfinished: FinishCapacity runs on each trial copy).
struct Placement {
  CapacityEstimate estimate;
  double score = std::numeric_limits<double>::infinity();
};

// The best candidate of table `s` on top of `so_far`, and its estimate (unfinished).
Placement PlaceTable(const TableSpec& s, const TableWorkload& wl, const PlannerOptions& o, const ClusterSpec& cluster,
                     const CapacityEstimate& so_far, TablePlan& chosen) {
  const DistinctIds ids(s, wl);
  Placement best;
  double min_peak_memory = std::numeric_limits<double>::infinity();
  for (const TablePlan& c : Candidates(s, o)) {
    CapacityEstimate trial = so_far;
    AddTableCapacity(s, c, wl, ids, cluster, o.bytes_per_element, trial);
    CapacityEstimate finished = trial;
    FinishCapacity(cluster, finished);
    double peak = 0, busiest = 0, added = 0;
    for (int r = 0; r < o.world_size; ++r) {
      const double memory = trial.ranks[r].tables + trial.ranks[r].optimizer;
      added = std::max(added, memory - so_far.ranks[r].tables - so_far.ranks[r].optimizer);
      peak = std::max(peak, memory);
      busiest = std::max(busiest, finished.RankSeconds(r));
    }
    min_peak_memory = std::min(min_peak_memory, added);
    if (peak > o.memory_budget_bytes) continue;
    // Busiest rank first; ties broken by the peak memory (spread the bytes).
    const double score = busiest + 1e-15 * peak;
    if (score < best.score) {
      best = {trial, score};
      chosen = c;
    }
  }
  if (!std::isfinite(best.score)) NothingFits(s, o, min_peak_memory);
  return best;
}

}  // namespace

ShardingPlan PlanSharding(const std::vector<TableSpec>& specs, const PlannerOptions& o) {
  ValidateTables(specs);
  if (o.world_size < 1) Fail("planner: world size must be >= 1");
  // The caller's invariants: one workload per table, a cluster of the planned world size.
  CHECK(o.workloads.empty() || o.workloads.size() == specs.size()) << o.workloads.size() << " workloads, " << specs.size() << " tables";
  const ClusterSpec cluster = PlannerCluster(o);
  CHECK_EQ(cluster.world_size(), o.world_size) << "cluster " << cluster.name;
  // Largest tables first (by bytes), so the big decisions are made while ranks are empty.
  std::vector<size_t> order(specs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto bytes = [&](const TableSpec& s) { return double(s.rows) * s.dim * (1 + s.optimizer.StateFactor(s.dim)); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bytes(specs[a]) > bytes(specs[b]); });
  ShardingPlan plan;
  plan.world_size = o.world_size;
  plan.tables.resize(specs.size());
  CapacityEstimate so_far;
  so_far.ranks.assign(static_cast<size_t>(o.world_size), RankTraffic());
  for (size_t i : order) {
    const TableWorkload wl = o.workloads.empty() ? DefaultWorkload(specs[i], o) : o.workloads[i];
    so_far = PlaceTable(specs[i], wl, o, cluster, so_far, plan.tables[i]).estimate;
  }
  FinishCapacity(cluster, so_far);
  plan.loads.assign(static_cast<size_t>(o.world_size), RankLoad());
  for (int r = 0; r < o.world_size; ++r) {
    plan.loads[r].memory_bytes = so_far.ranks[r].tables + so_far.ranks[r].optimizer;
    plan.loads[r].seconds = so_far.RankSeconds(r);
  }
  return plan;
}

}  // namespace shardrec
