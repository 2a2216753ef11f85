// The memory model of a training job: what each rank holds, by what holds it, computed from the
// model's configuration, the catalogue's shape and the plan, without allocating anything. The
// embedding tables' share (weights, optimizer state, all-to-all buffers) comes from
// sharding/capacity.h; this adds the dense tower, its activations and the per-item and per-user
// arrays every rank keeps. `shardrec plan` prints it; `shardrec train` prints it beside the
// measured peak (docs/sharding.md, "The memory model").
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "model/two_tower.h"
#include "sharding/capacity.h"

namespace shardrec {

// What a training job is sized by, besides the model's configuration.
struct TrainingShape {
  int64_t num_items = 0;
  int64_t num_categories = 0;    // 0 = none
  int64_t category_values = 0;   // category assignments over all items
  int64_t content_dim = 0;       // 0 = none
  int64_t num_users = 0;         // users of the training data (the reader keeps a few ints per user)
  int64_t num_events = 0;        // events of the data (bounds what the readers cache)
  int64_t global_batch = 256;    // users per step over all ranks
  int world_size = 1;
  bool full_softmax = false;     // every step scores the whole catalogue
  bool timestamps = true;        // the events have timestamps (a second cached events array)
  double event_cache_bytes = 0;  // what a dataset reader keeps of each events array (io/dataset.h)
  bool validation = false;       // the run validates (ranks the whole catalogue between epochs)
  double score_bytes = 512.0 * (1 << 20);  // evaluation's cap on one rank's [rows x items] scores
  int64_t negatives = 256;       // sampled softmax: shared uniform negatives per step
  bool content_loss = false;     // the second, content-only softmax of train/step.h
  IdDistribution ids;            // of the items users interact with
};

// Bytes per rank, by what holds them.
// Whether a multi-rank evaluation shards the catalogue's vectors over the ranks (eval/evaluate.h,
// EvalScoring::kAuto): above 1 GiB of them, with more than one rank.
inline bool EvaluationShardsCatalogue(double vector_bytes, int world_size) {
  return world_size > 1 && vector_bytes > double(int64_t{1} << 30);
}

struct MemoryEstimate {
  double tables = 0;       // embedding shards
  double optimizer = 0;    // their sparse optimizer state
  double buffers = 0;      // one step's all-to-all id and row buffers
  double dense = 0;        // dense parameters, gradients and AdamW moments
  double activations = 0;  // what one step keeps for its backward pass, and the loss's blocks
  double evaluation = 0;   // validation (not at the same time as a step's buffers and activations):
                           // every item's vector, one batch of scores, a reader
  double items_device = 0; // per-item arrays on every rank's device: the loss's sampling weights, content
  double items_host = 0;   // per-item arrays in every rank's host memory: categories, training counts
  double data = 0;         // host: per-user arrays (the dataset's offsets, the reader's order) and the
                           // readers' caches of event blocks
  double runtime = 0;      // the program and its libraries (and a device's context)
  // What lives where the model runs (on a GPU: its memory), and in all.
  double device() const {
    return tables + optimizer + dense + items_device + runtime + std::max(buffers + activations, evaluation);
  }
  double host() const { return items_host + data; }
  double total() const { return device() + host(); }
};

// The ids each item-tower table serves per step on every rank (sharding/capacity.h), as TrainStep
// asks for them: the global batch's targets and the shared negatives are every rank's candidates
// (every rank looks all of them up); the histories' items are among the targets. Categories: the
// categories of those items, uniform.
std::vector<TableWorkload> ItemTowerWorkloads(const ModelConfig& config, const std::vector<TableSpec>& specs,
                                              const TrainingShape& shape);

// Per-rank estimate of a training job under `plan` (the traffic of the tables is in *capacity).
std::vector<MemoryEstimate> EstimateTrainingMemory(const ModelConfig& config, const ShardingPlan& plan,
                                                   const TrainingShape& shape, const ClusterSpec& cluster,
                                                   CapacityEstimate* capacity = nullptr);

// The per-rank table people read: one line per rank (ranks with equal figures merged), MiB or GiB.
// `device`: the total column is the device's share and the host arrays get their own column.
std::string MemoryTable(const std::vector<MemoryEstimate>& m, bool gib, bool device);

}  // namespace shardrec
