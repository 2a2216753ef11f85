// The plan of a training job on a cluster, computed without allocating anything: what `shardrec
// plan` prints (docs/sharding.md, "Reading a plan"): the sharding plan, memory per GPU by what holds
// it, and the all-to-all traffic of one step with its time.
#pragma once

#include <string>

#include "model/footprint.h"
#include "sharding/cluster.h"

namespace shardrec {

// Plans the item tower's tables for `cluster` (its memory less reserved per GPU, its bandwidths)
// and returns the report: the cluster, the catalogue and step, the plan, memory per GPU, traffic.
std::string PlanTrainingJob(const ClusterSpec& cluster, const ModelConfig& config, const TrainingShape& shape);

}  // namespace shardrec
