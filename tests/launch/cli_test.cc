// The `shardrec` binary as users run it: exit codes, one-line errors, no partial outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/file_util.h"
#include "io/dataset.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::RunCommand;
using testing::TempDir;

const std::string kBin = SHARDREC_BINARY;

TEST(Cli, HelpForEveryCommand) {
  auto r = RunCommand(kBin + " help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* c : {"data convert", "data stats", "data synth", "demo", "version"}) {
    EXPECT_NE(r.output.find(c), std::string::npos) << c;
    auto h = RunCommand(kBin + " " + c + " --help");
    EXPECT_EQ(h.exit_code, 0) << c;
    EXPECT_NE(h.output.find("usage: shardrec " + std::string(c)), std::string::npos) << h.output;
  }
  auto h = RunCommand(kBin + " data convert --help");
  EXPECT_NE(h.output.find("--min-user-events"), std::string::npos);  // dashed names
}

TEST(Cli, SynthStatsJson) {
  TempDir dir;
  auto r = RunCommand(kBin + " data synth --output " + dir.File("s.h5") +
                      " --users 300 --items 200 --events 3000 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("oracle"), std::string::npos);
  auto s = RunCommand(kBin + " data stats --json " + dir.File("s.h5"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  EXPECT_NE(s.output.find("\"users\": 300"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("\"items\": 200"), std::string::npos);
  EXPECT_NE(s.output.find("\"events\": 3000"), std::string::npos);
  EXPECT_NE(s.output.find("\"hr@10\""), std::string::npos);
}

TEST(Cli, ConvertBadLineFailsWithOneMessageAndNoOutput) {
  TempDir dir;
  testing::WriteText(dir.File("s.txt"), "1 2 3\n2 x\n");
  auto r = RunCommand(kBin + " data convert --format seq --input " + dir.File("s.txt") +
                      " --output " + dir.File("o.h5"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("shardrec: error: " + dir.File("s.txt") + ":2: expected an integer item id"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"s.txt"});
}

TEST(Cli, UserMistakesExitNonZero) {
  TempDir dir;
  struct Case {
    std::string args, fragment;
  };
  for (const Case& c : std::vector<Case>{
           {"data convert --input x --output y", "--format is required"},
           {"data convert --format xml --input " + dir.path() + " --output " + dir.File("o.h5"),
            "unknown format 'xml'"},
           {"data stats " + dir.File("missing.h5"), "missing.h5: no such file"},
           {"data stats", "takes 1 positional argument"},
           {"data stats --users 3 " + dir.File("x.h5"), "--users is not a flag of 'shardrec data stats'"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --events 5", "--events"},
           {"frobnicate", "unknown command"},
       }) {
    auto r = RunCommand(kBin + " " + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.find(c.fragment), std::string::npos) << c.args << " -> " << r.output;
  }
  EXPECT_FALSE(PathExists(dir.File("o.h5")));
  EXPECT_FALSE(PathExists(dir.File("s.h5")));
}

TEST(Cli, DemoRunsEndToEnd) {
  TempDir dir;
  auto r = RunCommand(kBin + " demo --workdir " + dir.File("demo") +
                      " --users 400 --items 300 --events 6000 --world-size 3 --batch-size 32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("identical users, items and event order"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank pieces == single-process batches: yes"), std::string::npos);
  EXPECT_NE(r.output.find("users                  400"), std::string::npos);
}

}  // namespace
}  // namespace shardrec
