// Recall lists for a serving tier (`shardrec recall`, docs/formats.md "Recall lists"): top-K items
// with scores for every user of a selection, precomputed from an export. DIR/ holds one part file
// per rank that wrote it (HDF5: raw user ids, raw item ids, scores, counts) and manifest.json,
// written last with the parts' sizes and checksums. The directory is renamed into place whole: a
// reader finds a complete set of lists or none.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/file_util.h"

namespace shardrec {

inline constexpr int64_t kRecallFormatVersion = 1;

struct RecallPart {
  int64_t k = 0;
  std::vector<std::string> users;  // raw user ids, in the order of the selection
  std::vector<std::string> items;  // [users x k] raw item ids, best first; "" past a user's count
  std::vector<float> scores;       // [users x k] inner products; NaN past a user's count
  std::vector<int32_t> counts;     // items found per user (< k only when the catalogue runs out)
};

void WriteRecallPart(const std::string& path, const RecallPart& part);
// A damaged or foreign file is a UserError naming it.
RecallPart ReadRecallPart(const std::string& path);

struct RecallPartInfo {
  std::string file;
  int64_t users = 0;
};

struct RecallManifest {
  int64_t format_version = kRecallFormatVersion;
  std::string export_dir;      // the export version the lists come from (absolute)
  std::string export_version;  // its name
  std::string search;          // "exact" or the index factory
  int64_t k = 0;
  std::string selection;       // "all" or the users file
  int64_t num_users = 0;       // over all parts
  double seconds = 0;          // wall time of the search, all ranks
  std::vector<RecallPartInfo> parts;  // in selection order: part i holds the next parts[i].users users
  std::map<std::string, FileDigest> files;
};

// Computes the parts' sizes and CRC-32C and writes DIR/manifest.json atomically.
void WriteRecallManifest(const std::string& dir, RecallManifest manifest);
// Reads and verifies (sizes and checksums of every part): UserError naming the file otherwise.
RecallManifest ReadRecallManifest(const std::string& dir);

// A users file (`shardrec recall --users FILE`): one raw user id per line, surrounding blanks
// trimmed; empty lines and lines starting with '#' skipped. A UserError names FILE:LINE for an id
// longer than kMaxUserIdBytes, an id holding a control byte (NUL included), an id listed twice, and
// a file with no ids (the file itself: a regular file of at most kMaxReadBytes).
inline constexpr size_t kMaxUserIdBytes = 4096;
struct UserListEntry {
  std::string id;
  int64_t line = 0;
};
std::vector<UserListEntry> ParseUserList(const std::string& text, const std::string& name);
std::vector<UserListEntry> ReadUserList(const std::string& path);

}  // namespace shardrec
