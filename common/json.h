// JSON for reports meant for programs (stats --json, metrics files) and for manifests, over
// nlohmann/json (kept out of this header: it is heavy to compile).
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
  // `json` must already be valid JSON (an array, say).
  JsonObject& AddRaw(std::string_view key, const std::string& json) { return Raw(key, json); }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonObject& Raw(std::string_view key, const std::string& value);
  std::string body_;
};

}  // namespace shardrec

namespace shardrec {

// A parsed JSON value (objects keep the document's key order). Parse throws UserError naming
// `source`, line and column of the first problem. Stricter than JSON itself, since every document
// read here is a file ShardRec wrote: a key given twice in one object and nesting deeper than
// kMaxDepth are errors.
struct JsonValue {
  static constexpr int kMaxDepth = 64;
  // Defined in json.cc, where the members' types are complete (a vector of pairs holding this type).
  JsonValue();
  ~JsonValue();
  JsonValue(const JsonValue&);
  JsonValue(JsonValue&&) noexcept;
  JsonValue& operator=(const JsonValue&);
  JsonValue& operator=(JsonValue&&) noexcept;

  enum Type { kNull, kBool, kNumber, kString, kArray, kObject } type = kNull;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;  // written as an integer that fits int64_t: `exact` holds it
  int64_t exact = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;

  static JsonValue Parse(std::string_view text, const std::string& source);
  // Member access; throws UserError naming `source`-less context if missing or of another type.
  const JsonValue& at(const std::string& key) const;
  bool has(const std::string& key) const;
  double num() const;
  // A number with an integral value in int64_t's range, else a UserError.
  int64_t integer() const;
  const std::string& str() const;
};

}  // namespace shardrec
