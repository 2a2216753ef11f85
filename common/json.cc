#include "common/json.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/strings.h"

namespace shardrec {

// JSON text is UTF-8: a string that is not (a path in another encoding, say) is a UserError, not
// silently changed, so what is read back is what was written.
std::string JsonEscape(std::string_view s) {
  if (!IsValidUtf8(s)) Fail("cannot write ", Quote(s), " to JSON: not valid UTF-8");
  return nlohmann::json(std::string(s)).dump();
}

JsonObject& JsonObject::Raw(std::string_view key, const std::string& value) {
  if (!body_.empty()) body_ += ", ";
  body_ += JsonEscape(key) + ": " + value;
  return *this;
}

JsonObject& JsonObject::Add(std::string_view key, int64_t v) { return Raw(key, std::to_string(v)); }

// Shortest text that reads back to the same double; non-finite -> null.
JsonObject& JsonObject::Add(std::string_view key, double v) { return Raw(key, nlohmann::json(v).dump()); }

JsonObject& JsonObject::Add(std::string_view key, bool v) { return Raw(key, v ? "true" : "false"); }

JsonObject& JsonObject::Add(std::string_view key, std::string_view v) { return Raw(key, JsonEscape(v)); }

JsonObject& JsonObject::Add(std::string_view key, const JsonObject& v) { return Raw(key, v.str()); }

namespace {

// Builds a JsonValue from nlohmann's SAX events with an explicit stack (no recursion on input depth).
class Builder : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit Builder(const std::string& source) : source_(source) {}
  JsonValue Take() { return std::move(root_); }

  bool null() override { return Put(JsonValue{}); }
  bool boolean(bool b) override {
    JsonValue v;
    v.type = JsonValue::kBool;
    v.boolean = b;
    return Put(std::move(v));
  }
  bool number_integer(number_integer_t i) override { return Integer(i); }
  bool number_unsigned(number_unsigned_t u) override {
    if (u > static_cast<uint64_t>(INT64_MAX)) return number_float(static_cast<double>(u), "");
    return Integer(static_cast<int64_t>(u));
  }
  bool number_float(number_float_t d, const string_t&) override {
    JsonValue v;
    v.type = JsonValue::kNumber;
    v.number = d;
    return Put(std::move(v));
  }
  bool string(string_t& s) override {
    JsonValue v;
    v.type = JsonValue::kString;
    v.string = std::move(s);
    return Put(std::move(v));
  }
  bool binary(binary_t&) override { return false; }  // not produced by the JSON text parser
  bool start_object(std::size_t) override { return Open(JsonValue::kObject); }
  bool key(string_t& k) override {
    JsonValue& obj = *stack_.back();
    for (const auto& [name, _] : obj.object) {
      if (name == k) Fail(source_, ": invalid JSON: key ", JsonEscape(k), " given twice in one object");
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(JsonValue::kArray); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at line L, column C: what".
    std::string what = ex.what();
    const size_t at = what.find(" at line ");
    if (at != std::string::npos) what = what.substr(at + 1);
    Fail(source_, ": invalid JSON ", what);
  }

 private:
  bool Integer(int64_t i) {
    JsonValue v;
    v.type = JsonValue::kNumber;
    v.number = static_cast<double>(i);
    v.is_integer = true;
    v.exact = i;
    return Put(std::move(v));
  }
  // Places `v` in the open container (or as the document) and returns where it now lives.
  JsonValue* Place(JsonValue v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    JsonValue& top = *stack_.back();
    if (top.type == JsonValue::kArray) {
      top.array.push_back(std::move(v));
      return &top.array.back();
    }
    top.object.emplace_back(std::move(key_), std::move(v));
    return &top.object.back().second;
  }
  bool Put(JsonValue v) {
    Place(std::move(v));
    return true;
  }
  bool Open(JsonValue::Type t) {
    if (static_cast<int>(stack_.size()) >= JsonValue::kMaxDepth) {
      Fail(source_, ": invalid JSON: nested deeper than ", JsonValue::kMaxDepth, " levels");
    }
    JsonValue v;
    v.type = t;
    // Children are only appended to the innermost open container, so this pointer stays valid
    // until its container is closed.
    stack_.push_back(Place(std::move(v)));
    return true;
  }
  bool Close() {
    stack_.pop_back();
    return true;
  }

  const std::string& source_;
  JsonValue root_;
  std::vector<JsonValue*> stack_;
  std::string key_;
};

}  // namespace

JsonValue::JsonValue() = default;
JsonValue::~JsonValue() = default;
JsonValue::JsonValue(const JsonValue&) = default;
JsonValue::JsonValue(JsonValue&&) noexcept = default;
JsonValue& JsonValue::operator=(const JsonValue&) = default;
JsonValue& JsonValue::operator=(JsonValue&&) noexcept = default;

JsonValue JsonValue::Parse(std::string_view text, const std::string& source) {
  Builder b(source);
  nlohmann::json::sax_parse(text, &b, nlohmann::json::input_format_t::json, /*strict=*/true,
                            /*ignore_comments=*/false);
  return b.Take();
}

bool JsonValue::has(const std::string& key) const {
  for (const auto& [k, v] : object) {
    if (k == key) return true;
  }
  return false;
}

const JsonValue& JsonValue::at(const std::string& key) const {
  if (type != kObject) Fail("JSON: expected an object holding '", key, "'");
  for (const auto& [k, v] : object) {
    if (k == key) return v;
  }
  Fail("JSON: missing key '", key, "'");
}

double JsonValue::num() const {
  if (type != kNumber) Fail("JSON: expected a number");
  return number;
}

int64_t JsonValue::integer() const {
  if (type != kNumber) Fail("JSON: expected an integer");
  if (is_integer) return exact;
  // 2^63 is exactly representable; everything below it in magnitude converts without overflow.
  if (!(std::nearbyint(number) == number && number >= -9223372036854775808.0 && number < 9223372036854775808.0)) {
    Fail("JSON: expected an integer, got ", number);
  }
  return static_cast<int64_t>(number);
}

const std::string& JsonValue::str() const {
  if (type != kString) Fail("JSON: expected a string");
  return string;
}

}  // namespace shardrec
