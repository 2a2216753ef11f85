#include "io/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::TempDir;

SynthOptions Small() {
  SynthOptions o;
  o.users = 2000;
  o.items = 1000;
  o.events = 30000;
  o.seed = 11;
  return o;
}

TEST(Synth, SameSeedGivesIdenticalFile) {
  TempDir dir;
  GenerateSynthetic(dir.File("a.h5"), Small());
  GenerateSynthetic(dir.File("b.h5"), Small());
  EXPECT_EQ(ReadFileToString(dir.File("a.h5")), ReadFileToString(dir.File("b.h5")));
  SynthOptions other = Small();
  other.seed = 12;
  GenerateSynthetic(dir.File("c.h5"), other);
  EXPECT_NE(ReadFileToString(dir.File("a.h5")), ReadFileToString(dir.File("c.h5")));
}

TEST(Synth, CountsShapeAndNoRepeats) {
  TempDir dir;
  SynthReport r = GenerateSynthetic(dir.File("s.h5"), Small());
  auto ds = Dataset::Open(dir.File("s.h5"));
  const DatasetInfo& info = ds->info();
  EXPECT_EQ(info.num_users, 2000);
  EXPECT_EQ(info.num_items, 1000);
  EXPECT_EQ(info.num_events, 30000);  // exactly --events
  EXPECT_TRUE(info.has_timestamps);
  EXPECT_TRUE(info.has_titles);
  EXPECT_EQ(info.num_categories, 16);
  EXPECT_EQ(info.content_dim, 16);
  const auto& off = ds->user_offsets();
  auto items = ds->ReadItems(0, info.num_events);
  auto ts = ds->ReadTimestamps(0, info.num_events);
  for (int64_t u = 0; u < info.num_users; ++u) {
    ASSERT_GE(off[u + 1] - off[u], 3) << "user " << u;
    std::set<int32_t> seen(items.begin() + off[u], items.begin() + off[u + 1]);
    EXPECT_EQ(static_cast<int64_t>(seen.size()), off[u + 1] - off[u]) << "repeat in user " << u;
    for (int64_t k = off[u] + 1; k < off[u + 1]; ++k) ASSERT_GT(ts[k], ts[k - 1]);
  }
  // Zipf popularity (capped by "no repeats within a user"): a long tail, the top 10% of items
  // hold well over 10% of the events and the top item is far above the median one.
  std::vector<int64_t> counts(1000, 0);
  for (int32_t it : items) ++counts[it];
  std::sort(counts.rbegin(), counts.rend());
  EXPECT_GT(counts[0], 4 * std::max<int64_t>(1, counts[500]));
  int64_t top = 0;
  for (int k = 0; k < 100; ++k) top += counts[k];
  EXPECT_GT(static_cast<double>(top) / info.num_events, 0.2);  // uniform would be 0.1
  EXPECT_EQ(r.test_users, 2000);
}

TEST(Synth, OracleFarAbovePopularityAndStored) {
  TempDir dir;
  SynthReport r = GenerateSynthetic(dir.File("s.h5"), Small());
  EXPECT_GT(r.oracle_hr10, 0.3);
  EXPECT_GT(r.oracle_hr10, 5 * r.popularity_hr10);
  EXPECT_GT(r.oracle_ndcg10, 5 * r.popularity_ndcg10);
  EXPECT_LE(r.oracle_ndcg10, r.oracle_hr10);
  auto attrs = Dataset::Open(dir.File("s.h5"))->NumericAttributes("/oracle");
  EXPECT_DOUBLE_EQ(attrs.at("hr@10"), r.oracle_hr10);
  EXPECT_DOUBLE_EQ(attrs.at("popularity_ndcg@10"), r.popularity_ndcg10);
}

TEST(Synth, WithoutStructureOracleFallsToPopularityLevel) {
  // One topic, no transitions: nothing but popularity is left to learn, so the oracle's edge
  // over popularity must vanish. Guards against an oracle that peeks at the target.
  TempDir dir;
  SynthOptions o = Small();
  o.topics = 1;
  o.transition = 0.0;
  SynthReport r = GenerateSynthetic(dir.File("s.h5"), o);
  EXPECT_NEAR(r.oracle_hr10, r.popularity_hr10, 0.02);
}

