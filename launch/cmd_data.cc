// shardrec data convert | stats | synth
#include <algorithm>
#include <tuple>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "common/error.h"
#include "common/json.h"
#include "common/strings.h"
#include "io/convert.h"
#include "io/dataset.h"
#include "io/synth.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/flags.h"

namespace shardrec::cli {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int RunConvert(const std::vector<std::string>&) {
  if (FLAGS_format.empty()) Fail("--format is required (movielens, seq or csv)");
  if (FLAGS_input.empty()) Fail("--input is required");
  if (FLAGS_output.empty()) Fail("--output is required");
  ConvertOptions o;
  o.format = FLAGS_format;
  o.seq_layout = FLAGS_seq_layout;
  o.columns = FLAGS_columns;
  if (!FLAGS_delimiter.empty()) {
    if (FLAGS_delimiter == "tab" || FLAGS_delimiter == "\\t") {
      o.delimiter = '\t';
    } else if (FLAGS_delimiter.size() == 1) {
      o.delimiter = FLAGS_delimiter[0];
    } else {
      Fail("--delimiter: expected one character or 'tab', got ", Quote(FLAGS_delimiter));
    }
  }
  if (!FLAGS_min_rating.empty()) {
    auto r = ParseDouble(FLAGS_min_rating);
    if (!r) Fail("--min-rating: expected a number, got ", Quote(FLAGS_min_rating));
    o.min_rating = *r;
  }
  o.min_user_events = FLAGS_min_user_events;
  o.min_item_events = FLAGS_min_item_events;
  o.dedup = FLAGS_dedup;
  o.items_file = FLAGS_items;
  for (auto [flag, value, out] : {std::tuple{"since", &FLAGS_since, &o.since}, std::tuple{"until", &FLAGS_until, &o.until}}) {
    if (value->empty()) continue;
    *out = ParseInt64(*value);
    if (!*out) Fail("--", flag, ": expected a Unix time in seconds, got ", Quote(*value));
  }
  auto start = Clock::now();
  ConvertReport r = ConvertToDataset(FLAGS_input, FLAGS_output, o);
  double secs = Seconds(start);
  std::printf("read %s: %lld events\n", r.detected.c_str(), static_cast<long long>(r.input_events));
  if (o.since || o.until) std::printf("dropped by --since/--until: %lld\n", static_cast<long long>(r.dropped_by_time));
  if (o.min_rating) std::printf("dropped by --min-rating: %lld\n", static_cast<long long>(r.dropped_by_rating));
  if (o.dedup) std::printf("dropped duplicates: %lld\n", static_cast<long long>(r.dropped_duplicates));
  if (o.min_user_events > 0 || o.min_item_events > 0) {
    std::printf("dropped by k-core: %lld (%d rounds)\n", static_cast<long long>(r.dropped_by_kcore),
                r.kcore_rounds);
  }
  std::printf("wrote %s: %lld users, %lld items (%lld without events), %lld events in %.2f s (%.0f events/s)\n",
              FLAGS_output.c_str(), static_cast<long long>(r.info.num_users),
              static_cast<long long>(r.info.num_items), static_cast<long long>(r.items_without_events),
              static_cast<long long>(r.info.num_events), secs, r.input_events / std::max(secs, 1e-9));
  return 0;
}

int RunStats(const std::vector<std::string>& pos) {
  PrintStats(pos[0], FLAGS_json);
  return 0;
}

// --days: the world into a temporary file beside the days, then one file per day.
int RunSynthDays(const SynthOptions& o) {
  const std::string dir = FLAGS_output, world = FLAGS_output + "/.world.h5";
  if (PathExists(dir) && !IsDirectory(dir)) Fail("--output ", dir, ": with --days it names a directory, and this is a file");
  MakeDirs(dir);
  GenerateSynthetic(world, o);
  ProgressDone();
  SynthDaysOptions d{.days = FLAGS_days, .first_day_share = FLAGS_first_day_share, .new_items = FLAGS_new_items,
                     .retired_items = FLAGS_retired_items, .seed = o.seed};
  std::vector<SynthDay> days;
  try {
    days = WriteSyntheticDays(world, dir, d);
  } catch (...) {
    RemoveAll(world);
    throw;
  }
  RemoveAll(world);
  for (const auto& day : days) {
    std::printf("wrote %s: %lld users, %lld items, %lld events (new items %lld, retired items %lld, new users %lld)\n",
                day.path.c_str(), static_cast<long long>(day.info.num_users), static_cast<long long>(day.info.num_items),
                static_cast<long long>(day.info.num_events), static_cast<long long>(day.new_items),
                static_cast<long long>(day.retired_items), static_cast<long long>(day.new_users));
  }
  return 0;
}

int RunSynth(const std::vector<std::string>&) {
  if (FLAGS_output.empty()) Fail("--output is required");
  SynthOptions o = SynthOptionsFromFlags();
  auto start = Clock::now();
  if (FLAGS_days < 0) Fail("--days: expected 0 (one file) or more, got ", FLAGS_days);
  if (FLAGS_days > 0) return RunSynthDays(o);
  SynthReport r = GenerateSynthetic(FLAGS_output, o);
  ProgressDone();
  double secs = Seconds(start);
  std::printf("wrote %s: %lld users, %lld items, %lld events in %.2f s (%.0f events/s)\n",
              FLAGS_output.c_str(), static_cast<long long>(r.info.num_users),
              static_cast<long long>(r.info.num_items), static_cast<long long>(r.info.num_events), secs,
              r.info.num_events / std::max(secs, 1e-9));
  std::printf("%s\n", OracleLine(r).c_str());
  return 0;
}

Registrar convert_cmd({
    .name = "data convert",
    .summary = "convert MovieLens, sequence or CSV files into a ShardRec dataset (HDF5)",
    .usage = "shardrec data convert --format movielens|seq|csv --input PATH --output FILE.h5 [flags]",
    .flags = {"format", "input", "output", "seq_layout", "columns", "delimiter", "min_rating",
              "min_user_events", "min_item_events", "dedup", "since", "until", "items"},
    .positional = 0,
    .run = RunConvert,
});
Registrar stats_cmd({
    .name = "data stats",
    .summary = "print counts and distributions of a dataset file",
    .usage = "shardrec data stats FILE.h5 [--json]",
    .flags = {"json"},
    .positional = 1,
    .run = RunStats,
});
Registrar synth_cmd({
    .name = "data synth",
    .summary = "generate the built-in synthetic dataset (planted structure + its oracle)",
    .usage = "shardrec data synth --output FILE.h5 [--users N --items N --events N --seed S ...]\n"
             "       shardrec data synth --output DIR --days D [--new-items P --retired-items P --first-day-share S ...]",
    .flags = {"output", "users", "items", "events", "seed", "topics", "categories", "content_dim",
              "zipf", "stay", "transition", "successors", "titles", "days", "first_day_share", "new_items",
              "retired_items"},
    .positional = 0,
    .run = RunSynth,
});

}  // namespace

