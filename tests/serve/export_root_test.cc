// An export root's housekeeping: the writers' lock (waited for or refused), the removal of what
// killed writers left, --keep's pruning (never the served version or its parent) and readers that
// lose a race to it. Versions here are directories with a small export manifest: enough for LATEST,
// the lineage and the listing, which is all these functions read.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "common/file_util.h"
#include "common/json.h"
#include "common/manifest.h"
#include "io/export_format.h"
#include "serve/export_root.h"
#include "serve/recommender.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

// ROOT/<v> with a manifest whose lineage names `parent`.
void MakeVersion(const std::string& root, const std::string& v, const std::string& parent) {
  MakeDirs(root + "/" + v);
  JsonObject lineage, o;
  lineage.Add("parent", parent);
  o.Add("format", "shardrec.export").Add("format_version", kExportFormatVersion).Add("version", v).Add("lineage", lineage);
  WriteManifestFile(root + "/" + v + "/manifest.json", o);
}

TEST(ExportRoot, KeepNeverRemovesTheServedVersionOrItsParent) {
  testing::TempDir dir;
  const std::string root = dir.File("S");
  MakeVersion(root, "v1", "");
  MakeVersion(root, "v2", "v1");
  MakeVersion(root, "v3", "v2");
  MakeVersion(root, "v4", "v3");
  SetLatest(root, "v2");  // rolled back: the served version is old, its parent older
  EXPECT_EQ(PruneVersions(root, 1, "v4"), (std::vector<std::string>{"v3"}));
  EXPECT_EQ(ListVersions(root), (std::vector<std::string>{"v1", "v2", "v4"}));
  SetLatest(root, "v4");  // v4's recorded parent v3 is gone: nothing more to protect but v4
  EXPECT_EQ(PruneVersions(root, 1, ""), (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(ListVersions(root), (std::vector<std::string>{"v4"}));
  EXPECT_EQ(PruneVersions(root, 0, ""), std::vector<std::string>{}) << "0 keeps everything";
  for (const auto& name : ListDirectory(root)) EXPECT_EQ(name.find(".retired-"), std::string::npos) << name;
}

TEST(ExportRoot, WhatKilledWritersLeftIsRemovedUnderTheLock) {
  testing::TempDir dir;
  const std::string root = dir.File("S");
  MakeVersion(root, "v1", "");
  SetLatest(root, "v1");
  // A process id that is not running: a child that has exited and been reaped.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  int status = 0;
  ::waitpid(dead, &status, 0);
  const std::string d = std::to_string(dead), me = std::to_string(::getpid());
  const std::vector<std::string> stale = {"LATEST.tmp-" + d + "-0", ".v1.publishing.tmp-" + d + "-3", ".v0.retired-" + d,
                                          ".v9.partial", "v1/manifest.json.tmp-" + d + "-1", "v1/.index.g2.partial"};
  const std::vector<std::string> kept = {"LATEST.tmp-" + me + "-0", ".v1.publishing", ".v1.old", ".nightly.lock"};
  for (const std::string& name : stale) testing::WriteText(root + "/" + name, "x");
  for (const std::string& name : kept) testing::WriteText(root + "/" + name, "x");
  {
    const auto lock = LockExportRoot(root, "a publish", 0);
    for (const std::string& name : stale) EXPECT_FALSE(PathExists(root + "/" + name)) << name;
    for (const std::string& name : kept) EXPECT_TRUE(PathExists(root + "/" + name)) << name << ": a live writer's file or a marker";
    EXPECT_TRUE(PathExists(root + "/v1/manifest.json"));
    // A second writer is refused at once, naming this one, or waits its turn.
    testing::ExpectUserError([&] { LockExportRoot(root, "a rollback", 0); },
                             {root, "is in use by a publish (process " + me});
  }
  auto first = std::make_unique<DirectoryLock>(root, "a publish");
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    first.reset();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto second = LockExportRoot(root, "a rollback", 30);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  release.join();
  EXPECT_GE(waited, 0.2);
  EXPECT_LT(waited, 20);
}

TEST(ExportRoot, AReaderThatLosesARaceReadsTheServedVersionAgain) {
  testing::TempDir dir;
  const std::string root = dir.File("S");
  MakeVersion(root, "v1", "");
  MakeVersion(root, "v2", "v1");
  SetLatest(root, "v1");
  // The first read meets v1 retired under it (LATEST moved on, v1 removed): read again, on v2.
  std::vector<std::string> reads;
  ReadServedVersion(root, [&](const std::string& version_dir) {
    reads.push_back(Basename(version_dir));
    if (reads.size() == 1) {
      SetLatest(root, "v2");
      RemoveAll(root + "/v1");
      Fail(version_dir, "/users-0.h5: No such file or directory");
    }
  });
  EXPECT_EQ(reads, (std::vector<std::string>{"v1", "v2"}));
  // A failure of the version itself (it stands as it was read) is not retried.
  int calls = 0;
  testing::ExpectUserError([&] { ReadServedVersion(root, [&](const std::string& v) { ++calls, Fail(v, ": damaged"); }); },
                           {"v2: damaged"});
  EXPECT_EQ(calls, 1);
  // A version named directly that is retired while read: said so.
  testing::ExpectUserError([&] {
    ReadServedVersion(root + "/v2", [&](const std::string& v) {
      RemoveAll(v);
      Fail(v, "/items-0.h5: No such file or directory");
    });
  }, {"v2: this version was retired", "while it was read"});
}

}  // namespace
}  // namespace shardrec
