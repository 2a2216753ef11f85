#include "common/flat_yaml.h"

#include <glog/logging.h>
#include <yaml-cpp/yaml.h>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec {

std::vector<FlatYamlEntry> ParseFlatYaml(const std::string& text, const std::string& name) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    Fail(Where(name, e.mark.line + 1), "invalid YAML: ", e.msg);
  }
  if (docs.size() > 1) Fail(name, ": holds ", docs.size(), " YAML documents; a config is one");
  std::vector<FlatYamlEntry> out;
  if (docs.empty() || docs[0].IsNull()) return out;
  if (!docs[0].IsMap()) Fail(Where(name, docs[0].Mark().line + 1), "expected 'key: value' lines");
  for (const auto& kv : docs[0]) {
    const int line = kv.first.Mark().line + 1;
    if (!kv.first.IsScalar()) {
      Fail(Where(name, line), "expected 'key: value', got a ", kv.first.IsMap() ? "mapping" : "sequence", " as key");
    }
    const std::string key = kv.first.Scalar();
    if (!kv.second.IsNull() && !kv.second.IsScalar()) Fail(Where(name, line), "'", key, "' takes one value, not a list or mapping");
    out.push_back({key, kv.second.IsNull() ? "" : kv.second.Scalar(), kv.second.IsNull(), line});
  }
  return out;
}

std::vector<FlatYamlEntry> ReadFlatYaml(const std::string& path) {
  return ParseFlatYaml(ReadFileToString(path, kMaxFlatYamlBytes), path);
}

std::string WriteFlatYaml(const std::vector<FlatYamlValue>& values) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& v : values) {
    out << YAML::Key << v.key << YAML::Value;
    if (v.quoted) {
      out << YAML::DoubleQuoted << v.value;
    } else {
      out << v.value;
    }
  }
  out << YAML::EndMap;
  CHECK(out.good()) << out.GetLastError();
  return std::string(out.c_str()) + "\n";
}

}  // namespace shardrec
