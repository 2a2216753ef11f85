// shardrec plan: the sharding plan, memory per GPU and all-to-all traffic of a training job on a
// cluster, computed without allocating anything (docs/sharding.md, "Reading a plan").
#include <gflags/gflags.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/strings.h"
#include "io/dataset.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/flags.h"
#include "model/footprint.h"
#include "model/losses.h"

namespace shardrec::cli {
namespace {

bool FlagIsDefault(const char* name) {
  gflags::CommandLineFlagInfo info;
  return !gflags::GetCommandLineFlagInfo(name, &info) || info.is_default;
}

int64_t CountFlag(const char* name, const std::string& value) {
  const auto v = ParseInt64(value);
  if (!v || *v < 1) Fail("--", name, ": expected a positive count, got ", Quote(value));
  return *v;
}

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

// The training job's shape from --data (its catalogue) or --items and friends.
TrainingShape ShapeFromFlags(const ClusterSpec& cluster) {
  TrainingShape shape;
  shape.world_size = cluster.world_size();
  shape.event_cache_bytes = static_cast<double>(Dataset::kEventCacheBytes);
  if (!FLAGS_data.empty()) {
    if (!FLAGS_items.empty()) Fail("give --data or --items, not both");
    auto ds = Dataset::Open(FLAGS_data);
    const DatasetInfo& info = ds->info();
    shape.num_items = info.num_items;
    shape.num_users = info.num_users;
    shape.content_dim = info.content_dim;
    shape.timestamps = info.has_timestamps;
    if (info.has_categories) {
      shape.num_categories = info.num_categories;
      shape.category_values = static_cast<int64_t>(ds->ReadItemCategories(0, info.num_items).values.size());
    }
  } else {
    if (FLAGS_items.empty()) Fail("--items N (or --data FILE) is required: the catalogue's size");
    shape.num_items = CountFlag("items", FLAGS_items);
    shape.num_users = FLAGS_users.empty() ? 0 : CountFlag("users", FLAGS_users);
    // The synthetic generator's defaults do not apply here: no categories or content unless given.
    shape.num_categories = FlagIsDefault("categories") ? 0 : FLAGS_categories;
    if (shape.num_categories < 0) Fail("--categories must be >= 0");
    shape.category_values = shape.num_categories > 0 ? shape.num_items : 0;  // one category per item
    shape.content_dim = FlagIsDefault("content_dim") ? 0 : FLAGS_content_dim;
    if (shape.content_dim < 0) Fail("--content-dim must be >= 0");
  }
  if (FLAGS_batch_size < shape.world_size) {
    Fail("--batch-size ", FLAGS_batch_size, " (global) is smaller than the cluster's ", shape.world_size, " ranks");
  }
  if (!(FLAGS_zipf >= 0) || !std::isfinite(FLAGS_zipf)) Fail("--zipf must be >= 0 (0 = uniform ids)");
  if (FLAGS_id_order != "shuffled" && FLAGS_id_order != "sorted") Fail("--id-order: expected shuffled or sorted, got ", Quote(FLAGS_id_order));
  if (FLAGS_negatives < 0) Fail("--negatives must be >= 0, got ", FLAGS_negatives);
  shape.global_batch = FLAGS_batch_size;
  shape.full_softmax = UsesFullSoftmax(FLAGS_loss, shape.num_items, FLAGS_full_softmax_max_items);
  shape.negatives = FLAGS_negatives;
  shape.ids = {.zipf = FLAGS_zipf, .sorted = FLAGS_id_order == "sorted"};

  return shape;
}

// The job's catalogue and step, then its plan and memory per GPU.
void PrintPlanAndMemory(const ClusterSpec& cluster, const ModelConfig& config, const TrainingShape& shape,
                        const std::vector<TableSpec>& specs, const PlannerOptions& po, const ShardingPlan& plan,
                        const std::vector<MemoryEstimate>& mem, const CapacityEstimate& cap) {
  const double gib = double(1ULL << 30);
  std::printf("cluster %s: %d node(s) x %d GPU(s) = %d ranks; %.0f GiB per GPU (%.1f reserved); memory %.0f GB/s; "
              "intra-node %.0f GB/s, inter-node %.0f GB/s per GPU and direction; %.0f us per all-to-all\n",
              cluster.name.c_str(), cluster.nodes, cluster.gpus_per_node, cluster.world_size(), cluster.memory_per_gpu_bytes / gib,
              cluster.reserved_bytes / gib, cluster.memory_bandwidth / 1e9, cluster.intra_node_bandwidth / 1e9,
              cluster.inter_node_bandwidth / 1e9, cluster.latency_seconds * 1e6);
  std::printf("catalogue: %" PRId64 " items x %" PRId64 " (%s)", shape.num_items, config.dim, OptimizerName(config.embedding_optimizer.type));
  if (shape.num_categories > 0) std::printf(", %" PRId64 " categories (%" PRId64 " assignments)", shape.num_categories, shape.category_values);
  if (shape.content_dim > 0) std::printf(", content %" PRId64 "-d", shape.content_dim);
  if (shape.num_users > 0) std::printf(", %" PRId64 " users", shape.num_users);
  std::printf("; ids Zipf(%g), popularity %s over rows\n", shape.ids.zipf, shape.ids.sorted ? "sorted" : "shuffled");
  const int64_t local = (shape.global_batch + shape.world_size - 1) / shape.world_size;
  if (shape.full_softmax) {
    std::printf("step: global batch %" PRId64 " users x %" PRId64 " positions (%" PRId64 " per rank); full softmax: every rank "
                "encodes all %" PRId64 " items each step\n",
                shape.global_batch, config.max_len, local, shape.num_items);
  } else {
    std::printf("step: global batch %" PRId64 " users x %" PRId64 " positions (%" PRId64 " users per rank); sampled softmax over "
                "the global batch's targets + %" PRId64 " uniform negatives: every rank looks up all %.0f distinct candidates\n",
                shape.global_batch, config.max_len, local, shape.negatives, cap.ranks.empty() ? 0.0 : cap.ranks[0].distinct);
  }
  std::printf("\nsharding plan (planner budget %.1f GiB per GPU: memory per GPU less reserved)\n%s", po.memory_budget_bytes / gib,
              plan.ToTable().c_str());
  std::printf("\nmemory per GPU, GiB\n%s", MemoryTable(mem, /*gib=*/true, /*device=*/true).c_str());
  double peak = 0, host = 0;
  for (const auto& m : mem) {
    peak = std::max(peak, m.device());
    host = std::max(host, m.host());
  }
  std::printf("peak %.2f GiB of %.0f GiB per GPU: %s; host memory per rank %.2f GiB\n", peak / gib, cluster.memory_per_gpu_bytes / gib,
              peak <= cluster.memory_per_gpu_bytes ? "fits" : "DOES NOT FIT", host / gib);
}

// The all-to-all traffic per rank (ranks with equal rows merged) and the step's communication time.
void PrintTraffic(const ModelConfig& config, const CapacityEstimate& cap) {
  std::printf("\nall-to-all per step (ids 8 B, rows and gradients %" PRId64 " x 4 B; intra- and inter-node transfers overlap)\n", config.dim);
  std::printf("%-9s %14s %14s %14s %14s %14s %10s\n", "ranks", "distinct ids", "sent intra", "sent inter", "recv intra", "recv inter",
              "time ms");
  size_t i = 0;
  auto row = [&](const RankTraffic& t) {
    char b[200];
    std::snprintf(b, sizeof(b), "%14.0f %14s %14s %14s %14s %10.3f", t.distinct, Bytes(t.sent_intra).c_str(), Bytes(t.sent_inter).c_str(),
                  Bytes(t.received_intra).c_str(), Bytes(t.received_inter).c_str(), t.seconds * 1e3);
    return std::string(b);
  };
  while (i < cap.ranks.size()) {
    size_t j = i + 1;
    while (j < cap.ranks.size() && row(cap.ranks[j]) == row(cap.ranks[i])) ++j;
    const std::string ranks = j - i == 1 ? std::to_string(i) : std::to_string(i) + "-" + std::to_string(j - 1);
    std::printf("%-9s %s\n", ranks.c_str(), row(cap.ranks[i]).c_str());
    i = j;
  }
  std::printf("total %s sent per step over all ranks; the slowest rank's all-to-all takes %.3f ms per step "
              "(bandwidth bound + 4 latencies)",
              Bytes(cap.total_bytes).c_str(), cap.step_seconds * 1e3);
  if (cap.dense_allreduce_seconds > 0) std::printf("; replicated tables' all-reduce %.3f ms", cap.dense_allreduce_seconds * 1e3);
  std::printf("\n");
}

int RunPlan(const std::vector<std::string>&) {
  if (FLAGS_cluster.empty()) Fail("--cluster is required (for example configs/cluster-h200x64.yaml)");
  const ClusterSpec cluster = ReadClusterFile(FLAGS_cluster);
  const ModelConfig config = ModelConfigFromFlags();
  const TrainingShape shape = ShapeFromFlags(cluster);
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
  const ShardingPlan plan = PlanSharding(specs, po);
  CapacityEstimate cap;
  const std::vector<MemoryEstimate> mem = EstimateTrainingMemory(config, plan, shape, cluster, &cap);

  PrintPlanAndMemory(cluster, config, shape, specs, po, plan, mem, cap);
  PrintTraffic(config, cap);
  return 0;
}

Registrar plan_cmd({
    .name = "plan",
    .summary = "plan a training job on a cluster: sharding, memory per GPU, all-to-all bytes and time (allocates nothing)",
    .usage = "shardrec plan --cluster configs/cluster-h200x64.yaml --items N [--dim D --batch-size B --zipf S --id-order "
             "shuffled|sorted --categories N --content-dim D --users N ...]\n"
             "       shardrec plan --cluster FILE --data FILE.h5 [model flags]",
    .flags = [] {
      std::vector<std::string> f = {"cluster", "items", "users", "data", "categories", "content_dim", "zipf", "id_order",
                                    "batch_size", "negatives", "loss", "full_softmax_max_items"};
      f.insert(f.end(), ModelFlags().begin(), ModelFlags().end());
      return f;
    }(),
    .positional = 0,
    .run = RunPlan,
});

}  // namespace
}  // namespace shardrec::cli
