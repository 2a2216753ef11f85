#include "common/strings.h"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>

#include "common/json.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

TEST(Strings, SplitKeepsEmptyFields) {
  auto f = SplitText("a::b::::c", "::");
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], "a");
  EXPECT_EQ(f[2], "");
  EXPECT_EQ(f[3], "c");
  EXPECT_EQ(SplitText("", ",").size(), 1u);
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

TEST(Strings, QuoteEscapes) {
  EXPECT_EQ(Quote("a\tb\x01"), "'a\\tb\\x01'");
  EXPECT_EQ(Quote("caf\xc3\xa9"), "'caf\xc3\xa9'");  // UTF-8 stays readable
  EXPECT_EQ(Quote("caf\xe9"), "'caf\\xe9'");          // Latin-1 is shown byte by byte
}

TEST(Json, ObjectsAndEscapes) {
  JsonObject inner;
  inner.Add("x", 1.5);
  JsonObject o;
  o.Add("n", int64_t{3}).Add("s", "a\"b\n").Add("b", true).Add("o", inner);
  EXPECT_EQ(o.str(), R"({"n": 3, "s": "a\"b\n", "b": true, "o": {"x": 1.5}})");
}

TEST(Json, WrittenValuesReadBackExactly) {
  JsonObject o;
  o.Add("third", 1.0 / 3).Add("big", int64_t{9007199254740993}).Add("neg", int64_t{INT64_MIN}).Add("nan", std::nan(""))
      .Add("s", std::string_view("tab\t \x01 \xc3\xa9", 10));
  const JsonValue v = JsonValue::Parse(o.str(), "t");
  EXPECT_EQ(v.at("third").num(), 1.0 / 3);                      // shortest round-trip text, bit-exact
  EXPECT_EQ(v.at("big").integer(), int64_t{9007199254740993});  // above 2^53: kept as an integer
  EXPECT_EQ(v.at("neg").integer(), INT64_MIN);
  EXPECT_EQ(v.at("nan").type, JsonValue::kNull);
  EXPECT_EQ(v.at("s").str(), std::string("tab\t \x01 \xc3\xa9", 10));
  EXPECT_EQ(JsonValue::Parse(R"({"b": 1, "a": 2})", "t").object[0].first, "b");  // document order
}

// Each of these ended in an internal error or a crash with the hand-written parser; all are one
// UserError naming the source now.
TEST(Json, MalformedInputIsAUserErrorNamingTheSource) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"a": "\uZZZZ"})", "src: invalid JSON at line 1"},                // was std::invalid_argument
      {std::string(100000, '['), "src: invalid JSON: nested deeper than 64"},  // was a stack overflow
      {R"({"a": 1, "a": 2})", "key \"a\" given twice"},
      {R"({"a": 1} x)", "src: invalid JSON at line 1, column 10"},
      {"{\"a\": \"\xff\"}", "src: invalid JSON at line 1"},  // not UTF-8
      {R"({"a": 01})", "src: invalid JSON"},
      {"", "src: invalid JSON"},
  };
  for (const auto& [text, want] : cases) {
    testing::ExpectUserError([&] { JsonValue::Parse(text, "src"); }, {want});
  }
}

TEST(Json, IntegersAreCheckedNotCast) {
  const JsonValue v = JsonValue::Parse(R"({"f": 2.5, "huge": 1e300, "whole": 3e2, "s": "7", "u": 18446744073709551615})", "t");
  EXPECT_EQ(v.at("whole").integer(), 300);
  for (const char* k : {"f", "huge", "s", "u"}) {
    testing::ExpectUserError([&] { v.at(k).integer(); }, {"expected an integer"});
  }
  testing::ExpectUserError([&] { v.at("f").at("x"); }, {"expected an object"});
}

}  // namespace
}  // namespace shardrec
