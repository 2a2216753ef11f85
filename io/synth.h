// The built-in synthetic dataset: planted structure that a sequential model can learn and a
// popularity ranker cannot. The generative process is documented in docs/formats.md
// ("Synthetic data"); in short:
//   - items have a latent topic, a Zipf popularity, a title whose words come mostly from their
//     topic's vocabulary, categories mapped from the topic, and a content vector near the topic's
//     centroid (so content carries signal for items never seen in training);
//   - users have a sparse topic preference that drifts from a start mix to an end mix along their
//     sequence; each next event either follows a short-range transition from the previous item
//     (one of its few "successors") or draws a topic (stay with the previous item's topic, else from
//     the current preference) and then an item by popularity within that topic; no repeats;
//   - timestamps grow by exponential gaps, longer after a topic switch.
// Deterministic per seed (every user and item has its own counter-based random stream), streamed to
// disk: memory is O(items + users) small arrays, independent of the number of events.
// The generator also scores its own predictive distribution on each user's last event (the
// leave-one-out test event, earlier items excluded) and stores that oracle HR@10/NDCG@10, with a
// true-popularity baseline, under /oracle.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace shardrec {

struct SynthOptions {
  int64_t users = 10000;
  int64_t items = 5000;
  int64_t events = 0;  // total events; 0 = 20 per user. Every user gets at least 3.
  uint64_t seed = 7;
  int topics = 32;
  int categories = 16;
  double zipf = 1.0;         // item popularity exponent
  double stay = 0.8;         // P(next topic = previous item's topic) when not transitioning
  double transition = 0.3;   // P(next item is a successor of the previous item)
  int successors = 4;        // successors per item (same topic)
  int topics_per_user = 3;   // size of a user's preference mix
  double mix_drift = 0.5;    // P(a user's end mix differs from its start mix)
  // `--drift R`: after the shift time (the hour in which 80% of the events have happened), a share R
  // of users move to fresh topics (the last max(1, topics / 8), whose items nobody has seen before),
  // from their first event that follows one past the shift: drift in event time that a model frozen
  // before it cannot know (docs/formats.md, "Synthetic data"). Not with --days.
  double drift = 0;
  // Event times compressed by this factor: users start within 116 days / scale and their events
  // come a day / scale apart on average (24: a user's day of activity becomes an hour, a stream
  // dense enough for minute-level freshness to matter).
  double time_scale = 1;
  int content_dim = 16;      // 0 = no content vectors
  bool titles = true;
  // Called every few thousand users with (users done, events done); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct SynthReport {
  DatasetInfo info;
  int64_t drift_time = 0;   // with drift: the shift time (unix seconds)
  int64_t drifted_users = 0;  // users who moved (had an event following one past the shift)
  double oracle_hr10 = 0, oracle_ndcg10 = 0;          // generator's own predictive distribution
  double popularity_hr10 = 0, popularity_ndcg10 = 0;  // true global popularity
  int64_t test_users = 0;
};

// UserError naming the flag of an impossible or out-of-range option (GenerateSynthetic calls it).
void CheckSynthOptions(const SynthOptions& options);
// Writes the dataset to `output` atomically. Throws UserError on impossible options.
SynthReport GenerateSynthetic(const std::string& output, const SynthOptions& options);

// The planted successors of every item (item i is the one with raw id i + 1), as the generator
// with these options draws them: for tests that check what a model learned.
std::vector<std::vector<int32_t>> SyntheticSuccessors(const SynthOptions& options);
// Every item's topic (item i has raw id i + 1); with drift the fresh topics are the last
// max(1, topics / 8). For tests.
std::vector<int32_t> SyntheticItemTopics(const SynthOptions& options);

}  // namespace shardrec

namespace shardrec {

// A multi-day scenario cut from one generated dataset (the "world"): day d's file holds what was
// known at the end of day d, so nightly retraining can be run and tested reproducibly.
//   - Time: day 1 ends when `first_day_share` of the world's events have happened; days 2 .. D
//     each add an equal share of the rest. Day d keeps the events before its end: histories grow, users whose first
//     event comes later appear on later days.
//   - New items: each item arrives on day 1, or on day 2 .. D with probability `new_items` per day
//     (drawn from its own seeded stream, across the whole popularity range, so popularity shifts as
//     they arrive); its events before its arrival day are dropped.
//   - Retired items: from day 2 on, each item retires on a given day with probability
//     `retired_items` per day (if it arrived before); from then on it and every event of it are gone.
//   - A day keeps users with at least 3 events and the items that still have events.
// Raw ids are the world's, so the same user or item has the same raw id on every day, while its
// dense id may differ (datasets number ids in raw-id order).
struct SynthDaysOptions {
  int days = 3;
  double first_day_share = 0.7;
  double new_items = 0.05;
  double retired_items = 0.02;
  uint64_t seed = 7;
};

struct SynthDay {
  std::string path;
  DatasetInfo info;
  int64_t new_items = 0;      // items on this day that were not on the day before
  int64_t retired_items = 0;  // items of the day before that are not on this day
  int64_t new_users = 0;      // users on this day that were not on the day before
};

// Reads `world` (a dataset with timestamps) and writes `dir`/day-1.h5 ... day-D.h5, each atomically.
// Throws UserError on bad options or a world without timestamps.
std::vector<SynthDay> WriteSyntheticDays(const std::string& world, const std::string& dir, const SynthDaysOptions& options);
// UserError naming the flag of an out-of-range day option (WriteSyntheticDays calls it).
void CheckSynthDaysOptions(const SynthDaysOptions& options);
// `shardrec data synth --days`: generates the world (`synth`) into a temporary file in `dir` (made if
// needed; a file there is a UserError), cuts it into the days and removes the world, also on failure.
std::vector<SynthDay> GenerateSyntheticDays(const std::string& dir, const SynthOptions& synth, const SynthDaysOptions& days);

}  // namespace shardrec
