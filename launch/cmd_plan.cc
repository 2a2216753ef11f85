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
#include "sharding/cluster.h"
#include "launch/flags.h"
#include "model/job_plan.h"
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

int RunPlan(const std::vector<std::string>&) {
  if (FLAGS_cluster.empty()) Fail("--cluster is required (for example configs/cluster-h200x64.yaml)");
  const ClusterSpec cluster = ReadClusterFile(FLAGS_cluster);
  const ModelConfig config = ModelConfigFromFlags();
  const TrainingShape shape = ShapeFromFlags(cluster);
  std::printf("%s", PlanTrainingJob(cluster, config, shape).c_str());
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
