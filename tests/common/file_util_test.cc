#include "common/file_util.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "common/error.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

TEST(AtomicOutput, CommitPublishesWholeFile) {
  testing::TempDir dir;
  const std::string final_path = dir.File("out.txt");
  {
    AtomicOutput out(final_path);
    testing::WriteText(out.temp_path(), "hello");
    EXPECT_FALSE(PathExists(final_path));  // invisible until committed
    out.Commit();
  }
  EXPECT_EQ(ReadFileToString(final_path), "hello");
  EXPECT_EQ(testing::ListDir(dir.path()).size(), 1u);
}

TEST(AtomicOutput, UncommittedLeavesNothingAndKeepsOldFile) {
  testing::TempDir dir;
  const std::string final_path = dir.File("out.txt");
  testing::WriteText(final_path, "old");
  {
    AtomicOutput out(final_path);
    testing::WriteText(out.temp_path(), "half-writ");
  }
  EXPECT_EQ(ReadFileToString(final_path), "old");
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"out.txt"});
}

TEST(AtomicOutput, Directories) {
  testing::TempDir dir;
  const std::string final_path = dir.File("v1");
  AtomicOutput out(final_path);
  MakeDirs(out.temp_path());
  testing::WriteText(out.temp_path() + "/a", "x");
  out.Commit();
  EXPECT_EQ(ReadFileToString(final_path + "/a"), "x");
}

// A second holder of a directory lock, here or in another process, is refused with the first
// holder's PID; the lock is free again once its holder is gone.
TEST(DirectoryLock, ExcludesASecondHolderAndNamesTheFirst) {
  testing::TempDir dir;
  const std::string run = dir.File("run");
  {
    DirectoryLock first(run, "a training run");
    EXPECT_TRUE(IsDirectory(run));
    testing::ExpectUserError([&] { DirectoryLock second(run, "a training run"); },
                             {run + " is in use by a training run", "process " + std::to_string(::getpid())});
    const auto other = testing::RunCommand("flock --nonblock " + run + "/.lock true");
    EXPECT_EQ(other.exit_code, 1) << "another process took the lock (or flock(1) is missing): " << other.output;
  }
  DirectoryLock again(run, "a training run");
  testing::ExpectUserError([&] { DirectoryLock on_a_file(run + "/.lock", "x"); }, {"exists and is not a directory"});
}

TEST(Files, ReadMissingFileNamesPath) {
  try {
    ReadFileToString("/nonexistent/dir/file.txt");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/file.txt"), std::string::npos);
  }
}

}  // namespace
}  // namespace shardrec