TEST(Synth, ContentCarriesTopicSignal) {
  // Items sharing the most frequent successor relation are close in content space: check that
  // the average cosine of consecutive events (mostly same topic) beats random pairs.
  TempDir dir;
  GenerateSynthetic(dir.File("s.h5"), Small());
  auto ds = Dataset::Open(dir.File("s.h5"));
  const int64_t d = ds->info().content_dim;
  auto content = ds->ReadItemContent(0, ds->info().num_items);
  auto items = ds->ReadItems(0, ds->info().num_events);
  auto cosine = [&](int32_t a, int32_t b) {
    double dot = 0, na = 0, nb = 0;
    for (int64_t k = 0; k < d; ++k) {
      dot += content[a * d + k] * content[b * d + k];
      na += content[a * d + k] * content[a * d + k];
      nb += content[b * d + k] * content[b * d + k];
    }
    return dot / std::sqrt(na * nb);
  };
  const auto& off = ds->user_offsets();
  double consecutive = 0, random = 0;
  int64_t n = 0;
  for (int64_t u = 0; u < ds->info().num_users; ++u) {
    for (int64_t k = off[u] + 1; k < off[u + 1]; ++k) {
      consecutive += cosine(items[k - 1], items[k]);
      random += cosine(items[k], items[(k * 7919) % items.size()]);
      ++n;
    }
  }
  EXPECT_GT(consecutive / n, random / n + 0.3);
}

// --drift: by the items' topics (the generator's own, an oracle the data does not show), no event
// before the shift time is of a fresh topic, the users with a fresh-topic event are exactly those it
// reports as moved, about the share asked of those with events after the shift, and each moves at
// its first event after the shift; without --drift there is no /drift group.
TEST(Synth, DriftMovesAShareOfUsersToFreshTopicsAfterTheShiftOnly) {
  TempDir dir;
  SynthOptions o = Small();
  o.topics = 16;
  o.drift = 0.4;
  const SynthReport r = GenerateSynthetic(dir.File("d.h5"), o);
  const std::vector<int32_t> topic = SyntheticItemTopics(o);
  const int fresh_from = 16 - 2;
  auto ds = Dataset::Open(dir.File("d.h5"));
  const auto attrs = ds->NumericAttributes("/drift");
  EXPECT_EQ(attrs.at("share"), 0.4);
  EXPECT_EQ(static_cast<int64_t>(attrs.at("time")), r.drift_time);
  const auto raw = ds->ReadItemRawIds(0, r.info.num_items);
  for (int64_t i = 0; i < r.info.num_items; ++i) ASSERT_EQ(raw[i], std::to_string(i + 1));  // dense i is item i
  int64_t with_fresh = 0, eligible = 0, fresh_after = 0, events_after = 0;
  for (int64_t u = 0; u < r.info.num_users; ++u) {
    const int64_t b = ds->user_offsets()[u], e = ds->user_offsets()[u + 1];
    const auto items = ds->ReadItems(b, e);
    const auto ts = ds->ReadTimestamps(b, e);
    bool any_fresh = false, later = false;
    for (size_t k = 0; k < items.size(); ++k) {
      const bool fresh = topic[items[k]] >= fresh_from;
      if (ts[k] <= r.drift_time) {
        ASSERT_FALSE(fresh) << "user " << u << " event " << k << " before the shift";
      }
      if (k > 0 && ts[k - 1] > r.drift_time) later = true;
      if (fresh) {
        // Its first fresh event is its first event after the shift (the one whose previous event is past it).
        if (!any_fresh) {
          ASSERT_TRUE(k > 0 && ts[k - 1] > r.drift_time && (k < 2 || ts[k - 2] <= r.drift_time)) << "user " << u;
        }
        any_fresh = true;
      }
      if (ts[k] > r.drift_time) {
        ++events_after;
        fresh_after += fresh;
      }
    }
    with_fresh += any_fresh;
    eligible += later;
  }
  EXPECT_EQ(with_fresh, r.drifted_users);
  EXPECT_EQ(attrs.at("moved_users"), static_cast<double>(r.drifted_users));
  EXPECT_EQ(attrs.at("fresh_topics"), 2.0);
  int64_t before = 0;  // the shift closes the hour in which 80% of the events had happened
  for (int64_t t : ds->ReadTimestamps(0, r.info.num_events)) before += t <= r.drift_time;
  EXPECT_GE(before, r.info.num_events * 8 / 10);
  EXPECT_LE(before, r.info.num_events * 8 / 10 + r.info.num_events / 50);
  ASSERT_GT(eligible, 100);
  const double share = static_cast<double>(with_fresh) / static_cast<double>(eligible);
  EXPECT_NEAR(share, 0.4, 4 * std::sqrt(0.4 * 0.6 / static_cast<double>(eligible)));
  EXPECT_GT(fresh_after, events_after / 5);  // the shift shows in the events after it
  // Options the drift cannot honour are refused (here: old topics too small for the longest sequence).
  SynthOptions bare = Small();
  bare.items = 10, bare.topics = 2, bare.users = 3, bare.events = 9, bare.drift = 0.5;
  testing::ExpectUserError([&] { GenerateSynthetic(dir.File("x.h5"), bare); }, {"--drift", "old topics hold"});
  std::printf("drift 0.4: %lld of %lld users with events after the shift moved; %lld of %lld events after it fresh\n",
              static_cast<long long>(with_fresh), static_cast<long long>(eligible), static_cast<long long>(fresh_after),
              static_cast<long long>(events_after));
  // Without drift: no /drift group.
  SynthOptions none = Small();
  none.topics = 16;
  GenerateSynthetic(dir.File("n.h5"), none);
  EXPECT_TRUE(Dataset::Open(dir.File("n.h5"))->NumericAttributes("/drift").empty());
}

