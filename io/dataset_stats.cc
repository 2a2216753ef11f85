#include "io/dataset_stats.h"

#include <algorithm>
#include <vector>

#include "common/json.h"

namespace shardrec {

DatasetStats ComputeDatasetStats(const Dataset& ds) {
  DatasetStats s;
  s.info = ds.info();
  const DatasetInfo& info = s.info;
  std::vector<int64_t> len(static_cast<size_t>(info.num_users));
  for (int64_t u = 0; u < info.num_users; ++u) len[u] = ds.user_length(u);
  std::sort(len.begin(), len.end());
  if (!len.empty()) {
    s.min_events = len.front();
    s.max_events = len.back();
    const size_t h = len.size() / 2;
    s.median_events = len.size() % 2 ? double(len[h]) : 0.5 * (len[h - 1] + len[h]);
  }
  s.mean_events = info.num_users ? double(info.num_events) / info.num_users : 0;
  s.items_with_content = ds.CountItemsWithContent();
  s.test_users = std::count_if(len.begin(), len.end(), [](int64_t n) { return n >= 3; });
  std::vector<uint8_t> seen(static_cast<size_t>(info.num_items), 0);
  for (int64_t b = 0; b < info.num_events; b += int64_t{1} << 22) {
    for (int32_t it : ds.ReadItems(b, std::min(info.num_events, b + (int64_t{1} << 22)))) seen[static_cast<size_t>(it)] = 1;
  }
  s.items_without_events = info.num_items - std::count(seen.begin(), seen.end(), uint8_t{1});
  s.oracle = ds.NumericAttributes("/oracle");
  return s;
}

std::string DatasetStatsJson(const std::string& path, const DatasetStats& s) {
  const DatasetInfo& info = s.info;
  JsonObject per_user;
  per_user.Add("min", s.min_events).Add("median", s.median_events).Add("max", s.max_events).Add("mean", s.mean_events);
  JsonObject o;
  o.Add("file", path)
      .Add("format_version", info.format_version)
      .Add("users", info.num_users)
      .Add("items", info.num_items)
      .Add("items_without_events", s.items_without_events)
      .Add("events", info.num_events)
      .Add("events_per_user", per_user)
      .Add("users_with_test_event", s.test_users)
      .Add("has_timestamps", info.has_timestamps)
      .Add("has_titles", info.has_titles)
      .Add("num_categories", info.num_categories)
      .Add("content_dim", info.content_dim)
      .Add("items_with_content", s.items_with_content)
      .Add("source", info.source);
  if (!s.oracle.empty()) {
    JsonObject oj;
    for (const auto& [k, v] : s.oracle) oj.Add(k, v);
    o.Add("oracle", oj);
  }
  return o.str();
}

}  // namespace shardrec
