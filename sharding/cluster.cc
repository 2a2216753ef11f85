#include "sharding/cluster.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/flat_yaml.h"
#include "common/strings.h"

namespace shardrec {

ClusterSpec ReadClusterFile(const std::string& path) {
  struct Key {
    const char* name;
    bool required;
    double value;
  };
  std::vector<Key> keys = {{"nodes", true, 0},
                           {"gpus-per-node", true, 0},
                           {"memory-per-gpu-gib", true, 0},
                           {"memory-bandwidth-gbps", true, 0},
                           {"intra-node-bandwidth-gbps", true, 0},
                           {"inter-node-bandwidth-gbps", true, 0},
                           {"reserved-gib", false, 0},
                           {"latency-us", false, 10}};
  ClusterSpec c;
  std::set<std::string> seen;
  for (const FlatYamlEntry& e : ReadFlatYaml(path)) {
    const std::string where = Where(path, e.line);
    const std::string& key = e.key;
    if (!seen.insert(key).second) Fail(where, "key '", key, "' given twice");
    if (e.null) Fail(where, "'", key, "' takes one value");
    const std::string& value = e.value;
    if (key == "name") {
      c.name = value;
      continue;
    }
    auto it = std::find_if(keys.begin(), keys.end(), [&](const Key& k) { return key == k.name; });
    if (it == keys.end()) Fail(where, "unknown key '", key, "' (a cluster file has name, nodes, gpus-per-node, memory-per-gpu-gib, memory-bandwidth-gbps, intra-node-bandwidth-gbps, inter-node-bandwidth-gbps, reserved-gib, latency-us)");
    const auto v = ParseDouble(value);
    const bool whole = std::string(it->name) == "nodes" || std::string(it->name) == "gpus-per-node";
    const bool zero_ok = std::string(it->name) == "reserved-gib" || std::string(it->name) == "latency-us";
    if (!v || !std::isfinite(*v) || *v < 0 || (*v == 0 && !zero_ok) || (whole && *v != std::floor(*v))) {
      Fail(where, "'", key, "' must be a ", whole ? "positive whole number" : zero_ok ? "number >= 0" : "positive number", ", got ", Quote(value));
    }
    it->value = *v;
    it->required = false;
  }
  for (const auto& k : keys) {
    if (k.required) Fail(path, ": missing key '", k.name, "'");
  }
  if (c.name.empty()) c.name = Basename(path);
  auto get = [&](const char* name) {
    return std::find_if(keys.begin(), keys.end(), [&](const Key& k) { return std::string(name) == k.name; })->value;
  };
  c.nodes = static_cast<int>(get("nodes"));
  c.gpus_per_node = static_cast<int>(get("gpus-per-node"));
  c.memory_per_gpu_bytes = get("memory-per-gpu-gib") * double(1ULL << 30);
  c.reserved_bytes = get("reserved-gib") * double(1ULL << 30);
  c.memory_bandwidth = get("memory-bandwidth-gbps") * 1e9;
  c.intra_node_bandwidth = get("intra-node-bandwidth-gbps") * 1e9;
  c.inter_node_bandwidth = get("inter-node-bandwidth-gbps") * 1e9;
  c.latency_seconds = get("latency-us") * 1e-6;
  if (c.reserved_bytes >= c.memory_per_gpu_bytes) Fail(path, ": reserved-gib must be below memory-per-gpu-gib");
  return c;
}

}  // namespace shardrec