TEST(Synth, BadOptionsAreUserErrors) {
  TempDir dir;
  SynthOptions o = Small();
  o.events = 100;  // < 3 per user
  testing::ExpectUserError([&] { GenerateSynthetic(dir.File("s.h5"), o); }, {"--events", "at least 3"});
  o = Small();
  o.stay = 1.5;
  testing::ExpectUserError([&] { GenerateSynthetic(dir.File("s.h5"), o); }, {"--stay"});
  EXPECT_FALSE(PathExists(dir.File("s.h5")));
}


// Day files: raw ids keep their meaning across days (a user's day-d history is a prefix of its
// day-(d+1) history, minus retired items), items arrive and retire at the configured rates, and
// the same seed gives the same files.
TEST(SynthDays, DaysGrowKeepRawIdsAndRetireItems) {
  TempDir dir;
  GenerateSynthetic(dir.File("world.h5"), Small());
  SynthDaysOptions o;
  o.days = 3;
  o.new_items = 0.1;
  o.retired_items = 0.05;
  const auto days = WriteSyntheticDays(dir.File("world.h5"), dir.File("d"), o);
  ASSERT_EQ(days.size(), 3u);
  std::vector<std::map<std::string, std::vector<std::pair<std::string, int64_t>>>> histories;
  std::vector<std::set<std::string>> item_sets;
  for (const auto& day : days) {
    auto ds = Dataset::Open(day.path);
    const auto items = ds->ReadItemRawIds(0, ds->info().num_items);
    const auto users = ds->ReadUserRawIds(0, ds->info().num_users);
    const auto ev = ds->ReadItems(0, ds->info().num_events);
    const auto ts = ds->ReadTimestamps(0, ds->info().num_events);
    histories.emplace_back();
    for (int64_t u = 0; u < ds->info().num_users; ++u) {
      auto& h = histories.back()[users[u]];
      for (int64_t e = ds->user_offsets()[u]; e < ds->user_offsets()[u + 1]; ++e) h.emplace_back(items[ev[e]], ts[e]);
      EXPECT_GE(h.size(), 3u);
    }
    item_sets.emplace_back(items.begin(), items.end());
    EXPECT_EQ(ds->info().has_categories, true);
    EXPECT_GT(ds->info().content_dim, 0);
  }
  auto world = Dataset::Open(dir.File("world.h5"));
  EXPECT_LT(days[0].info.num_events, days[1].info.num_events);
  EXPECT_LE(days[2].info.num_users, world->info().num_users);
  EXPECT_GT(days[1].info.num_users, days[0].info.num_users);
  for (size_t d = 1; d < days.size(); ++d) {
    SCOPED_TRACE("day " + std::to_string(d + 1));
    // Rates: ~10% of the world's items arrive and ~5% retire per day (binomial spread).
    EXPECT_GT(days[d].new_items, 5);  // arrivals with events today (and items with a first event today)
    EXPECT_NEAR(days[d].retired_items, 0.05 * 1000, 40);
    EXPECT_GT(days[d].new_users, 0);
    EXPECT_GT(days[d].new_items, 0);
    // A user's history the day before, without items retired since, is the start of today's.
    int compared = 0;
    for (const auto& [user, before] : histories[d - 1]) {
      auto it = histories[d].find(user);
      if (it == histories[d].end()) continue;
      std::vector<std::pair<std::string, int64_t>> kept;
      for (const auto& e : before) {
        if (item_sets[d].count(e.first)) kept.push_back(e);
      }
      ASSERT_LE(kept.size(), it->second.size()) << user;
      EXPECT_TRUE(std::equal(kept.begin(), kept.end(), it->second.begin())) << user;
      ++compared;
    }
    EXPECT_GT(compared, 500);
  }
  // Reproducible.
  WriteSyntheticDays(dir.File("world.h5"), dir.File("again"), o);
  EXPECT_EQ(ReadFileToString(dir.File("d/day-2.h5")), ReadFileToString(dir.File("again/day-2.h5")));
  o.new_items = 1.5;
  testing::ExpectUserError([&] { WriteSyntheticDays(dir.File("world.h5"), dir.File("bad"), o); }, {"--new-items"});
}

}  // namespace
}  // namespace shardrec
