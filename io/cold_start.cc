#include "io/cold_start.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <glog/logging.h>

#include "common/error.h"
#include "common/file_util.h"
#include "common/rng.h"
#include "io/reader.h"

namespace shardrec {
namespace {

constexpr uint64_t kColdStream = 0x434F4C44ULL;  // "COLD"

}  // namespace

ColdItems ChooseColdItems(const Dataset& source, double fraction, uint64_t seed) {
  if (!(fraction > 0 && fraction < 1)) Fail("--cold-items: expected a fraction in (0, 1), got ", fraction);
  const int64_t n = source.info().num_items;
  ColdItems c;
  c.fraction = fraction;
  c.seed = seed;
  c.event_counts.assign(static_cast<size_t>(n), 0);
  ForEachUserBlock(source, [&](int64_t, int64_t, const std::vector<int32_t>& items, const std::vector<int64_t>&) {
    for (int32_t it : items) ++c.event_counts[static_cast<size_t>(it)];
  });
  std::vector<std::pair<uint64_t, int64_t>> keyed;
  for (int64_t i = 0; i < n; ++i) {
    if (c.event_counts[i] > 0) keyed.emplace_back(HashKeys({seed, kColdStream, static_cast<uint64_t>(i)}), i);
  }
  c.num_cold = std::llround(fraction * static_cast<double>(keyed.size()));
  std::sort(keyed.begin(), keyed.end());
  c.cold.assign(static_cast<size_t>(n), 0);
  for (int64_t k = 0; k < c.num_cold; ++k) c.cold[static_cast<size_t>(keyed[k].second)] = 1;
  return c;
}

ColdStartReport WriteColdStartDataset(const Dataset& source, const ColdItems& cold, const std::string& output) {
  const DatasetInfo& info = source.info();
  CHECK_EQ(static_cast<int64_t>(cold.cold.size()), info.num_items);
  DatasetWriterOptions wo;
  wo.timestamps = info.has_timestamps;
  wo.titles = info.has_titles;
  wo.categories = info.has_categories;
  wo.content_dim = info.content_dim;
  wo.source = "cold-start protocol (" + std::to_string(cold.num_cold) + " cold items, --cold-items " +
              std::to_string(cold.fraction) + " --cold-seed " + std::to_string(cold.seed) + ") of " + info.source;
  auto writer = DatasetWriter::Create(output, wo);
  ColdStartReport report;
  const auto& off = source.user_offsets();
  std::vector<int32_t> items;
  std::vector<int64_t> stamps;
  ForEachUserBlock(source, [&](int64_t u, int64_t v, const std::vector<int32_t>& all, const std::vector<int64_t>& times) {
    const std::vector<std::string> raw = source.ReadUserRawIds(u, v);
    for (int64_t w = u; w < v; ++w) {
      const int64_t b = off[w] - off[u], e = off[w + 1] - off[u];
      const int64_t train_end = TrainEventsEnd(b, e);
      items.clear();
      stamps.clear();
      for (int64_t k = b; k < e; ++k) {
        if (k < train_end && cold.cold[static_cast<size_t>(all[k])]) {
          ++report.removed_events;
          continue;
        }
        items.push_back(all[k]);
        if (!times.empty()) stamps.push_back(times[k]);
      }
      const int64_t held_out = e - train_end;
      if (static_cast<int64_t>(items.size()) == held_out) {  // nothing left to learn or recall from
        ++report.dropped_users;
        continue;
      }
      if (held_out > 0 && cold.cold[static_cast<size_t>(all[e - 1])]) ++report.cold_targets;
      writer->AddUser(raw[w - u], items, stamps);
      ++report.users;
    }
  });
  if (report.users == 0) Fail("--cold-items ", cold.fraction, ": every user of ", source.path(), " would be left without a training event");
  CopyItemCatalogue(source, *writer);  // unchanged
  writer->SetAttribute("/cold_start", "fraction", cold.fraction);
  writer->SetAttribute("/cold_start", "seed", std::to_string(cold.seed));
  writer->SetAttribute("/cold_start", "cold_items", static_cast<double>(cold.num_cold));
  writer->SetAttribute("/cold_start", "source_fingerprint", source.DataFingerprint());
  writer->Finish();
  return report;
}

bool IsColdStartDatasetOf(const std::string& path, const Dataset& source, double fraction, uint64_t seed) {
  if (!PathExists(path)) return false;
  auto ds = Dataset::Open(path);
  const auto num = ds->NumericAttributes("/cold_start");
  auto f = num.find("fraction");
  return f != num.end() && f->second == fraction && ds->StringAttribute("/cold_start", "seed") == std::to_string(seed) &&
         ds->StringAttribute("/cold_start", "source_fingerprint") == source.DataFingerprint();
}

std::vector<int64_t> ColdPopularityRanks(const ColdItems& cold) {
  std::vector<int64_t> order;
  for (size_t i = 0; i < cold.cold.size(); ++i) {
    if (cold.cold[i]) order.push_back(static_cast<int64_t>(i));
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return cold.event_counts[a] > cold.event_counts[b]; });
  std::vector<int64_t> rank(cold.cold.size(), -1);
  for (size_t k = 0; k < order.size(); ++k) rank[static_cast<size_t>(order[k])] = static_cast<int64_t>(k);
  return rank;
}

}  // namespace shardrec
