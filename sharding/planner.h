// The sharding planner (TorchRec's enumerate -> estimate -> partition): per table, every sharding
// it may take, each scored with the capacity model of sharding/capacity.h (the estimate `shardrec
// plan` and the training's memory line print), placed where it least raises the busiest rank.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "sharding/capacity.h"
#include "sharding/cluster.h"
#include "sharding/plan.h"
#include "sharding/types.h"

namespace shardrec {

struct PlannerOptions {
  int world_size = 1;
  double memory_budget_bytes = 16e9;  // per rank, for the tables' weights and optimizer state
  double memory_bandwidth = 50e9;     // bytes/s per rank, for lookups and updates
  double link_bandwidth = 10e9;       // bytes/s per rank and direction, when `cluster` is not given
  int64_t global_batch_size = 1024;   // samples per step, for the default workloads
  int64_t bytes_per_element = 4;
  int64_t data_parallel_max_rows = 100000;  // larger tables are never replicated
  // The machines: ranks per node, each link's bandwidth, the all-to-all latency. Unset: world_size
  // ranks on one node linked at link_bandwidth (what a training run knows of its machines).
  std::optional<ClusterSpec> cluster;
  // What each table serves per step, in the specs' order (model/footprint.h ItemTowerWorkloads).
  // Empty: every rank draws lookups_per_sample ids per sample of its share of the global batch,
  // uniformly over the rows.
  std::vector<TableWorkload> workloads;
};

// The cluster the planner scores with: options.cluster, or one node of options.world_size ranks.
ClusterSpec PlannerCluster(const PlannerOptions& options);

// Enumerates shardings per table (or takes the pinned one) and places tables largest first, each
// where the busiest rank's estimated step time (all-to-all + lookups + the replicated tables'
// all-reduce, sharding/capacity.h) is lowest, within the memory budget; ties go to the lower peak
// memory, then to the first candidate (table-wise on the lowest rank). Throws UserError naming the
// table when nothing fits.
ShardingPlan PlanSharding(const std::vector<TableSpec>& specs, const PlannerOptions& options);

}  // namespace shardrec
