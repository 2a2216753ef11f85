// Flat YAML: one mapping of scalar keys to scalar values ("epochs: 30"), the format of run
// configurations (launch/config.h) and cluster descriptions (sharding/cluster.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardrec {

struct FlatYamlEntry {
  std::string key, value;
  bool null = false;  // "key:" with no value
  int line = 0;       // 1-based, for messages
};

// The entries of `text` in order (`name` stands for the file in messages); an empty document
// (nothing, comments only) has none. Invalid YAML, several documents, anything but a mapping, or
// a key or value that is not a scalar is a UserError naming name:line.
std::vector<FlatYamlEntry> ParseFlatYaml(const std::string& text, const std::string& name);
// Reads `path`: a regular file of at most kMaxFlatYamlBytes (a config is a few hundred bytes).
inline constexpr int64_t kMaxFlatYamlBytes = int64_t{1} << 20;
std::vector<FlatYamlEntry> ReadFlatYaml(const std::string& path);

struct FlatYamlValue {
  std::string key, value;
  bool quoted = false;  // a string, written double-quoted (read back as written)
};
// The mapping as YAML text that ParseFlatYaml reads back to the same keys and values.
std::string WriteFlatYaml(const std::vector<FlatYamlValue>& values);

}  // namespace shardrec
