#include "common/json.h"

#include <cmath>
#include <cstdio>

namespace shardrec {

std::string JsonEscape(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  return out + "\"";
}

JsonObject& JsonObject::Raw(std::string_view key, const std::string& value) {
  if (!body_.empty()) body_ += ", ";
  body_ += JsonEscape(key) + ": " + value;
  return *this;
}

JsonObject& JsonObject::Add(std::string_view key, int64_t v) { return Raw(key, std::to_string(v)); }

JsonObject& JsonObject::Add(std::string_view key, double v) {
  if (!std::isfinite(v)) return Raw(key, "null");
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return Raw(key, buf);
}

JsonObject& JsonObject::Add(std::string_view key, bool v) { return Raw(key, v ? "true" : "false"); }

JsonObject& JsonObject::Add(std::string_view key, std::string_view v) {
  return Raw(key, JsonEscape(v));
}

JsonObject& JsonObject::Add(std::string_view key, const JsonObject& v) { return Raw(key, v.str()); }

}  // namespace shardrec

#include "common/error.h"

namespace shardrec {
namespace {

class Parser {
 public:
  Parser(std::string_view t, const std::string& src) : t_(t), src_(src) {}
  JsonValue Document() {
    JsonValue v = Value();
    Ws();
    if (p_ != t_.size()) Bad("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void Bad(const std::string& what) { Fail(src_, ": invalid JSON at byte ", p_, ": ", what); }
  void Ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\n' || t_[p_] == '\t' || t_[p_] == '\r')) ++p_;
  }
  bool Eat(char c) {
    Ws();
    if (p_ < t_.size() && t_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  std::string String() {
    if (!Eat('"')) Bad("expected a string");
    std::string out;
    while (p_ < t_.size() && t_[p_] != '"') {
      char c = t_[p_++];
      if (c == '\\') {
        if (p_ >= t_.size()) Bad("bad escape");
        char e = t_[p_++];
        switch (e) {
          case 'n': out.push_back('\n'); break;
          case 't': out.push_back('\t'); break;
          case 'r': out.push_back('\r'); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case 'u': {
            if (p_ + 4 > t_.size()) Bad("bad \\u escape");
            unsigned cp = static_cast<unsigned>(std::stoul(std::string(t_.substr(p_, 4)), nullptr, 16));
            p_ += 4;
            if (cp < 0x80) {
              out.push_back(static_cast<char>(cp));
            } else if (cp < 0x800) {
              out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
              out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
            } else {
              out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
              out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
              out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
            }
            break;
          }
          default: out.push_back(e);
        }
      } else {
        out.push_back(c);
      }
    }
    if (p_ >= t_.size()) Bad("unterminated string");
    ++p_;
    return out;
  }
  JsonValue Value() {
    Ws();
    if (p_ >= t_.size()) Bad("unexpected end");
    JsonValue v;
    const char c = t_[p_];
    if (c == '{') {
      ++p_;
      v.type = JsonValue::kObject;
      if (Eat('}')) return v;
      do {
        std::string k = String();
        if (!Eat(':')) Bad("expected ':'");
        v.object.emplace_back(k, Value());
      } while (Eat(','));
      if (!Eat('}')) Bad("expected '}'");
    } else if (c == '[') {
      ++p_;
      v.type = JsonValue::kArray;
      if (Eat(']')) return v;
      do {
        v.array.push_back(Value());
      } while (Eat(','));
      if (!Eat(']')) Bad("expected ']'");
    } else if (c == '"') {
      v.type = JsonValue::kString;
      v.string = String();
    } else if (t_.substr(p_, 4) == "true" || t_.substr(p_, 5) == "false") {
      v.type = JsonValue::kBool;
      v.boolean = t_[p_] == 't';
      p_ += v.boolean ? 4 : 5;
    } else if (t_.substr(p_, 4) == "null") {
      p_ += 4;
    } else {
      size_t e = p_;
      while (e < t_.size() && std::string_view("+-0123456789.eE").find(t_[e]) != std::string_view::npos) ++e;
      if (e == p_) Bad("unexpected character");
      v.type = JsonValue::kNumber;
      v.number = std::strtod(std::string(t_.substr(p_, e - p_)).c_str(), nullptr);
      p_ = e;
    }
    return v;
  }
  std::string_view t_;
  const std::string& src_;
  size_t p_ = 0;
};

}  // namespace

JsonValue JsonValue::Parse(std::string_view text, const std::string& source) {
  return Parser(text, source).Document();
}

bool JsonValue::has(const std::string& key) const {
  for (const auto& [k, v] : object) {
    if (k == key) return true;
  }
  return false;
}

const JsonValue& JsonValue::at(const std::string& key) const {
  for (const auto& [k, v] : object) {
    if (k == key) return v;
  }
  Fail("JSON: missing key '", key, "'");
}

double JsonValue::num() const {
  if (type != kNumber) Fail("JSON: expected a number");
  return number;
}

const std::string& JsonValue::str() const {
  if (type != kString) Fail("JSON: expected a string");
  return string;
}

}  // namespace shardrec