SynthOptions SynthOptionsFromFlags() {
  SynthOptions o;
  if (!FLAGS_users.empty()) {
    const auto users = ParseInt64(FLAGS_users);
    if (!users) Fail("--users: expected a number of users, got '", FLAGS_users, "'");
    o.users = *users;
  }
  if (!FLAGS_items.empty()) {
    const auto items = ParseInt64(FLAGS_items);
    if (!items) Fail("--items: expected a number of items, got '", FLAGS_items, "'");
    o.items = *items;
  }
  o.events = FLAGS_events;
  o.seed = FLAGS_seed;
  o.topics = FLAGS_topics;
  o.categories = FLAGS_categories;
  o.content_dim = FLAGS_content_dim;
  o.zipf = FLAGS_zipf;
  o.stay = FLAGS_stay;
  o.transition = FLAGS_transition;
  o.successors = FLAGS_successors;
  o.titles = FLAGS_titles;
  const int64_t total_users = o.users;
  auto start = std::make_shared<Clock::time_point>(Clock::now());
  auto last = std::make_shared<Clock::time_point>(Clock::now());
  o.progress = [total_users, start, last](int64_t users, int64_t events) {
    if (Seconds(*last) < 2.0 || users == 0) return;
    *last = Clock::now();
    double secs = Seconds(*start);
    double eta = secs * (total_users - users) / users;
    char buf[160];
    std::snprintf(buf, sizeof(buf), "synth: %lld/%lld users, %lld events, %.0f events/s, ETA %.0f s",
                  static_cast<long long>(users), static_cast<long long>(total_users),
                  static_cast<long long>(events), events / secs, eta);
    Progress(buf);
  };
  return o;
}

std::string OracleLine(const SynthReport& r) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "oracle (generator's own ranking, %lld test users): HR@10 %.4f NDCG@10 %.4f; "
                "popularity: HR@10 %.4f NDCG@10 %.4f",
                static_cast<long long>(r.test_users), r.oracle_hr10, r.oracle_ndcg10,
                r.popularity_hr10, r.popularity_ndcg10);
  return buf;
}

