// Day files cut from one synthetic world (io/synth.h, WriteSyntheticDays).
#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/rng.h"
#include "io/synth.h"

namespace shardrec {
namespace {

constexpr uint64_t kArrival = 0x41525256ULL, kRetirement = 0x52455449ULL;
constexpr int kNever = 1 << 30;

// The first day >= 2 on which an event with probability `per_day` (independently each day) happens,
// from one uniform draw; kNever if none by `days`.
int DrawDay(double u, double per_day, int days) {
  for (int d = 2; d <= days; ++d) {
    if (u < per_day) return d;
    u = (u - per_day) / (1 - per_day);  // the same draw, conditioned on "not today"
  }
  return kNever;
}

double Uniform(uint64_t seed, uint64_t stream, int64_t id) {
  return static_cast<double>(HashKeys({seed, stream, static_cast<uint64_t>(id)}) >> 11) * 0x1.0p-53;
}

// The world in memory: every user's events and every item's metadata.
struct World {
  std::vector<std::string> users, items, titles, category_names;
  std::vector<int64_t> offsets;
  std::vector<int32_t> events;
  std::vector<int64_t> times;
  Dataset::Categories categories;
  std::vector<float> content;
  DatasetInfo info;
};

World ReadWorld(const std::string& path) {
  auto ds = Dataset::Open(path);
  World w;
  w.info = ds->info();
  if (!w.info.has_timestamps) Fail(path, ": --days needs timestamps; the dataset has none");
  w.users = ds->ReadUserRawIds(0, w.info.num_users);
  w.items = ds->ReadItemRawIds(0, w.info.num_items);
  if (w.info.has_titles) w.titles = ds->ReadItemTitles(0, w.info.num_items);
  if (w.info.has_categories) {
    w.categories = ds->ReadItemCategories(0, w.info.num_items);
    w.category_names = ds->ReadCategoryNames();
  }
  if (w.info.content_dim > 0) w.content = ds->ReadItemContent(0, w.info.num_items);
  w.offsets = ds->user_offsets();
  w.events = ds->ReadItems(0, w.info.num_events);
  w.times = ds->ReadTimestamps(0, w.info.num_events);
  return w;
}

// Writes day `day`: events before `end_time` of items alive then (arrived by the event's day, not
// retired by this day); `day_of(t)` is the day of a time.
SynthDay WriteDay(const World& w, int day, const std::string& path, int64_t end_time, const std::vector<int>& arrival,
                  const std::vector<int>& retirement, const std::function<int(int64_t)>& day_of, const std::string& source) {
  const int64_t n_items = w.info.num_items;
  auto alive_at = [&](int32_t item, int d) { return arrival[item] <= d && retirement[item] > day; };
  std::vector<int64_t> kept_events;  // per user, in order: world event positions
  std::vector<int64_t> user_begin = {0};
  std::vector<int64_t> kept_users;
  std::vector<bool> used(static_cast<size_t>(n_items), false);
  for (int64_t u = 0; u < w.info.num_users; ++u) {
    const size_t before = kept_events.size();
    for (int64_t e = w.offsets[u]; e < w.offsets[u + 1]; ++e) {
      if (w.times[e] < end_time && alive_at(w.events[e], day_of(w.times[e]))) kept_events.push_back(e);
    }
    if (kept_events.size() - before < 3) {
      kept_events.resize(before);
      continue;
    }
    for (size_t k = before; k < kept_events.size(); ++k) used[w.events[kept_events[k]]] = true;
    kept_users.push_back(u);
    user_begin.push_back(static_cast<int64_t>(kept_events.size()));
  }
  // Dense ids in the world's order (raw-id order, as the generator wrote them).
  std::vector<int32_t> dense(static_cast<size_t>(n_items), -1);
  int32_t next = 0;
  for (int64_t i = 0; i < n_items; ++i) {
    if (used[i]) dense[i] = next++;
  }
  if (next == 0) Fail("day ", day, ": no user has 3 events; lower --first-day-share or add --events");
  DatasetWriterOptions wo;
  wo.timestamps = true;
  wo.titles = w.info.has_titles;
  wo.categories = w.info.has_categories;
  wo.content_dim = w.info.content_dim;
  wo.source = source;
  auto writer = DatasetWriter::Create(path, wo);
  std::vector<int32_t> items;
  std::vector<int64_t> times;
  for (size_t k = 0; k < kept_users.size(); ++k) {
    items.clear();
    times.clear();
    for (int64_t j = user_begin[k]; j < user_begin[k + 1]; ++j) {
      items.push_back(dense[w.events[kept_events[j]]]);
      times.push_back(w.times[kept_events[j]]);
    }
    writer->AddUser(w.users[kept_users[k]], items, times);
  }
  if (w.info.has_categories) writer->SetCategoryNames(w.category_names);
  const int64_t dim = w.info.content_dim;
  for (int64_t i = 0; i < n_items; ++i) {
    if (!used[i]) continue;
    std::span<const int32_t> cats;
    if (w.info.has_categories) {
      cats = std::span<const int32_t>(w.categories.values.data() + w.categories.offsets[i],
                                      static_cast<size_t>(w.categories.offsets[i + 1] - w.categories.offsets[i]));
    }
    writer->AddItem(w.items[i], w.info.has_titles ? std::string_view(w.titles[i]) : std::string_view(), cats,
                    dim > 0 ? std::span<const float>(w.content.data() + i * dim, static_cast<size_t>(dim))
                            : std::span<const float>());
  }
  SynthDay out;
  out.path = path;
  out.info = writer->Finish();
  return out;
}

// Raw ids present in a day file, for the day-over-day counts.
std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

int64_t CountMissing(const std::vector<std::string>& sorted_from, const std::vector<std::string>& sorted_in) {
  int64_t n = 0;
  for (const auto& s : sorted_from) n += !std::binary_search(sorted_in.begin(), sorted_in.end(), s);
  return n;
}

}  // namespace

void CheckSynthDaysOptions(const SynthDaysOptions& o) {
  if (o.days < 1 || o.days > 1000) Fail("--days: expected 1 to 1000, got ", o.days);
  if (!(o.first_day_share > 0 && o.first_day_share <= 1)) Fail("--first-day-share: expected a share in (0, 1], got ", o.first_day_share);
  for (auto [name, p] : {std::pair{"--new-items", o.new_items}, {"--retired-items", o.retired_items}}) {
    if (!(p >= 0 && p < 1)) Fail(name, ": expected a probability per day in [0, 1), got ", p);
  }
}

std::vector<SynthDay> WriteSyntheticDays(const std::string& world_path, const std::string& dir, const SynthDaysOptions& o) {
  CheckSynthDaysOptions(o);
  const World w = ReadWorld(world_path);
  // Day ends at quantiles of the event times: day 1 holds `first_day_share` of the world's events,
  // each later day an equal share of the rest.
  std::vector<int64_t> sorted_times = w.times;
  std::sort(sorted_times.begin(), sorted_times.end());
  std::vector<int64_t> day_end(static_cast<size_t>(o.days) + 1, sorted_times.back() + 1);
  for (int d = 1; d < o.days; ++d) {
    const double share = o.first_day_share + (1 - o.first_day_share) * (d - 1) / (o.days - 1);
    day_end[d] = sorted_times[std::min(sorted_times.size() - 1, static_cast<size_t>(share * static_cast<double>(sorted_times.size())))];
  }
  auto day_of = [&](int64_t t) {
    return static_cast<int>(std::upper_bound(day_end.begin() + 1, day_end.end(), t) - day_end.begin());
  };
  std::vector<int> arrival(static_cast<size_t>(w.info.num_items)), retirement(arrival.size());
  for (int64_t i = 0; i < w.info.num_items; ++i) {
    const int a = DrawDay(Uniform(o.seed, kArrival, i), o.new_items, o.days);
    arrival[i] = a == kNever ? 1 : a;
    const int r = DrawDay(Uniform(o.seed, kRetirement, i), o.retired_items, o.days);
    retirement[i] = r > arrival[i] ? r : kNever;
  }
  MakeDirs(dir);
  std::vector<SynthDay> out;
  std::vector<std::string> prev_items, prev_users;
  for (int d = 1; d <= o.days; ++d) {
    const std::string source = "shardrec data synth --days " + std::to_string(o.days) + ": day " + std::to_string(d) +
                               " of " + w.info.source;
    SynthDay day = WriteDay(w, d, dir + "/day-" + std::to_string(d) + ".h5", day_end[d], arrival, retirement, day_of, source);
    auto ds = Dataset::Open(day.path);
    std::vector<std::string> items = Sorted(ds->ReadItemRawIds(0, day.info.num_items));
    std::vector<std::string> users = Sorted(ds->ReadUserRawIds(0, day.info.num_users));
    if (d > 1) {
      day.new_items = CountMissing(items, prev_items);
      day.retired_items = CountMissing(prev_items, items);
      day.new_users = CountMissing(users, prev_users);
    }
    prev_items = std::move(items);
    prev_users = std::move(users);
    out.push_back(day);
  }
  return out;
}

std::vector<SynthDay> GenerateSyntheticDays(const std::string& dir, const SynthOptions& synth, const SynthDaysOptions& d) {
  const std::string world = dir + "/.world.h5";
  if (PathExists(dir) && !IsDirectory(dir)) Fail("--output ", dir, ": with --days it names a directory, and this is a file");
  CheckSynthOptions(synth);  // before anything is made
  if (synth.drift > 0) Fail("--drift with --days: not supported (the days would lose the shift's record); generate one file");
  CheckSynthDaysOptions(d);
  const bool made = !PathExists(dir);
  MakeDirs(dir);
  std::vector<SynthDay> days;
  try {
    GenerateSynthetic(world, synth);
    days = WriteSyntheticDays(world, dir, d);
  } catch (...) {
    RemoveAll(made ? dir : world);  // a directory this call made goes whole
    throw;
  }
  RemoveAll(world);
  return days;
}

}  // namespace shardrec
