#include "distributed/staged_dir.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/file_util.h"
#include "distributed/inprocess.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

// Every rank writes its own file into the staging directory, rank 0 adds a manifest at the commit.
void WriteParts(Communicator& c, StagedDir& out) {
  out.Run([&] { WriteFileAtomically(out.path() + "/part-" + std::to_string(c.rank()), std::to_string(c.rank())); });
  out.Commit([&] { WriteFileAtomically(out.path() + "/manifest", "done"); });
}

TEST(StagedDir, AppearsWholeWithEveryRanksFiles) {
  testing::TempDir dir;
  const std::string out = dir.File("lists");
  RunRanks(3, [&](Communicator& c) {
    StagedDir staged(out, c, StagedDir::Existing::kRefuse, "--out");
    EXPECT_EQ(staged.path(), dir.File(".lists.partial"));
    c.Barrier();
    EXPECT_FALSE(PathExists(out));  // nothing under the final name before the commit
    WriteParts(c, staged);
    EXPECT_TRUE(staged.committed());
  });
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"lists"});
  EXPECT_EQ(testing::ListDir(out), (std::vector<std::string>{"manifest", "part-0", "part-1", "part-2"}));
  EXPECT_EQ(ReadFileToString(out + "/part-2"), "2");
}

TEST(StagedDir, OneRanksFailureLeavesNothingOnAnyRank) {
  testing::TempDir dir;
  const std::string out = dir.File("lists");
  std::vector<std::string> errors(3);
  RunRanks(3, [&](Communicator& c) {
    try {
      StagedDir staged(out, c);
      staged.Run([&] {
        if (c.rank() == 2) Fail("disk full on rank 2");
        WriteFileAtomically(staged.path() + "/part-" + std::to_string(c.rank()), "x");
      });
      ADD_FAILURE() << "rank " << c.rank() << " went on after a failed write";
    } catch (const UserError& e) {
      errors[c.rank()] = e.what();
    }
  });
  for (const std::string& e : errors) EXPECT_NE(e.find("disk full on rank 2"), std::string::npos) << e;
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{});
}

TEST(StagedDir, AFailedCommitLeavesNothingAndAnExistingOutputIsRefused) {
  testing::TempDir dir;
  const std::string out = dir.File("v1");
  testing::ExpectUserError([&] {
    RunRanks(2, [&](Communicator& c) {
      StagedDir staged(out, c);
      staged.Commit([] { Fail("manifest: no space left"); });
    });
  }, {"manifest: no space left"});
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{});
  // A stale staging directory of a killed writer is replaced; an existing output is refused.
  MakeDirs(dir.File(".v1.partial/junk"));
  RunRanks(2, [&](Communicator& c) {
    StagedDir staged(out, c);
    WriteParts(c, staged);
  });
  EXPECT_EQ(testing::ListDir(out), (std::vector<std::string>{"manifest", "part-0", "part-1"}));
  testing::ExpectUserError([&] { RunRanks(2, [&](Communicator& c) { StagedDir staged(out, c, StagedDir::Existing::kRefuse, "--out"); }); },
                           {"--out", "exists already"});
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"v1"});
}

TEST(StagedDir, ReplacesAnExistingDirectoryOnlyOnceTheNewOneIsComplete) {
  testing::TempDir dir;
  const std::string out = dir.File("model");
  MakeDirs(out);
  WriteFileAtomically(out + "/old", "old");
  // A failed replacement keeps the old directory as it was.
  testing::ExpectUserError([&] {
    RunRanks(2, [&](Communicator& c) {
      StagedDir staged(out, c, StagedDir::Existing::kReplace, "checkpoint");
      staged.Commit([] { Fail("checkpoint: cannot write the manifest"); });
    });
  }, {"cannot write the manifest"});
  EXPECT_EQ(testing::ListDir(out), std::vector<std::string>{"old"});
  RunRanks(2, [&](Communicator& c) {
    StagedDir staged(out, c, StagedDir::Existing::kReplace, "checkpoint");
    WriteParts(c, staged);
  });
  EXPECT_EQ(testing::ListDir(out), (std::vector<std::string>{"manifest", "part-0", "part-1"}));
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"model"});  // no .model.old, no .model.partial
}

TEST(RankRange, SplitsRowsAsEvenSplitsDoes) {
  for (int64_t n : {0, 1, 7, 100, 1001}) {
    for (int w : {1, 2, 3, 8}) {
      const std::vector<int64_t> sizes = EvenSplits(n, w);
      int64_t at = 0;
      for (int r = 0; r < w; ++r) {
        const auto [begin, end] = RankRange(n, w, r);
        EXPECT_EQ(begin, at) << n << " " << w << " " << r;
        EXPECT_EQ(end - begin, sizes[r]);
        EXPECT_LE(end - begin, n / w + 1);
        at = end;
      }
      EXPECT_EQ(at, n);
    }
  }
}

}  // namespace
}  // namespace shardrec
