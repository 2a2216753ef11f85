#include "io/time_cut.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace shardrec {

TimeCut ChooseTimeCut(const Dataset& ds, int64_t given) {
  if (!ds.info().has_timestamps) Fail(ds.path(), ": has no timestamps; a time cut needs them");
  if (given != 0) return {given, "--stream-cut " + std::to_string(given)};
  const auto drift = ds.NumericAttributes("/drift");
  if (auto it = drift.find("time"); it != drift.end()) {
    const int64_t t = static_cast<int64_t>(it->second);
    return {t, "the data's drift time (/drift/time " + std::to_string(t) + ": users start to move)"};
  }
  int64_t first = std::numeric_limits<int64_t>::max(), last = std::numeric_limits<int64_t>::min();
  ForEachUserBlock(ds, [&](int64_t, int64_t, const std::vector<int32_t>&, const std::vector<int64_t>& ts) {
    for (int64_t t : ts) first = std::min(first, t), last = std::max(last, t);
  });
  if (first > last) Fail(ds.path(), ": has no events");
  const int64_t t = first + static_cast<int64_t>(std::floor(0.8 * static_cast<double>(last - first)));
  return {t, "80% of the time range " + std::to_string(first) + " .. " + std::to_string(last) + " (" + std::to_string(t) + ")"};
}

CutReport WriteEventsBefore(const Dataset& source, int64_t cut, const std::string& output) {
  const DatasetInfo& info = source.info();
  if (!info.has_timestamps) Fail(source.path(), ": has no timestamps; a time cut needs them");
  DatasetWriterOptions wo;
  wo.timestamps = true;
  wo.titles = info.has_titles;
  wo.categories = info.has_categories;
  wo.content_dim = info.content_dim;
  wo.source = "events before " + std::to_string(cut) + " of " + info.source;
  auto writer = DatasetWriter::Create(output, wo);
  CutReport r;
  const auto& off = source.user_offsets();
  ForEachUserBlock(source, [&](int64_t u, int64_t v, const std::vector<int32_t>& items, const std::vector<int64_t>& ts) {
    const std::vector<std::string> raw = source.ReadUserRawIds(u, v);
    for (int64_t w = u; w < v; ++w) {
      const int64_t b = off[w] - off[u], e = off[w + 1] - off[u];
      // A user's events are in time order: those before the cut are a prefix.
      const int64_t n = std::lower_bound(ts.begin() + b, ts.begin() + e, cut) - (ts.begin() + b);
      r.events_after += e - b - n;
      if (n == 0) continue;
      writer->AddUser(raw[w - u], std::span<const int32_t>(items.data() + b, n), std::span<const int64_t>(ts.data() + b, n));
      ++r.users;
      r.events_before += n;
    }
  });
  if (r.users == 0) Fail(source.path(), ": no event before the cut ", cut);
  CopyItemCatalogue(source, *writer);
  writer->SetAttribute("/time_cut", "time", static_cast<double>(cut));
  writer->SetAttribute("/time_cut", "source_fingerprint", source.DataFingerprint());
  writer->Finish();
  return r;
}

}  // namespace shardrec
