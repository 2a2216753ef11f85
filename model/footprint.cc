#include "model/footprint.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

namespace shardrec {
namespace {

// Distinct items a step looks up as candidates: among its `positions` targets and the shared
// negatives, or the whole catalogue under a full softmax.
double DistinctItems(const TrainingShape& shape, double positions) {
  if (shape.full_softmax) return static_cast<double>(shape.num_items);
  const double negatives = static_cast<double>(shape.negatives);
  if (const std::vector<int64_t>* c = shape.ids.counts) {
    return ExpectedDistinct(*c, static_cast<double>(std::accumulate(c->begin(), c->end(), int64_t{0})), positions, negatives, 0,
                            shape.num_items);
  }
  return ExpectedDistinct(shape.ids.zipf, shape.num_items, positions, negatives, 1, shape.num_items + 1);
}

}  // namespace

std::vector<TableWorkload> ItemTowerWorkloads(const ModelConfig& config, const std::vector<TableSpec>& specs,
                                              const TrainingShape& shape) {
  const double positions = static_cast<double>(shape.global_batch) * static_cast<double>(config.max_len);
  const double local_rows = std::ceil(static_cast<double>(shape.global_batch) / std::max(1, shape.world_size));
  const double candidates = DistinctItems(shape, positions);  // one pass over the catalogue's counts
  std::vector<TableWorkload> out;
  for (const TableSpec& s : specs) {
    TableWorkload w;
    if (s.name == "item_category") {
      // The categories of the items looked up (each item's categories, pooled): uniform ids.
      w.ids = {.zipf = 0, .sorted = false};
      const double per_item = shape.num_items > 0 ? static_cast<double>(shape.category_values) / static_cast<double>(shape.num_items) : 1.0;
      w.local_draws = candidates * per_item;
      w.outputs = w.local_draws;
    } else if (shape.full_softmax) {
      // Every rank encodes the whole catalogue each step.
      w.all_rows = true;
      w.outputs = static_cast<double>(s.rows);
    } else if (s.name == "item_input_id") {
      // Separate input vectors: only this rank's history items.
      w.ids = shape.ids;
      w.local_draws = local_rows * static_cast<double>(config.max_len);
      w.outputs = w.local_draws;
    } else {
      w.ids = shape.ids;
      w.shared_draws = positions;
      w.uniform_draws = static_cast<double>(shape.negatives);
      // Output vectors of the candidates and input vectors of this rank's history items.
      w.outputs = candidates + std::min(candidates, local_rows * static_cast<double>(config.max_len));
    }
    out.push_back(w);
  }
  return out;
}

std::vector<MemoryEstimate> EstimateTrainingMemory(const ModelConfig& config, const ShardingPlan& plan,
                                                   const TrainingShape& shape, const ClusterSpec& cluster,
                                                   CapacityEstimate* capacity) {
  ItemCatalog shell;
  shell.num_items = shape.num_items;
  shell.num_categories = shape.num_categories;
  const std::vector<TableSpec> specs = ItemTowerTables(config, shell);
  const CapacityEstimate c = EstimateCapacity(specs, plan, ItemTowerWorkloads(config, specs, shape), cluster);
  if (capacity) *capacity = c;
  const double f = 4;  // float32
  const double d = static_cast<double>(config.dim), len = static_cast<double>(config.max_len);
  const double heads = static_cast<double>(config.heads), blocks = static_cast<double>(config.blocks);
  const double rows = std::ceil(static_cast<double>(shape.global_batch) / std::max(1, shape.world_size));
  const double positions = rows * len;  // every row padded to max_len: the upper bound
  // Saved for backward, per position: the input stage (item, position, time and context vectors,
  // their sum, layer norm, dropout) ~10 d; per block 24 d (norms, q k v, attention output and its
  // projection, residuals, the 4 d feed-forward twice, dropout masks and outputs) + 4 h L
  // (scores, softmax, dropout mask and dropped weights).
  double act = f * positions * (10 * d + blocks * (24 * d + 4 * heads * len));
  // The loss: position vectors and their gradients; candidate vectors, normalised copies and
  // gradients; three blocks of about 1 MB of logits.
  // The candidates every rank looks up (the item table's distinct ids; its capacity figure also
  // counts other tables' ids).
  const double candidates = DistinctItems(shape, static_cast<double>(shape.global_batch) * len);
  act += f * positions * d * 2 + f * candidates * d * 3 + 3 * (1 << 20);
  const double content_dim = config.use_content ? static_cast<double>(shape.content_dim) : 0.0;
  // The content loss: the candidates' content-only vectors (and normalised copies), its own
  // candidate gradient; the targets' content vectors, their gradient and a second user gradient.
  const bool content_path = content_dim > 0 || (config.use_categories && shape.num_categories > 0);
  if (shape.content_loss && content_path) act += f * candidates * d * 3 + f * positions * d * 3;
  const double dense = f * 4 * static_cast<double>(DenseParameterCount(config, static_cast<int64_t>(content_dim)));
  // Per item, on every rank. Device: the loss's sampling weights (float) and unseen mask (bool),
  // the content vectors (float) when the tower reads them. Host: training counts (int64) and the
  // catalogue's categories (CSR, int64) held by the trainer, by the model and as its tensors.
  const double items = static_cast<double>(shape.num_items), values = static_cast<double>(shape.category_values);
  double items_device = 5 * items, items_host = 8 * items;
  items_device += f * items * content_dim;
  items_host += f * items * content_dim;
  if (config.use_categories && shape.num_categories > 0) items_host += 3 * (8 * (items + 1) + 8 * values);
  // Per user: the dataset's offsets (int64), opened by the trainer and by the reader; the reader's
  // eligible users (int64), row lengths (int32) and epoch order (int64).
  // Two open datasets read events: the trainer's, which counts the items, and the reader's (items
  // and timestamps); each keeps at most event_cache_bytes of decompressed chunks per array.
  const double events = static_cast<double>(shape.num_events);
  auto cache = [&](double bytes_per_event) { return std::min(shape.event_cache_bytes, events * bytes_per_event); };
  const double data = static_cast<double>(shape.num_users) * (8 * 2 + 8 + 4 + 8) + 2 * cache(4) + (shape.timestamps ? cache(8) : 0);
  // Validation: the catalogue's vectors (one matrix when input and output vectors are tied; 1/W
  // of the output vectors when evaluation shards them), a batch of scores, and its reader's
  // offsets and caches.
  double evaluation = 0;
  if (shape.validation) {
    const double vectors = f * items * d * (config.separate_input_vectors ? 2 : 1);
    const int world = static_cast<int>(c.ranks.size());
    evaluation = (EvaluationShardsCatalogue(vectors, world) ? f * items * d / world : vectors) + std::min(shape.score_bytes, f * items * rows) +
                 static_cast<double>(shape.num_users) * 8 * 3 + cache(4) + (shape.timestamps ? cache(8) : 0);
  }
  std::vector<MemoryEstimate> out(c.ranks.size());
  for (size_t r = 0; r < out.size(); ++r) {
    MemoryEstimate& m = out[r];
    m.tables = c.ranks[r].tables;
    m.optimizer = c.ranks[r].optimizer;
    m.buffers = c.ranks[r].buffers;
    m.dense = dense;
    m.activations = act;
    m.evaluation = evaluation;
    m.items_device = items_device;
    m.items_host = items_host;
    m.data = data;
    m.runtime = cluster.reserved_bytes;
  }
  return out;
}

std::string MemoryTable(const std::vector<MemoryEstimate>& m, bool gib, bool device) {
  const double unit = gib ? double(1ULL << 30) : double(1 << 20);
  std::ostringstream os;
  char buf[400];
  std::snprintf(buf, sizeof(buf), "%-9s %9s %9s %9s %9s %11s %9s %9s %9s %9s %10s\n", "ranks", "tables", "optimizer",
                "buffers", "dense", "activations", "eval", "items", "runtime", device ? "device" : "data", device ? "host" : "total");
  os << buf;
  auto line = [&](const MemoryEstimate& e) {
    char b[256];
    const char* fmt = gib ? "%9.2f %9.2f %9.2f %9.2f %11.2f %9.2f %9.2f %9.2f %9.2f %10.2f"
                          : "%9.0f %9.0f %9.0f %9.0f %11.0f %9.0f %9.0f %9.0f %9.0f %10.0f";
    const double items = device ? e.items_device : e.items_device + e.items_host;
    std::snprintf(b, sizeof(b), fmt, e.tables / unit, e.optimizer / unit, e.buffers / unit, e.dense / unit,
                  e.activations / unit, e.evaluation / unit, items / unit, e.runtime / unit, (device ? e.device() : e.data) / unit,
                  (device ? e.host() : e.total()) / unit);
    return std::string(b);
  };
  size_t i = 0;
  while (i < m.size()) {
    size_t j = i + 1;
    while (j < m.size() && line(m[j]) == line(m[i])) ++j;
    const std::string ranks = j - i == 1 ? std::to_string(i) : std::to_string(i) + "-" + std::to_string(j - 1);
    std::snprintf(buf, sizeof(buf), "%-9s %s\n", ranks.c_str(), line(m[i]).c_str());
    os << buf;
    i = j;
  }
  os << "(" << (gib ? "GiB" : "MiB") << "; eval: validation, which does not overlap a step's buffers and activations" << (device ? "; items: the per-item arrays on the device; host: per-item arrays, per-user arrays and event caches in host memory)\n" : "; items: per-item arrays; data: per-user arrays and event caches)\n");
  return os.str();
}

}  // namespace shardrec
