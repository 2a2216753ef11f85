#include "common/strings.h"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <tuple>

#include "common/error.h"
#include "common/flat_yaml.h"
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
  EXPECT_EQ(Quote(std::string(100, 'x')), "'" + std::string(60, 'x') + "...'");
  EXPECT_EQ(Printable("\xc3\xa9\xc3\xa9", 3), "\xc3\xa9...") << "cut between characters, never inside one";
  EXPECT_EQ(Printable(std::string("a\0b\x1b[0m", 7), 100), "a\\x00b\\x1b[0m");
}

// Every UserError's message is printable and bounded, whatever its site echoed (NUL included: a
// message is never cut at one).
TEST(Strings, UserErrorMessagesArePrintableAndBounded) {
  const std::string nul("id 3\0x unknown", 14);
  try {
    Fail("users.txt:2: ", nul);
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "users.txt:2: id 3\\x00x unknown");
  }
  try {
    Fail("user ", std::string(5000000, 'u'), " unknown\nsecond line");
  } catch (const UserError& e) {
    const std::string m = e.what();
    EXPECT_LE(m.size(), kMaxErrorBytes);
    EXPECT_NE(m.find("... (4996"), std::string::npos) << m.substr(m.size() - 40);
    EXPECT_EQ(PrintableMessage(m), m) << "idempotent";
  }
  EXPECT_EQ(PrintableMessage("a\tb\nc\x1b\x7f"), "a\tb\nc\\x1b\\x7f") << "tabs and newlines stay";
  EXPECT_EQ(PrintableMessage("caf\xe9"), "caf\\xe9");
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

// The flat YAML subset a config is, read by hand: plain, single- and double-quoted values (YAML's
// escapes), comments, nulls; and what the writer writes reads back as it was.
TEST(FlatYaml, ValuesReadAsYamlReadsThem) {
  const auto e = ParseFlatYaml(
      "\xEF\xBB\xBF# a config\n---\na: plain value  # a comment\nb: a#b\nc: 'it''s'\nd: \"t\\tb\\u00e9\\x41\\\"\\\\\"\n"
      "e:\nf: ~\n\"g h\": 1e-3\ni:j: 2\n...\n# done\n",
      "c.yaml");
  ASSERT_EQ(e.size(), 8u);
  auto at = [&](size_t i) { return std::make_tuple(e[i].key, e[i].value, e[i].null, e[i].line); };
  EXPECT_EQ(at(0), std::make_tuple(std::string("a"), std::string("plain value"), false, 3));
  EXPECT_EQ(at(1), std::make_tuple(std::string("b"), std::string("a#b"), false, 4));
  EXPECT_EQ(at(2), std::make_tuple(std::string("c"), std::string("it's"), false, 5));
  EXPECT_EQ(at(3), std::make_tuple(std::string("d"), std::string("t\tb\xc3\xa9" "A\"\\"), false, 6));
  EXPECT_EQ(at(4), std::make_tuple(std::string("e"), std::string(), true, 7));
  EXPECT_EQ(at(5), std::make_tuple(std::string("f"), std::string(), true, 8));
  EXPECT_EQ(at(6), std::make_tuple(std::string("g h"), std::string("1e-3"), false, 9));
  EXPECT_EQ(at(7), std::make_tuple(std::string("i:j"), std::string("2"), false, 10));
  EXPECT_TRUE(ParseFlatYaml("# nothing\n\n", "c.yaml").empty());
  const std::vector<FlatYamlValue> odd = {{"data", "runs/a#1: \"x\" 'y' \\ end\t\x01", false}, {"name", "null", false},
                                          {"n", "3", false}, {"s", "3", true}, {"empty", "", false}, {"lead", " x", false},
                                          {"dash", "-x", false}, {"utf", "caf\xc3\xa9", false}};
  const std::string text = WriteFlatYaml(odd);
  const auto back = ParseFlatYaml(text, "w.yaml");
  ASSERT_EQ(back.size(), odd.size()) << text;
  for (size_t i = 0; i < odd.size(); ++i) {
    EXPECT_EQ(back[i].key, odd[i].key) << text;
    EXPECT_EQ(back[i].value, odd[i].value) << text;
    EXPECT_FALSE(back[i].null) << text;
  }
  EXPECT_NE(text.find("n: 3\n"), std::string::npos) << "plain where plain reads back the same: " << text;
  EXPECT_NE(text.find("s: \"3\"\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace shardrec
