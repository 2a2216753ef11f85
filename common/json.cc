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
