#include "launch/config.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/flat_yaml.h"
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

void ApplyMapping(const std::vector<FlatYamlEntry>& mapping, const std::string& path, const std::vector<std::string>& allowed,
                  const std::vector<std::string>& only) {
  const std::set<std::string> ok(allowed.begin(), allowed.end());
  const std::set<std::string> apply(only.begin(), only.end());
  std::set<std::string> seen;
  for (const FlatYamlEntry& e : mapping) {
    const std::string where = Where(path, e.line);
    const std::string key = FlagName(e.key);
    if (!ok.count(key)) Fail(where, "unknown key '", e.key, "'");
    if (!seen.insert(key).second) Fail(where, "key '", e.key, "' given twice");
    if (!apply.empty() && !apply.count(key)) continue;
    gflags::CommandLineFlagInfo info;
    gflags::GetCommandLineFlagInfo(key.c_str(), &info);
    if (!info.is_default) continue;  // the command line wins
    if (gflags::SetCommandLineOption(key.c_str(), e.value.c_str()).empty()) {
      Fail(where, "bad value ", Quote(e.value), " for '", e.key, "' (", info.type, ")");
    }
  }
}

}  // namespace

void ApplyConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                     const std::vector<std::string>& only) {
  ApplyMapping(ReadFlatYaml(path), path, allowed, only);
}

void ApplyConfigText(const std::string& text, const std::string& name, const std::vector<std::string>& allowed) {
  ApplyMapping(ParseFlatYaml(text, name), name, allowed, {});
}

void ApplyRunConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                        const std::vector<std::string>& only) {
  ApplyConfigFile(path, allowed, only);
  // Model keys newer than some runs, with the value that reproduces the model those runs trained.
  static const std::vector<std::pair<std::string, std::string>> kBefore = {{"context", "false"}};
  std::set<std::string> present;
  for (const FlatYamlEntry& e : ReadFlatYaml(path)) present.insert(FlagName(e.key));
  for (const auto& [key, value] : kBefore) {
    if (present.count(key) || (!only.empty() && std::find(only.begin(), only.end(), key) == only.end())) continue;
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(key.c_str(), &info) || !info.is_default) continue;
    CHECK(!gflags::SetCommandLineOption(key.c_str(), value.c_str()).empty()) << key;
  }
}

std::string EffectiveConfig(const std::vector<std::string>& keys) {
  std::vector<FlatYamlValue> values;
  for (const auto& k : keys) {
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(k.c_str(), &info)) continue;
    // Written as it is read back; a value that is not UTF-8 could not be.
    const bool quoted = info.type == "string";
    if (quoted && !IsValidUtf8(info.current_value)) Fail("--", Shown(k), ": ", Quote(info.current_value), " is not valid UTF-8");
    values.push_back({Shown(k), info.current_value, quoted});
  }
  return "# effective configuration of this run (flags and config file merged)\n" + WriteFlatYaml(values);
}

}  // namespace shardrec::cli