void PrintStats(const std::string& path, bool json) {
  auto ds = Dataset::Open(path);
  const DatasetInfo& info = ds->info();
  std::vector<int64_t> len(static_cast<size_t>(info.num_users));
  for (int64_t u = 0; u < info.num_users; ++u) len[u] = ds->user_length(u);
  std::sort(len.begin(), len.end());
  const int64_t mn = len.empty() ? 0 : len.front();
  const int64_t mx = len.empty() ? 0 : len.back();
  const double median = len.empty() ? 0
                        : len.size() % 2 ? double(len[len.size() / 2])
                                         : 0.5 * (len[len.size() / 2 - 1] + len[len.size() / 2]);
  const double mean = info.num_users ? double(info.num_events) / info.num_users : 0;
  const int64_t with_content = ds->CountItemsWithContent();
  const int64_t loo_users = std::count_if(len.begin(), len.end(), [](int64_t n) { return n >= 3; });
  // Items no event mentions (catalogue items kept by the converter, or held out): recall can reach
  // them only through their content.
  std::vector<uint8_t> seen(static_cast<size_t>(info.num_items), 0);
  for (int64_t b = 0; b < info.num_events; b += int64_t{1} << 22) {
    for (int32_t it : ds->ReadItems(b, std::min(info.num_events, b + (int64_t{1} << 22)))) seen[static_cast<size_t>(it)] = 1;
  }
  const int64_t without_events = info.num_items - std::count(seen.begin(), seen.end(), uint8_t{1});
  auto oracle = ds->NumericAttributes("/oracle");
  if (json) {
    JsonObject per_user;
    per_user.Add("min", mn).Add("median", median).Add("max", mx).Add("mean", mean);
    JsonObject o;
    o.Add("file", path)
        .Add("format_version", info.format_version)
        .Add("users", info.num_users)
        .Add("items", info.num_items)
        .Add("items_without_events", without_events)
        .Add("events", info.num_events)
        .Add("events_per_user", per_user)
        .Add("users_with_test_event", loo_users)
        .Add("has_timestamps", info.has_timestamps)
        .Add("has_titles", info.has_titles)
        .Add("num_categories", info.num_categories)
        .Add("content_dim", info.content_dim)
        .Add("items_with_content", with_content)
        .Add("source", info.source);
    if (!oracle.empty()) {
      JsonObject oj;
      for (const auto& [k, v] : oracle) oj.Add(k, v);
      o.Add("oracle", oj);
    }
    std::cout << o.str() << "\n";
    return;
  }
  std::printf("%-22s %s\n", "file", path.c_str());
  std::printf("%-22s %lld\n", "format_version", static_cast<long long>(info.format_version));
  std::printf("%-22s %s\n", "source", info.source.c_str());
  std::printf("%-22s %lld\n", "users", static_cast<long long>(info.num_users));
  std::printf("%-22s %lld (%lld without events)\n", "items", static_cast<long long>(info.num_items),
              static_cast<long long>(without_events));
  std::printf("%-22s %lld\n", "events", static_cast<long long>(info.num_events));
  std::printf("%-22s min %lld, median %.1f, max %lld, mean %.2f\n", "events per user",
              static_cast<long long>(mn), median, static_cast<long long>(mx), mean);
  std::printf("%-22s %lld (users with >= 3 events)\n", "leave-one-out users",
              static_cast<long long>(loo_users));
  std::printf("%-22s %s\n", "timestamps", info.has_timestamps ? "yes" : "no");
  std::printf("%-22s %s\n", "titles", info.has_titles ? "yes" : "no");
  std::printf("%-22s %lld\n", "categories", static_cast<long long>(info.num_categories));
  std::printf("%-22s %lld\n", "content dim", static_cast<long long>(info.content_dim));
  std::printf("%-22s %lld (title or content vector)\n", "items with content",
              static_cast<long long>(with_content));
  if (!oracle.empty()) {
    std::printf("%-22s HR@10 %.4f, NDCG@10 %.4f (popularity HR@10 %.4f, NDCG@10 %.4f)\n",
                "oracle (synthetic)", oracle["hr@10"], oracle["ndcg@10"], oracle["popularity_hr@10"],
                oracle["popularity_ndcg@10"]);
  }
}

}  // namespace shardrec::cli
