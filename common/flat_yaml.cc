#include "common/flat_yaml.h"

#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec {
namespace {

// The flat subset of YAML 1.2 a config is (docs/training.md, "Config files"), read by hand: the YAML
// library this replaced never returned from some inputs (a document starting with ',', found by
// fuzzing, and others), and a config needs none of what it offered beyond this.

bool IsNullWord(std::string_view v) { return v == "~" || v == "null" || v == "Null" || v == "NULL"; }

void AppendUtf8(std::string& out, uint32_t cp, const std::string& where) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) Fail(where, "invalid YAML: escape of U+", cp, ", not a character");
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A quoted scalar at the start of `l` (one line); removes it from `l`.
std::string Quoted(std::string_view& l, const std::string& where) {
  const char q = l[0];
  std::string out;
  size_t i = 1;
  for (;; ++i) {
    if (i >= l.size()) Fail(where, "invalid YAML: a quoted value must end on its line");
    const char c = l[i];
    if (q == '\'') {
      if (c != '\'') {
        out.push_back(c);
      } else if (i + 1 < l.size() && l[i + 1] == '\'') {
        out.push_back('\''), ++i;
      } else {
        break;
      }
      continue;
    }
    if (c == '"') break;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= l.size()) Fail(where, "invalid YAML: a quoted value must end on its line");
    static constexpr std::string_view kFrom = "0abtnvfre \"/\\", kTo = std::string_view("\0\a\b\t\n\v\f\r\x1b \"/\\", 13);
    if (const size_t k = kFrom.find(l[i]); k != std::string_view::npos) {
      out.push_back(kTo[k]);
      continue;
    }
    const int digits = l[i] == 'x' ? 2 : l[i] == 'u' ? 4 : l[i] == 'U' ? 8 : 0;
    if (digits == 0) Fail(where, "invalid YAML: unknown escape \\", std::string(1, l[i]));
    if (i + digits >= l.size()) Fail(where, "invalid YAML: a \\", std::string(1, l[i]), " escape needs ", digits, " hex digits");
    uint32_t cp = 0;
    for (int d = 1; d <= digits; ++d) {
      const char h = l[i + d];
      const int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (v < 0) Fail(where, "invalid YAML: a \\", std::string(1, l[i]), " escape needs ", digits, " hex digits");
      cp = cp * 16 + static_cast<uint32_t>(v);
    }
    AppendUtf8(out, cp, where);
    i += digits;
  }
  l.remove_prefix(i + 1);
  return out;
}

// After a value: blanks, then nothing or a comment.
void ExpectEndOfLine(std::string_view rest, const std::string& where) {
  while (!rest.empty() && (rest[0] == ' ' || rest[0] == '\t')) rest.remove_prefix(1);
  if (!rest.empty() && rest[0] != '#') Fail(where, "invalid YAML: ", Quote(rest), " after the value");
}

// A plain value: up to a comment (' #'), blanks trimmed; ': ' in it would start a mapping.
std::string_view PlainValue(std::string_view rest, const std::string& where) {
  size_t end = rest.size();
  for (size_t i = 1; i < rest.size(); ++i) {
    if (rest[i] == '#' && (rest[i - 1] == ' ' || rest[i - 1] == '\t')) {
      end = i;
      break;
    }
  }
  std::string_view v = rest.substr(0, end);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.find(": ") != std::string_view::npos || v.find(":\t") != std::string_view::npos || v.back() == ':') {
    Fail(where, "invalid YAML: a value with ': ' in it must be quoted");
  }
  return v;
}

}  // namespace

