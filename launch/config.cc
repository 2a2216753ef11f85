#include "launch/config.h"

#include <gflags/gflags.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec::cli {

void ApplyConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                     const std::vector<std::string>& only) {
  const std::string text = ReadFileToString(path);
  const std::set<std::string> ok(allowed.begin(), allowed.end());
  const std::set<std::string> apply(only.begin(), only.end());
  LineIterator it(text);
  std::string_view line;
  std::set<std::string> seen;
  while (it.Next(&line)) {
    std::string_view l = line.substr(0, line.find('#'));
    if (Trim(l).empty()) continue;
    const size_t colon = l.find(':');
    if (colon == std::string_view::npos) Fail(Where(path, it.line_number()), "expected 'key: value', got ", Quote(line));
    std::string key(Trim(l.substr(0, colon)));
    std::string value(Trim(l.substr(colon + 1)));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    std::replace(key.begin(), key.end(), '-', '_');
    std::string shown = key;
    std::replace(shown.begin(), shown.end(), '_', '-');
    if (!ok.count(key)) Fail(Where(path, it.line_number()), "unknown key '", shown, "'");
    if (!seen.insert(key).second) Fail(Where(path, it.line_number()), "key '", shown, "' given twice");
    if (!apply.empty() && !apply.count(key)) continue;
    gflags::CommandLineFlagInfo info;
    gflags::GetCommandLineFlagInfo(key.c_str(), &info);
    if (!info.is_default) continue;  // the command line wins
    if (gflags::SetCommandLineOption(key.c_str(), value.c_str()).empty()) {
      Fail(Where(path, it.line_number()), "bad value ", Quote(value), " for '", shown, "' (", info.type, ")");
    }
  }
}

std::string EffectiveConfig(const std::vector<std::string>& keys) {
  std::string out = "# effective configuration of this run (flags and config file merged)\n";
  for (const auto& k : keys) {
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(k.c_str(), &info)) continue;
    std::string shown = k;
    std::replace(shown.begin(), shown.end(), '_', '-');
    out += shown + ": " + (info.type == "string" ? "\"" + info.current_value + "\"" : info.current_value) + "\n";
  }
  return out;
}

}  // namespace shardrec::cli
