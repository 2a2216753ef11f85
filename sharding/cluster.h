// A cluster description: what `shardrec plan` sizes a job for (sharding/capacity.h), and its file
// format. Plain data, no tensor library.
#pragma once

#include <string>

namespace shardrec {

// The machines a job runs on: `nodes` x `gpus_per_node` ranks, rank r on node r / gpus_per_node.
struct ClusterSpec {
  std::string name;
  int nodes = 1;
  int gpus_per_node = 1;
  double memory_per_gpu_bytes = 16.0 * (1ULL << 30);
  double reserved_bytes = 0;          // per rank, outside the model: runtime, context, allocator slack
  double memory_bandwidth = 50e9;     // bytes/s per rank (HBM on a GPU)
  double intra_node_bandwidth = 10e9; // bytes/s per rank and direction, to a rank on the same node
  double inter_node_bandwidth = 10e9; // bytes/s per rank and direction, to other nodes
  double latency_seconds = 10e-6;     // per all-to-all
  int world_size() const { return nodes * gpus_per_node; }
};

// A cluster description for `shardrec plan` (configs/cluster-*.yaml): flat YAML with the keys
//   name, nodes, gpus-per-node, memory-per-gpu-gib, memory-bandwidth-gbps,
//   intra-node-bandwidth-gbps, inter-node-bandwidth-gbps (GB/s = 1e9 bytes/s, per GPU and direction),
//   reserved-gib (optional, 0: per GPU, outside the model), latency-us (optional, 10: per all-to-all).
// A missing or unknown key, or a value that is not a positive number, is a UserError naming the
// file, line and key.
ClusterSpec ReadClusterFile(const std::string& path);

}  // namespace shardrec
