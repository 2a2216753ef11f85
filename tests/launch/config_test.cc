// The config reader against hand-written expectations: file:line errors, the command line winning,
// and RUN/config.yaml reading back to the values it was written from.
#include "launch/config.h"

#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include "common/file_util.h"
#include "tests/test_util.h"

DEFINE_int32(epochs, 10, "");
DEFINE_double(dropout, 0.2, "");
DEFINE_bool(logq, true, "");
DEFINE_string(data, "", "");

namespace shardrec::cli {
namespace {

const std::vector<std::string> kKeys = {"epochs", "dropout", "logq", "data"};

std::string Write(const testing::TempDir& dir, const std::string& text) {
  testing::WriteText(dir.File("c.yaml"), text);
  return dir.File("c.yaml");
}

TEST(Config, FlatKeysFillTheFlagsTheCommandLineLeft) {
  gflags::FlagSaver saver;
  testing::TempDir dir;
  gflags::SetCommandLineOption("epochs", "3");  // as if given on the command line
  ApplyConfigFile(Write(dir, "# a run\nepochs: 7   # trailing comment\ndropout: 0.5\nlogq: false\ndata: \"a b.h5\"\n"), kKeys);
  EXPECT_EQ(FLAGS_epochs, 3);
  EXPECT_EQ(FLAGS_dropout, 0.5);
  EXPECT_FALSE(FLAGS_logq);
  EXPECT_EQ(FLAGS_data, "a b.h5");
}

TEST(Config, OnlyAppliesTheNamedKeysAndStillChecksTheRest) {
  gflags::FlagSaver saver;
  testing::TempDir dir;
  ApplyConfigFile(Write(dir, "epochs: 7\ndropout: 0.5\n"), kKeys, {"dropout"});
  EXPECT_EQ(FLAGS_epochs, 10);
  EXPECT_EQ(FLAGS_dropout, 0.5);
  testing::ExpectUserError([&] { ApplyConfigFile(Write(dir, "dropout: 0.5\nwho: 1\n"), kKeys, {"dropout"}); },
                           {"c.yaml:2: unknown key 'who'"});
}

TEST(Config, MistakesNameFileAndLine) {
  gflags::FlagSaver saver;
  testing::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"epochs: 1\n# comment\nlearning-rate: 3\n", "c.yaml:3: unknown key 'learning-rate'"},
      {"epochs: 1\nepochs: 2\n", "c.yaml:2: key 'epochs' given twice"},
      {"epochs: abc\n", "c.yaml:1: bad value 'abc' for 'epochs' (int32)"},
      {"dropout: 0.1\nepochs: [1, 2]\n", "c.yaml:2: 'epochs' takes one value"},
      {"epochs: 1\n  dropout: [0.1\n", "c.yaml:2: invalid YAML"},
      {"- epochs\n- 1\n", "c.yaml:1: expected 'key: value' lines"},
      {"epochs: 1\n---\nepochs: 2\n", "c.yaml: holds 2 YAML documents"},
      // What the flat subset is not (a YAML library never returned from a document starting with ',').
      {",", "c.yaml:1: expected 'key: value' lines"},
      {"# comment\n\n  ,\n", "c.yaml:3: invalid YAML: an indented line"},
      {"%YAML 1.2\n---\nepochs: 1\n", "c.yaml:1: expected 'key: value' lines"},
      {"epochs: 1\n...\nepochs: 2\n", "c.yaml: holds 2 YAML documents"},
      {"#\n&2,", "c.yaml:2: expected 'key: value' lines"},
      {"epochs:\n  - 1\n", "c.yaml:1: 'epochs' takes one value"},
      {"epochs: &a 1\n", "c.yaml:1: invalid YAML: anchors, aliases, tags"},
      {"data: a: b\n", "c.yaml:1: invalid YAML: a value with ': ' in it must be quoted"},
      {"data: \"abc\n", "c.yaml:1: invalid YAML: a quoted value must end on its line"},
      {"data: \"a\\qb\"\n", "c.yaml:1: invalid YAML: unknown escape \\q"},
      {"data: 'a' b\n", "c.yaml:1: invalid YAML: 'b' after the value"},
      {"data: a\x01" "b\n", "c.yaml:1: invalid YAML: a control character"},
      {"data: caf\xe9\n", "c.yaml: not UTF-8 text"},
  };
  for (const auto& [text, want] : cases) {
    SCOPED_TRACE(text);
    gflags::FlagSaver each;
    testing::ExpectUserError([&] { ApplyConfigFile(Write(dir, text), kKeys); }, {want});
  }
}

TEST(Config, EmptyFileChangesNothing) {
  gflags::FlagSaver saver;
  testing::TempDir dir;
  ApplyConfigFile(Write(dir, "# nothing yet\n"), kKeys);
  EXPECT_EQ(FLAGS_epochs, 10);
}

// Strings with YAML's special characters: a hand-written "key: value" reader cut them at '#'.
TEST(Config, EffectiveConfigReadsBackToTheSameValues) {
  gflags::FlagSaver saver;
  testing::TempDir dir;
  const std::string odd = "runs/a#1: \"x\" 'y' \\ end";
  std::string text;
  {
    gflags::FlagSaver written;  // restores the defaults (and their "not set" state) at the brace
    gflags::SetCommandLineOption("data", odd.c_str());
    gflags::SetCommandLineOption("dropout", "0.050000000000000003");
    gflags::SetCommandLineOption("logq", "false");
    text = EffectiveConfig(kKeys);
  }
  ASSERT_EQ(FLAGS_data, "");
  testing::TempDir other;
  testing::WriteText(other.File("config.yaml"), text);
  ApplyConfigFile(other.File("config.yaml"), kKeys);
  EXPECT_EQ(FLAGS_data, odd) << text;
  EXPECT_EQ(FLAGS_dropout, 0.05);
  EXPECT_FALSE(FLAGS_logq);
  EXPECT_EQ(FLAGS_epochs, 10);
}

TEST(Config, AValueThatIsNotUtf8IsRefusedRatherThanChanged) {
  gflags::FlagSaver saver;
  gflags::SetCommandLineOption("data", "runs/caf\xe9.h5");
  testing::ExpectUserError([&] { EffectiveConfig(kKeys); }, {"--data: 'runs/caf\\xe9.h5' is not valid UTF-8"});
}

}  // namespace
}  // namespace shardrec::cli
