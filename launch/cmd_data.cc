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
#include "io/dataset_stats.h"
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
  o.format = FLAGS_format, o.seq_layout = FLAGS_seq_layout, o.columns = FLAGS_columns;
  if (!FLAGS_delimiter.empty()) {
    if (FLAGS_delimiter.size() != 1 && FLAGS_delimiter != "tab" && FLAGS_delimiter != "\\t") {
      Fail("--delimiter: expected one character or 'tab', got ", Quote(FLAGS_delimiter));
    }
    o.delimiter = FLAGS_delimiter.size() == 1 ? FLAGS_delimiter[0] : '\t';
  }
  if (!FLAGS_min_rating.empty()) {
    auto r = ParseDouble(FLAGS_min_rating);
    if (!r) Fail("--min-rating: expected a number, got ", Quote(FLAGS_min_rating));
    o.min_rating = *r;
  }
  o.min_user_events = FLAGS_min_user_events, o.min_item_events = FLAGS_min_item_events;
  o.dedup = FLAGS_dedup, o.items_file = FLAGS_items;
  for (auto [flag, value, out] : {std::tuple{"since", &FLAGS_since, &o.since}, std::tuple{"until", &FLAGS_until, &o.until}}) {
    if (value->empty()) continue;
    *out = ParseInt64(*value);
    if (!*out) Fail("--", flag, ": expected a Unix time in seconds, got ", Quote(*value));
  }
  auto start = Clock::now();
  ConvertReport r = ConvertToDataset(FLAGS_input, FLAGS_output, o);
  std::printf("%s", ConvertReportText(r, o, FLAGS_output, Seconds(start)).c_str());
  return 0;
}

int RunStats(const std::vector<std::string>& pos) {
  PrintStats(pos[0], FLAGS_json);
  return 0;
}

// --days: one file per day, cut from one synthetic world.
int RunSynthDays(const SynthOptions& o) {
  SynthDaysOptions d{.days = FLAGS_days, .first_day_share = FLAGS_first_day_share, .new_items = FLAGS_new_items,
                     .retired_items = FLAGS_retired_items, .seed = o.seed};
  const std::vector<SynthDay> days = GenerateSyntheticDays(FLAGS_output, o, d);
  ProgressDone();
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
  if (o.drift > 0) std::printf("drift: %lld users moved to fresh topics at %lld\n", static_cast<long long>(r.drifted_users), static_cast<long long>(r.drift_time));
  return 0;
}

Registrar convert_cmd({
    .name = "data convert",
    .summary = "convert MovieLens, sequence or CSV files, or an event log, into a ShardRec dataset (HDF5)",
    .usage = "shardrec data convert --format movielens|seq|csv|events --input PATH --output FILE.h5 [flags]",
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
              "zipf", "stay", "transition", "successors", "titles", "drift", "time_scale", "days", "first_day_share", "new_items",
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
  o.topics = FLAGS_topics, o.categories = FLAGS_categories, o.content_dim = FLAGS_content_dim, o.zipf = FLAGS_zipf;
  o.stay = FLAGS_stay, o.transition = FLAGS_transition, o.successors = FLAGS_successors, o.titles = FLAGS_titles;
  o.drift = FLAGS_drift, o.time_scale = FLAGS_time_scale;
  auto meter = std::make_shared<ProgressMeter>("synth", "users", "events", /*every_seconds=*/2.0);
  o.progress = [meter, total = o.users](int64_t users, int64_t events) { meter->Update(users, total, events); };
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
  const DatasetStats s = ComputeDatasetStats(*Dataset::Open(path));
  if (json) {
    std::cout << DatasetStatsJson(path, s) << "\n";
    return;
  }
  const DatasetInfo& info = s.info;
  auto count = [](const char* name, int64_t n, const char* note = "") {
    std::printf("%-22s %lld%s\n", name, static_cast<long long>(n), note);
  };
  std::printf("%-22s %s\n", "file", path.c_str());
  count("format_version", info.format_version);
  std::printf("%-22s %s\n", "source", info.source.c_str());
  count("users", info.num_users);
  std::printf("%-22s %lld (%lld without events)\n", "items", static_cast<long long>(info.num_items),
              static_cast<long long>(s.items_without_events));
  count("events", info.num_events);
  std::printf("%-22s min %lld, median %.1f, max %lld, mean %.2f\n", "events per user", static_cast<long long>(s.min_events),
              s.median_events, static_cast<long long>(s.max_events), s.mean_events);
  count("leave-one-out users", s.test_users, " (users with >= 3 events)");
  std::printf("%-22s %s\n%-22s %s\n", "timestamps", info.has_timestamps ? "yes" : "no", "titles", info.has_titles ? "yes" : "no");
  count("categories", info.num_categories);
  count("content dim", info.content_dim);
  count("items with content", s.items_with_content, " (title or content vector)");
  if (!s.oracle.empty()) {
    auto o = [&](const char* k) { return s.oracle.count(k) ? s.oracle.at(k) : 0.0; };
    std::printf("%-22s HR@10 %.4f, NDCG@10 %.4f (popularity HR@10 %.4f, NDCG@10 %.4f)\n", "oracle (synthetic)", o("hr@10"),
                o("ndcg@10"), o("popularity_hr@10"), o("popularity_ndcg@10"));
  }
}

}  // namespace shardrec::cli
