#include "launch/config.h"

#include <gflags/gflags.h>
#include <glog/logging.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec::cli {
namespace {

std::string FlagName(std::string key) {
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

std::string Shown(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

// The text's one document: a mapping of scalars, or nothing (empty, comments only). `path` names
// it in messages.
YAML::Node ParseFlatMapping(const std::string& text, const std::string& path) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    Fail(Where(path, e.mark.line + 1), "invalid YAML: ", e.msg);
  }
  if (docs.size() > 1) Fail(path, ": holds ", docs.size(), " YAML documents; a config is one");
  if (docs.empty() || docs[0].IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!docs[0].IsMap()) Fail(Where(path, docs[0].Mark().line + 1), "expected 'key: value' lines");
  return docs[0];
}

YAML::Node LoadFlatMapping(const std::string& path) { return ParseFlatMapping(ReadFileToString(path), path); }

void ApplyMapping(const YAML::Node& mapping, const std::string& path, const std::vector<std::string>& allowed,
                  const std::vector<std::string>& only) {
  const std::set<std::string> ok(allowed.begin(), allowed.end());
  const std::set<std::string> apply(only.begin(), only.end());
  std::set<std::string> seen;
  for (const auto& kv : mapping) {
    const std::string where = Where(path, kv.first.Mark().line + 1);
    if (!kv.first.IsScalar()) Fail(where, "expected 'key: value', got a ", kv.first.IsMap() ? "mapping" : "sequence", " as key");
    const std::string shown = kv.first.Scalar();
    const std::string key = FlagName(shown);
    if (!ok.count(key)) Fail(where, "unknown key '", shown, "'");
    if (!seen.insert(key).second) Fail(where, "key '", shown, "' given twice");
    if (!kv.second.IsNull() && !kv.second.IsScalar()) Fail(where, "'", shown, "' takes one value, not a list or mapping");
    if (!apply.empty() && !apply.count(key)) continue;
    gflags::CommandLineFlagInfo info;
    gflags::GetCommandLineFlagInfo(key.c_str(), &info);
    if (!info.is_default) continue;  // the command line wins
    const std::string value = kv.second.IsNull() ? "" : kv.second.Scalar();
    if (gflags::SetCommandLineOption(key.c_str(), value.c_str()).empty()) {
      Fail(where, "bad value ", Quote(value), " for '", shown, "' (", info.type, ")");
    }
  }
}

}  // namespace

void ApplyConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                     const std::vector<std::string>& only) {
  ApplyMapping(LoadFlatMapping(path), path, allowed, only);
}

void ApplyConfigText(const std::string& text, const std::string& name, const std::vector<std::string>& allowed) {
  ApplyMapping(ParseFlatMapping(text, name), name, allowed, {});
}

void ApplyRunConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                        const std::vector<std::string>& only) {
  ApplyConfigFile(path, allowed, only);
  // Model keys newer than some runs, with the value that reproduces the model those runs trained.
  static const std::vector<std::pair<std::string, std::string>> kBefore = {{"context", "false"}};
  std::set<std::string> present;
  for (const auto& kv : LoadFlatMapping(path)) present.insert(FlagName(kv.first.Scalar()));
  for (const auto& [key, value] : kBefore) {
    if (present.count(key) || (!only.empty() && std::find(only.begin(), only.end(), key) == only.end())) continue;
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(key.c_str(), &info) || !info.is_default) continue;
    CHECK(!gflags::SetCommandLineOption(key.c_str(), value.c_str()).empty()) << key;
  }
}

std::string EffectiveConfig(const std::vector<std::string>& keys) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& k : keys) {
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(k.c_str(), &info)) continue;
    out << YAML::Key << Shown(k) << YAML::Value;
    if (info.type == "string") {
      // Written as it is read back; a value that is not UTF-8 could not be.
      if (!IsValidUtf8(info.current_value)) Fail("--", Shown(k), ": ", Quote(info.current_value), " is not valid UTF-8");
      out << YAML::DoubleQuoted << info.current_value;
    } else {
      out << info.current_value;
    }
  }
  out << YAML::EndMap;
  CHECK(out.good()) << out.GetLastError();
  return std::string("# effective configuration of this run (flags and config file merged)\n") + out.c_str() + "\n";
}

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
  for (const auto& kv : LoadFlatMapping(path)) {
    const std::string where = Where(path, kv.first.Mark().line + 1);
    if (!kv.first.IsScalar()) Fail(where, "expected 'key: value'");
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) Fail(where, "key '", key, "' given twice");
    if (!kv.second.IsScalar()) Fail(where, "'", key, "' takes one value");
    const std::string value = kv.second.Scalar();
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

}  // namespace shardrec::cli