std::vector<FlatYamlEntry> ParseFlatYaml(const std::string& input, const std::string& name) {
  std::string_view text = input;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // a byte order mark
  if (!IsValidUtf8(text)) Fail(name, ": not UTF-8 text");
  std::vector<FlatYamlEntry> out;
  bool content = false, closed = false;  // a key seen; the document ended by '...'
  int line_no = 0;
  for (std::string_view l : SplitText(text, "\n")) {
    ++line_no;
    const std::string where = Where(name, line_no);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    for (const char c : l) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) Fail(where, "invalid YAML: a control character");
    }
    std::string_view body = l;
    while (!body.empty() && (body[0] == ' ' || body[0] == '\t')) body.remove_prefix(1);
    if (body.empty() || body[0] == '#') continue;  // blank or a comment
    auto marker = [&](std::string_view m) { return l.substr(0, 3) == m && (l.size() == 3 || l[3] == ' ' || l[3] == '\t'); };
    if (marker("---") || marker("...")) {
      ExpectEndOfLine(l.substr(3), where);
      if (marker("---") && content) Fail(name, ": holds 2 YAML documents; a config is one");
      closed = closed || marker("...");
      continue;
    }
    if (closed && content) Fail(name, ": holds 2 YAML documents; a config is one");
    content = true;
    if (l[0] == ' ' || l[0] == '\t') {
      if (!out.empty() && out.back().null && out.back().line == line_no - 1) {
        Fail(Where(name, out.back().line), "'", out.back().key, "' takes one value, not a list or mapping");
      }
      Fail(where, "invalid YAML: an indented line (a config is 'key: value' lines, each at the start of its line)");
    }
    // The key: plain (up to ':' before a blank or the line's end) or quoted.
    std::string key;
    std::string_view rest = l;
    if (l[0] == '"' || l[0] == '\'') {
      key = Quoted(rest, where);
      if (rest.empty() || rest[0] != ':') Fail(where, "expected 'key: value' lines");
      rest.remove_prefix(1);
    } else {
      if (std::string_view("-?:,[]{}#&*!|>%@`").find(l[0]) != std::string_view::npos) Fail(where, "expected 'key: value' lines");
      size_t colon = 0;
      while ((colon = l.find(':', colon)) != std::string_view::npos && colon + 1 < l.size() && l[colon + 1] != ' ' && l[colon + 1] != '\t') ++colon;
      if (colon == std::string_view::npos) Fail(where, "expected 'key: value' lines");
      key = std::string(l.substr(0, colon));
      while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
      rest = l.substr(colon + 1);
    }
    if (!rest.empty() && rest[0] != ' ' && rest[0] != '\t') Fail(where, "expected 'key: value' lines");
    while (!rest.empty() && (rest[0] == ' ' || rest[0] == '\t')) rest.remove_prefix(1);
    FlatYamlEntry e{key, "", false, line_no};
    if (rest.empty() || rest[0] == '#') {
      e.null = true;
    } else if (rest[0] == '[' || rest[0] == '{' || (rest[0] == '-' && (rest.size() == 1 || rest[1] == ' '))) {
      Fail(where, "'", key, "' takes one value, not a list or mapping");
    } else if (rest[0] == '"' || rest[0] == '\'') {
      e.value = Quoted(rest, where);
      ExpectEndOfLine(rest, where);
    } else if (std::string_view("&*!|>%@`").find(rest[0]) != std::string_view::npos) {
      Fail(where, "invalid YAML: anchors, aliases, tags and block scalars are not part of a config (quote the value)");
    } else {
      const std::string_view v = PlainValue(rest, where);
      e.null = IsNullWord(v);
      if (!e.null) e.value = std::string(v);
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<FlatYamlEntry> ReadFlatYaml(const std::string& path) {
  return ParseFlatYaml(ReadFileToString(path, kMaxFlatYamlBytes), path);
}

namespace {

// Whether `v` reads back as itself written plain.
bool PlainIsSafe(std::string_view v) {
  if (v.empty() || IsNullWord(v) || v.front() == ' ' || v.back() == ' ' || v.back() == ':') return false;
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`").find(v.front()) != std::string_view::npos) return false;
  if (v.find(": ") != std::string_view::npos || v.find(" #") != std::string_view::npos) return false;
  for (const char c : v) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F || c == '\t') return false;
  }
  return true;
}

std::string DoubleQuoted(std::string_view v) {
  std::string out = "\"";
  for (const char c : v) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string WriteFlatYaml(const std::vector<FlatYamlValue>& values) {
  std::string out;
  for (const auto& v : values) {
    out += (PlainIsSafe(v.key) ? v.key : DoubleQuoted(v.key)) + ": ";
    out += !v.quoted && PlainIsSafe(v.value) ? v.value : DoubleQuoted(v.value);
    out += "\n";
  }
  return out;
}

}  // namespace shardrec
