// An export root's housekeeping (docs/serving.md): its versions, the lock every writer of it holds
// (publish, rollback, export, index), and the removal of what killed writers left behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "serve/index_build.h"

namespace shardrec {

// Complete versions under ROOT (directories with a manifest), in name order (oldest first for the
// default v<UTC time> names).
std::vector<std::string> ListVersions(const std::string& root);

// The lock every writer of an export root holds (ROOT/.lock, common/file_util.h), waited for up to
// `wait_seconds` (in [0, kMaxLockWaitSeconds]); once held, what killed writers left is removed
// (CleanExportRoot).
inline constexpr double kMaxLockWaitSeconds = 1e6;
std::unique_ptr<DirectoryLock> LockExportRoot(const std::string& root, const std::string& what, double wait_seconds);
// Removes from ROOT and its versions' top level the temporary files of processes that no longer
// exist ("*.tmp-PID-N"), versions half removed by --keep (".V.retired-PID") and unfinished export
// staging directories (".V.partial"); returns their names. Call with the root's lock held.
std::vector<std::string> CleanExportRoot(const std::string& root);

// --keep: removes the oldest complete versions beyond `keep` (0: none), never the served one (LATEST),
// its parent (what a rollback serves) or `candidate`; returns their names. Each is first renamed out
// of sight (".V.retired-PID": readers see it whole or gone, never half removed), then removed. Call
// with the root's lock held.
std::vector<std::string> PruneVersions(const std::string& root, int64_t keep, const std::string& candidate);
// Removes ROOT/<v> as PruneVersions does: renamed out of sight first, then removed. Call with the
// root's lock held.
void RetireVersion(const std::string& root, const std::string& v);

// `shardrec index`: BuildExportIndex on the version `export_dir` names (through ROOT/LATEST, or a
// version itself), under its root's lock when it belongs to one; `version_dir` gets its directory.
IndexReport IndexExport(const std::string& export_dir, const IndexOptions& options, double lock_wait, std::string* version_dir);

}  // namespace shardrec
