// The events a server has taken (POST /v1/events) and its served version has not: each user's
// newest ones, held in memory, so that the user's next answer reads them at once (the user tower
// re-encodes the history with them) instead of after the next publish; their effect through the
// history is immediate (docs/serving.md, "Fresh events").
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/event_log.h"

namespace shardrec {

// Thread-safe.
class RecentEvents {
 public:
  struct Options {
    int64_t max_per_user = 200;      // a user's newest events kept (the user tower reads max_len)
    int64_t max_users = 1 << 20;     // users kept; the least recently active is forgotten first
  };
  explicit RecentEvents(Options options) : options_(options) {}

  // Events as taken, in order (a user's events need not be in time order across calls: each
  // user's are kept sorted by time, ties in arrival order).
  void Add(const std::vector<LogEvent>& events);
  // A user's kept events, oldest first: (raw item id, unix seconds). Empty when none.
  std::vector<std::pair<std::string, int64_t>> Of(const std::string& user) const;
  int64_t users() const;
  int64_t events() const;

 private:
  struct Entry {
    std::vector<std::pair<std::string, int64_t>> events;
    std::list<std::string>::iterator lru;
  };
  const Options options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> users_;
  std::list<std::string> lru_;  // most recently active first
  int64_t events_ = 0;
};

}  // namespace shardrec
