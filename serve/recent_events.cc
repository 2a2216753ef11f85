#include "serve/recent_events.h"

#include <algorithm>

namespace shardrec {

void RecentEvents::Add(const std::vector<LogEvent>& events) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const LogEvent& e : events) {
    auto [it, fresh] = users_.try_emplace(e.user);
    Entry& u = it->second;
    if (fresh) {
      lru_.push_front(e.user);
      u.lru = lru_.begin();
    } else {
      lru_.splice(lru_.begin(), lru_, u.lru);
    }
    // After every kept event at or before its time (upper bound keeps arrival order among ties).
    const auto at = std::upper_bound(u.events.begin(), u.events.end(), e.ts,
                                     [](int64_t ts, const std::pair<std::string, int64_t>& x) { return ts < x.second; });
    u.events.insert(at, {e.item, e.ts});
    ++events_;
    if (static_cast<int64_t>(u.events.size()) > options_.max_per_user) {
      u.events.erase(u.events.begin());
      --events_;
    }
    if (static_cast<int64_t>(users_.size()) > options_.max_users) {
      auto last = users_.find(lru_.back());
      events_ -= static_cast<int64_t>(last->second.events.size());
      users_.erase(last);
      lru_.pop_back();
    }
  }
}

std::vector<std::pair<std::string, int64_t>> RecentEvents::Of(const std::string& user) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = users_.find(user);
  return it == users_.end() ? std::vector<std::pair<std::string, int64_t>>() : it->second.events;
}

int64_t RecentEvents::users() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(users_.size());
}

int64_t RecentEvents::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

}  // namespace shardrec
