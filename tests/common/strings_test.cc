#include "common/strings.h"

#include <gtest/gtest.h>

#include "common/json.h"

namespace shardrec {
namespace {

TEST(Strings, SplitKeepsEmptyFields) {
  auto f = Split("a::b::::c", "::");
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], "a");
  EXPECT_EQ(f[2], "");
  EXPECT_EQ(f[3], "c");
  EXPECT_EQ(Split("", ",").size(), 1u);
}

TEST(Strings, SplitWhitespaceDropsRuns) {
  auto f = SplitWhitespace("  1 \t 2   3 ");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[2], "3");
}

TEST(Strings, ParseInt64IsStrict) {
  EXPECT_EQ(ParseInt64("42"), 42);
  EXPECT_EQ(ParseInt64("-7"), -7);
  EXPECT_EQ(ParseInt64("+7"), 7);
  EXPECT_FALSE(ParseInt64(""));
  EXPECT_FALSE(ParseInt64("4x"));
  EXPECT_FALSE(ParseInt64("x4"));
  EXPECT_FALSE(ParseInt64(" 4"));
  EXPECT_FALSE(ParseInt64("4.0"));
  EXPECT_FALSE(ParseInt64("99999999999999999999"));
}

TEST(Strings, ParseDouble) {
  EXPECT_DOUBLE_EQ(*ParseDouble("3.5"), 3.5);
  EXPECT_DOUBLE_EQ(*ParseDouble("1e3"), 1000.0);
  EXPECT_FALSE(ParseDouble("3.5x"));
  EXPECT_FALSE(ParseDouble(""));
}

TEST(Strings, Utf8AndLatin1) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));
  EXPECT_FALSE(IsValidUtf8("caf\xE9"));        // Latin-1 e-acute
  EXPECT_FALSE(IsValidUtf8("\xC3"));           // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));       // overlong
  EXPECT_EQ(ToUtf8("caf\xE9"), "caf\xC3\xA9");  // decoded as Latin-1
  EXPECT_EQ(ToUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(Strings, LineIteratorStripsCrAndCounts) {
  LineIterator it("a\r\nb\n\nc");
  std::string_view l;
  std::vector<std::string> got;
  while (it.Next(&l)) got.emplace_back(l);
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(it.line_number(), 4);
}

TEST(Strings, QuoteEscapes) { EXPECT_EQ(Quote("a\tb\x01"), "'a\\tb\\x01'"); }

TEST(Json, ObjectsAndEscapes) {
  JsonObject inner;
  inner.Add("x", 1.5);
  JsonObject o;
  o.Add("n", int64_t{3}).Add("s", "a\"b\n").Add("b", true).Add("o", inner);
  EXPECT_EQ(o.str(), R"({"n": 3, "s": "a\"b\n", "b": true, "o": {"x": 1.5}})");
}

}  // namespace
}  // namespace shardrec
