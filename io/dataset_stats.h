// What `shardrec data stats` reports about a dataset file: counts, the distribution of events per
// user, which optional columns it has, and the synthetic generator's oracle when present.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "io/dataset.h"

namespace shardrec {

struct DatasetStats {
  DatasetInfo info;
  int64_t items_without_events = 0;  // catalogue items no event mentions: reachable only by content
  int64_t min_events = 0, max_events = 0;  // per user
  double median_events = 0, mean_events = 0;
  int64_t test_users = 0;  // users with >= 3 events (a leave-one-out test event)
  int64_t items_with_content = 0;
  std::map<std::string, double> oracle;  // synthetic data: the generator's own metrics
};

// Reads the user offsets and every event's item once (in blocks).
DatasetStats ComputeDatasetStats(const Dataset& dataset);
// {"file", "format_version", "users", "items", ...}: the schema of `data stats --json`.
std::string DatasetStatsJson(const std::string& path, const DatasetStats& stats);

}  // namespace shardrec
