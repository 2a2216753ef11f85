#include "model/job_plan.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/strings.h"
#include "model/catalogue.h"
#include "sharding/planner.h"

namespace shardrec {
namespace {

std::string Bytes(double b) {
  char buf[64];
  if (b >= 1e9) {
    std::snprintf(buf, sizeof(buf), "%.2f GB", b / 1e9);
  } else if (b >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.2f MB", b / 1e6);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f kB", b / 1e3);
  }
  return buf;
}

// The job's catalogue and step, then its plan and memory per GPU.
std::string PlanAndMemoryText(const ClusterSpec& cluster, const ModelConfig& config, const TrainingShape& shape,
                              const PlannerOptions& po, const ShardingPlan& plan, const std::vector<MemoryEstimate>& mem,
                              const CapacityEstimate& cap) {
  std::string out;
  const double gib = double(1ULL << 30);
  Appendf(out, "cluster %s: %d node(s) x %d GPU(s) = %d ranks; %.0f GiB per GPU (%.1f reserved); memory %.0f GB/s; "
              "intra-node %.0f GB/s, inter-node %.0f GB/s per GPU and direction; %.0f us per all-to-all\n",
              cluster.name.c_str(), cluster.nodes, cluster.gpus_per_node, cluster.world_size(), cluster.memory_per_gpu_bytes / gib,
              cluster.reserved_bytes / gib, cluster.memory_bandwidth / 1e9, cluster.intra_node_bandwidth / 1e9,
              cluster.inter_node_bandwidth / 1e9, cluster.latency_seconds * 1e6);
  Appendf(out, "catalogue: %" PRId64 " items x %" PRId64 " (%s)", shape.num_items, config.dim, OptimizerName(config.embedding_optimizer.type));
  if (shape.num_categories > 0) Appendf(out, ", %" PRId64 " categories (%" PRId64 " assignments)", shape.num_categories, shape.category_values);
  if (shape.content_dim > 0) Appendf(out, ", content %" PRId64 "-d", shape.content_dim);
  if (shape.num_users > 0) Appendf(out, ", %" PRId64 " users", shape.num_users);
  Appendf(out, "; ids Zipf(%g), popularity %s over rows\n", shape.ids.zipf, shape.ids.sorted ? "sorted" : "shuffled");
  const int64_t local = (shape.global_batch + shape.world_size - 1) / shape.world_size;
  if (shape.full_softmax) {
    Appendf(out, "step: global batch %" PRId64 " users x %" PRId64 " positions (%" PRId64 " per rank); full softmax: every rank "
                "encodes all %" PRId64 " items each step\n",
                shape.global_batch, config.max_len, local, shape.num_items);
  } else {
    Appendf(out, "step: global batch %" PRId64 " users x %" PRId64 " positions (%" PRId64 " users per rank); sampled softmax over "
                "the global batch's targets + %" PRId64 " uniform negatives: every rank looks up all %.0f distinct candidates\n",
                shape.global_batch, config.max_len, local, shape.negatives, cap.ranks.empty() ? 0.0 : cap.ranks[0].distinct);
  }
  Appendf(out, "\nsharding plan (planner budget %.1f GiB per GPU: memory per GPU less reserved)\n%s", po.memory_budget_bytes / gib,
              plan.ToTable().c_str());
  Appendf(out, "\nmemory per GPU, GiB\n%s", MemoryTable(mem, /*gib=*/true, /*device=*/true).c_str());
  double peak = 0, host = 0;
  for (const auto& m : mem) {
    peak = std::max(peak, m.device());
    host = std::max(host, m.host());
  }
  Appendf(out, "peak %.2f GiB of %.0f GiB per GPU: %s; host memory per rank %.2f GiB\n", peak / gib, cluster.memory_per_gpu_bytes / gib,
              peak <= cluster.memory_per_gpu_bytes ? "fits" : "DOES NOT FIT", host / gib);
  return out;
}

// The all-to-all traffic per rank (ranks with equal rows merged) and the step's communication time.
std::string TrafficText(const ModelConfig& config, const CapacityEstimate& cap) {
  std::string out;
  Appendf(out, "\nall-to-all per step (ids 8 B, rows and gradients %" PRId64 " x 4 B; intra- and inter-node transfers overlap)\n", config.dim);
  Appendf(out, "%-9s %14s %14s %14s %14s %14s %10s %10s\n", "ranks", "distinct ids", "sent intra", "sent inter", "recv intra",
          "recv inter", "time ms", "lookup ms");
  size_t i = 0;
  auto row = [&](const RankTraffic& t) {
    char b[200];
    std::snprintf(b, sizeof(b), "%14.0f %14s %14s %14s %14s %10.3f %10.3f", t.distinct, Bytes(t.sent_intra).c_str(),
                  Bytes(t.sent_inter).c_str(), Bytes(t.received_intra).c_str(), Bytes(t.received_inter).c_str(), t.seconds * 1e3,
                  t.lookup_seconds * 1e3);
    return std::string(b);
  };
  while (i < cap.ranks.size()) {
    size_t j = i + 1;
    while (j < cap.ranks.size() && row(cap.ranks[j]) == row(cap.ranks[i])) ++j;
    const std::string ranks = j - i == 1 ? std::to_string(i) : std::to_string(i) + "-" + std::to_string(j - 1);
    Appendf(out, "%-9s %s\n", ranks.c_str(), row(cap.ranks[i]).c_str());
    i = j;
  }
  Appendf(out, "total %s sent per step over all ranks; the slowest rank's all-to-all takes %.3f ms per step "
              "(bandwidth bound + 4 latencies)",
              Bytes(cap.total_bytes).c_str(), cap.step_seconds * 1e3);
  if (cap.dense_allreduce_seconds > 0) Appendf(out, "; replicated tables' all-reduce %.3f ms", cap.dense_allreduce_seconds * 1e3);
  Appendf(out, "\nthe planner placed the tables by time ms + lookup ms (+ all-reduce) per rank: the plan's est. ms\n");
  return out;
}

}  // namespace

std::string PlanTrainingJob(const ClusterSpec& cluster, const ModelConfig& config, const TrainingShape& shape) {
  ItemCatalog shell;
  shell.num_items = shape.num_items;
  shell.num_categories = shape.num_categories;
  const std::vector<TableSpec> specs = ItemTowerTables(config, shell);
  PlannerOptions po;
  po.world_size = shape.world_size;
  po.memory_budget_bytes = cluster.memory_per_gpu_bytes - cluster.reserved_bytes;
  po.memory_bandwidth = cluster.memory_bandwidth;
  po.link_bandwidth = cluster.nodes > 1 ? cluster.inter_node_bandwidth : cluster.intra_node_bandwidth;
  po.global_batch_size = shape.global_batch;
  po.cluster = cluster;
  po.workloads = ItemTowerWorkloads(config, specs, shape);  // the estimate printed below (one cost model)
  const ShardingPlan plan = PlanSharding(specs, po);
  CapacityEstimate cap;
  const std::vector<MemoryEstimate> mem = EstimateTrainingMemory(config, plan, shape, cluster, &cap);
  return PlanAndMemoryText(cluster, config, shape, po, plan, mem, cap) + TrafficText(config, cap);
}

}  // namespace shardrec
