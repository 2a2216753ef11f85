// libFuzzer harness of the server's request parser (io/recommend_request.h): a POST /v1/recommend
// body from anyone on the network must parse to a request within the limits or be refused with a
// bounded, printable UserError (the server answers 400), never crash, hang or take memory out of
// proportion to the body. `shardrec query --history`'s list parser gets the same bytes, and so do
// the event log's parsers (a POST /v1/events body, one segment line): every event they accept
// writes back to a line that parses to the same event.
#include <string>

#include "common/error.h"
#include "io/event_log.h"
#include "io/recommend_request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardrec;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const RequestLimits limits{.max_k = 1000, .max_history = 50};
  auto bounded = [](const UserError& e) {
    const std::string m = e.what();
    if (m.size() > kMaxErrorBytes) std::abort();
    for (char c : m) {
      if (c == '\0' || c == '\x1b') std::abort();
    }
  };
  fuzz::ExpectOnlyUserErrors([&] {
    try {
      const RecommendRequest q = ParseRecommendBody(text, limits);
      // What the parser lets through holds the limits.
      if (q.user.empty() == q.history.empty()) std::abort();
      if (q.k < 1 || q.k > limits.max_k || static_cast<int64_t>(q.history.size()) > limits.max_history) std::abort();
      if (!q.timestamps.empty() && q.timestamps.size() != q.history.size()) std::abort();
    } catch (const UserError& e) {
      bounded(e);
    }
  });
  fuzz::ExpectOnlyUserErrors([&] {
    try {
      RecommendRequest q;
      ParseHistoryList(text, "--history", q);
      if (!q.timestamps.empty() && q.timestamps.size() != q.history.size()) std::abort();
    } catch (const UserError& e) {
      bounded(e);
    }
  });
  auto round_trips = [](const LogEvent& e) {
    if (ParseLogEvent(LogEventJson(e), "written") != e) std::abort();
  };
  std::vector<LogEvent> accepted;  // round-tripped outside the catch: a failure there aborts
  fuzz::ExpectOnlyUserErrors([&] {
    try {
      const std::vector<LogEvent> events = ParseEventsBody(text, 100);
      if (events.empty() || events.size() > 100) std::abort();
      accepted.insert(accepted.end(), events.begin(), events.end());
    } catch (const UserError& e) {
      bounded(e);
    }
  });
  fuzz::ExpectOnlyUserErrors([&] {
    try {
      accepted.push_back(ParseLogEvent(text, "line"));
    } catch (const UserError& e) {
      bounded(e);
    }
  });
  for (const LogEvent& e : accepted) {
    try {
      round_trips(e);
    } catch (const UserError&) {
      std::abort();  // a line ShardRec wrote that it cannot read back
    }
  }
  return 0;
}
