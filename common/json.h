// Minimal JSON output for reports meant for programs (stats --json, metrics files).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardrec {

std::string JsonEscape(std::string_view s);  // with surrounding quotes

// Builds one JSON object, keys in insertion order.
class JsonObject {
 public:
  JsonObject& Add(std::string_view key, int64_t v);
  JsonObject& Add(std::string_view key, int v) { return Add(key, static_cast<int64_t>(v)); }
  JsonObject& Add(std::string_view key, double v);  // non-finite -> null
  JsonObject& Add(std::string_view key, bool v);
  JsonObject& Add(std::string_view key, std::string_view v);
  JsonObject& Add(std::string_view key, const char* v) { return Add(key, std::string_view(v)); }
  JsonObject& Add(std::string_view key, const JsonObject& v);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonObject& Raw(std::string_view key, const std::string& value);
  std::string body_;
};

}  // namespace shardrec
