#include "io/recommend_request.h"

#include <string_view>

#include "common/error.h"
#include "common/json.h"
#include "common/strings.h"
#include "io/recall_lists.h"

namespace shardrec {
namespace {

// Raw ids are bounded as in users files (io/recall_lists.h): a longer one is a mistake, not an id.
const std::string& Id(const std::string& id, const std::string& field) {
  if (id.size() > kMaxUserIdBytes) Fail(field, ": an id of ", id.size(), " bytes (at most ", kMaxUserIdBytes, ")");
  return id;
}

int64_t Integer(const JsonValue& v, const std::string& field) {
  if (v.type != JsonValue::kNumber) Fail(field, ": expected an integer");
  try {
    return v.integer();
  } catch (const UserError& e) {
    Fail(field, ": ", e.what());
  }
}

bool Boolean(const JsonValue& v, const std::string& field) {
  if (v.type != JsonValue::kBool) Fail(field, ": expected true or false");
  return v.boolean;
}

void ParseHistoryArray(const JsonValue& v, const RequestLimits& limits, RecommendRequest& q) {
  if (v.type != JsonValue::kArray) Fail("history: expected an array of {\"item\": RAW_ID, \"ts\": UNIX_SECONDS}");
  if (static_cast<int64_t>(v.array.size()) > limits.max_history) {
    Fail("history: ", v.array.size(), " items, over this server's limit of ", limits.max_history, " (send the latest ones)");
  }
  for (size_t i = 0; i < v.array.size(); ++i) {
    const JsonValue& e = v.array[i];
    const std::string where = "history[" + std::to_string(i) + "]";
    const bool ts = e.type == JsonValue::kObject && e.has("ts");
    if (i > 0 && ts != !q.timestamps.empty()) Fail("history: give \"ts\" for every item or for none (", where, " differs)");
    if (e.type == JsonValue::kString) {
      if (e.string.empty()) Fail(where, ": expected a raw item id (a non-empty string)");
      q.history.push_back(Id(e.string, where));
      continue;
    }
    if (e.type != JsonValue::kObject || !e.has("item") || e.at("item").type != JsonValue::kString || e.at("item").string.empty()) {
      Fail(where, ": expected {\"item\": RAW_ID, \"ts\": UNIX_SECONDS} or a raw item id");
    }
    for (const auto& [key, unused] : e.object) {
      if (key != "item" && key != "ts") Fail(where, ": unknown field ", Quote(key), " (item, ts)");
    }
    q.history.push_back(Id(e.at("item").string, where + ".item"));
    if (ts) q.timestamps.push_back(Integer(e.at("ts"), where + ".ts"));
  }
}

}  // namespace

RecommendRequest ParseRecommendBody(const std::string& body, const RequestLimits& limits) {
  const JsonValue j = JsonValue::Parse(body, "request body");
  if (j.type != JsonValue::kObject) Fail("request body: expected a JSON object");
  RecommendRequest q;
  bool has_history = false;
  for (const auto& [key, v] : j.object) {
    if (key == "user") {
      if (v.type != JsonValue::kString || v.string.empty()) Fail("user: expected a raw user id (a non-empty string)");
      q.user = Id(v.string, "user");
    } else if (key == "history") {
      has_history = true;
      ParseHistoryArray(v, limits, q);
    } else if (key == "at") {
      q.at = Integer(v, "at");
      if (q.at == std::numeric_limits<int64_t>::min()) Fail("at: out of range");
    } else if (key == "k") {
      q.k = Integer(v, "k");
      if (q.k < 1 || q.k > limits.max_k) Fail("k: expected 1 to ", limits.max_k, ", got ", q.k);
    } else if (key == "exclude_history") {
      q.exclude_history = Boolean(v, "exclude_history");
    } else if (key == "explain") {
      q.explain = Boolean(v, "explain");
    } else {
      Fail("request body: unknown field ", Quote(key), " (user, history, at, k, exclude_history, explain)");
    }
  }
  if (q.user.empty() == !has_history) Fail("request body: give exactly one of \"user\" and \"history\"");
  if (has_history && q.history.empty()) Fail("history: expected at least one item");
  return q;
}

void ParseHistoryList(const std::string& text, const std::string& field, RecommendRequest& q) {
  for (auto raw : text.empty() ? std::vector<std::string_view>() : SplitText(text, ",")) {
    const std::string entry(Trim(raw));
    const size_t at = entry.find('@');
    if (!q.history.empty() && (at != std::string::npos) != !q.timestamps.empty()) {
      Fail(field, ": give a timestamp for every item (RAW_ID@SECONDS) or for none; ", Quote(entry), " differs");
    }
    if (at != std::string::npos) {
      auto ts = ParseInt64(entry.substr(at + 1));
      if (!ts) Fail(field, ": ", Quote(entry), ": expected RAW_ID@UNIX_SECONDS");
      q.timestamps.push_back(*ts);
    }
    q.history.push_back(Id(entry.substr(0, at), field));
  }
  if (!text.empty() && q.history.empty()) Fail(field, ": no items given");
}

}  // namespace shardrec
