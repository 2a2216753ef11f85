// A request for recommendations as every front door states it (`shardrec query`'s flags, the
// server's POST /v1/recommend body), parsed here so that one parser serves both and can be fuzzed
// on its own (tests/fuzz). serve::Recommender answers it.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace shardrec {

struct RecommendRequest {
  std::string user;                   // a raw user id of the export, or "" with `history`
  std::vector<std::string> history;   // raw item ids, oldest first (when `user` is "")
  std::vector<int64_t> timestamps;    // unix seconds per history item, or empty
  // The request time (unix seconds); the lowest int64 when not given (model/history.h's
  // kUnknownTime).
  int64_t at = std::numeric_limits<int64_t>::min();
  int64_t k = 10;                     // items to return, >= 1
  bool exclude_history = true;        // leave the history's items out of the answer
  bool explain = false;
  size_t reasons = 3;                 // with explain: at most this many events per item
};

// What a request body may ask for.
struct RequestLimits {
  int64_t max_k = 10000;         // k above it is refused
  int64_t max_history = 10000;   // history entries above it are refused
};

// A POST /v1/recommend body (docs/serving.md):
//   {"user": RAW_ID} or {"history": [{"item": RAW_ID, "ts": UNIX_S} or RAW_ID, ...]},
//   optional "at" (unix seconds), "k", "exclude_history", "explain".
// A UserError names the field at fault (the server answers 400): not an object, an unknown field,
// a wrong type, neither or both of user and history, timestamps on some items only, k or the
// history out of the limits.
RecommendRequest ParseRecommendBody(const std::string& body, const RequestLimits& limits);

// "RAW_ID[@UNIX_SECONDS],..." (oldest first, `shardrec query --history`) into a request's history
// and timestamps: a timestamp on every item or on none; a UserError names `field` and the entry at
// fault.
void ParseHistoryList(const std::string& text, const std::string& field, RecommendRequest& request);

}  // namespace shardrec
