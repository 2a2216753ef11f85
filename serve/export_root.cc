#include "serve/export_root.h"

#include <signal.h>
#include <unistd.h>

#include <glog/logging.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/manifest.h"
#include "io/export_format.h"

namespace shardrec {
namespace {

// The process id a temporary name records ("NAME.tmp-PID-N", ".V.retired-PID"), or 0.
pid_t WriterOf(const std::string& name) {
  for (const char* tag : {".tmp-", ".retired-"}) {
    const size_t at = name.rfind(tag);
    if (at == std::string::npos) continue;
    const size_t begin = at + std::strlen(tag), end = name.find('-', begin);
    const std::string pid = name.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) return 0;
    return static_cast<pid_t>(std::stol(pid));
  }
  return 0;
}

}  // namespace

std::vector<std::string> ListVersions(const std::string& root) {
  std::vector<std::string> out;
  if (!IsDirectory(root)) return out;
  for (const auto& n : ListDirectory(root)) {
    if (!n.empty() && n[0] != '.' && PathExists(root + "/" + n + "/manifest.json")) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> CleanExportRoot(const std::string& root) {
  std::vector<std::string> removed;
  if (!IsDirectory(root)) return removed;
  auto stale = [](const std::string& name) {
    const pid_t pid = WriterOf(name);
    if (pid > 0) return pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH;  // its writer is gone
    // A staging directory (an export's, an index build's): under the lock, nobody is filling it.
    return name.size() > 9 && name[0] == '.' && name.compare(name.size() - 8, 8, ".partial") == 0;
  };
  for (const auto& name : ListDirectory(root)) {
    // Only names no version can have (versions never start with '.'; LATEST's temporaries).
    if ((name[0] == '.' || name.rfind("LATEST.tmp-", 0) == 0) && stale(name)) {
      RemoveAll(root + "/" + name);
      removed.push_back(name);
    }
  }
  for (const auto& v : ListVersions(root)) {
    for (const auto& name : ListDirectory(root + "/" + v)) {
      if (stale(name)) {  // a killed index build's ".index.g<N>.partial" too
        RemoveAll(root + "/" + v + "/" + name);
        removed.push_back(v + "/" + name);
      }
    }
  }
  for (const auto& r : removed) LOG(INFO) << root << "/" << r << ": left by a writer that is gone; removed";
  return removed;
}

std::unique_ptr<DirectoryLock> LockExportRoot(const std::string& root, const std::string& what, double wait_seconds) {
  if (!(wait_seconds >= 0 && wait_seconds <= kMaxLockWaitSeconds)) {
    Fail("--lock-wait: expected seconds in [0, ", kMaxLockWaitSeconds, "], got ", wait_seconds);
  }
  auto lock = std::make_unique<DirectoryLock>(root, what, wait_seconds);
  CleanExportRoot(root);
  return lock;
}

void RetireVersion(const std::string& root, const std::string& v) {
  const std::string retired = root + "/." + v + ".retired-" + std::to_string(::getpid());
  if (std::rename((root + "/" + v).c_str(), retired.c_str()) != 0) Fail(root, "/", v, ": cannot retire: ", std::strerror(errno));
  RemoveAll(retired);
}

std::vector<std::string> PruneVersions(const std::string& root, int64_t keep, const std::string& candidate) {
  std::vector<std::string> removed;
  if (keep <= 0) return removed;
  const std::string served = ReadLatest(root);
  std::string served_parent;  // from the manifest alone (its files are the served version's readers' to verify)
  if (!served.empty()) {
    ReadManifestFile(root + "/" + served + "/manifest.json", "shardrec.export", kExportFormatVersion, [&](const JsonValue& j) {
      if (j.has("lineage")) served_parent = j.at("lineage").at("parent").str();
    }, /*oldest_version=*/1);
  }
  std::vector<std::string> versions = ListVersions(root);
  int64_t excess = static_cast<int64_t>(versions.size()) - keep;
  for (const auto& v : versions) {
    if (excess <= 0) break;
    if (v == served || v == candidate || v == served_parent) continue;
    RetireVersion(root, v);
    removed.push_back(v);
    --excess;
  }
  return removed;
}

IndexReport IndexExport(const std::string& export_dir, const IndexOptions& options, double lock_wait, std::string* version_dir) {
  // A version of a root (named through its LATEST, or beside one) is indexed under the root's lock,
  // and chosen once it is held (a publish or rollback waited for may move LATEST).
  const bool is_version = PathExists(export_dir + "/manifest.json");
  const std::string root = is_version ? Dirname(export_dir) : export_dir;
  std::unique_ptr<DirectoryLock> lock;
  if (!is_version || PathExists(root + "/LATEST")) lock = LockExportRoot(root, "an index build", lock_wait);
  const std::string dir = ResolveExport(export_dir);
  if (version_dir) *version_dir = dir;
  return BuildExportIndex(dir, options);
}

}  // namespace shardrec
