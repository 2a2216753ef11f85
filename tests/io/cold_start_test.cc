#include "io/cold_start.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "io/reader.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::ExpectUserError;
using testing::TempDir;

struct Seq {
  std::string user;
  std::vector<int32_t> items;
};

std::string Write(const TempDir& dir, const std::string& name, int64_t items, const std::vector<Seq>& users) {
  const std::string path = dir.File(name);
  DatasetWriterOptions o;
  o.timestamps = true;
  o.titles = true;
  o.categories = true;
  o.content_dim = 2;
  o.source = "test";
  auto w = DatasetWriter::Create(path, o);
  for (const Seq& s : users) {
    std::vector<int64_t> ts;
    for (size_t k = 0; k < s.items.size(); ++k) ts.push_back(100 + static_cast<int64_t>(k));
    w->AddUser(s.user, s.items, ts);
  }
  w->SetCategoryNames({"a", "b"});
  for (int64_t i = 0; i < items; ++i) {
    w->AddItem("i" + std::to_string(i), "title " + std::to_string(i), std::vector<int32_t>{static_cast<int32_t>(i % 2)},
               std::vector<float>{static_cast<float>(i), 1.0f});
  }
  w->Finish();
  return path;
}

// Every user's events (items, timestamps) by raw id.
std::map<std::string, std::pair<std::vector<int32_t>, std::vector<int64_t>>> Events(const Dataset& ds) {
  std::map<std::string, std::pair<std::vector<int32_t>, std::vector<int64_t>>> out;
  const auto raw = ds.ReadUserRawIds(0, ds.info().num_users);
  for (int64_t u = 0; u < ds.info().num_users; ++u) {
    const int64_t b = ds.user_offsets()[u], e = ds.user_offsets()[u + 1];
    out[raw[u]] = {ds.ReadItems(b, e), ds.ReadTimestamps(b, e)};
  }
  return out;
}

// A hand-worked example: cold items 2 and 5.
TEST(ColdStart, HistoriesLoseColdItemsTargetsStayUsersWithoutHistoryGo) {
  TempDir dir;
  const std::string src = Write(dir, "src.h5", 6,
                                {{"u0", {0, 1, 2, 3, 4}},  // train 0 1 2, valid 3, test 4 -> 0 1 | 3 4
                                 {"u1", {1, 1}},           // train only -> unchanged
                                 {"u2", {2, 4, 5}},        // train 2 (cold): dropped
                                 {"u3", {0, 2}},           // train only -> 0
                                 {"u4", {2, 2, 0, 1}},     // train 2 2 (cold): dropped
                                 {"u5", {0, 1, 5}},        // train 0, valid 1, test 5 (a cold target)
                                 {"u6", {0, 1, 2, 3}}});   // train 0 1, valid 2 (cold: kept), test 3
  auto ds = Dataset::Open(src);
  ColdItems cold;
  cold.fraction = 0.3;
  cold.seed = 9;
  cold.cold = {0, 0, 1, 0, 0, 1};
  cold.num_cold = 2;
  const std::string out = dir.File("cold.h5");
  const ColdStartReport r = WriteColdStartDataset(*ds, cold, out);
  EXPECT_EQ(r.users, 5);
  EXPECT_EQ(r.dropped_users, 2);
  EXPECT_EQ(r.removed_events, 5);  // u0 1, u2 1, u3 1, u4 2
  EXPECT_EQ(r.cold_targets, 1);
  auto got = Dataset::Open(out);
  auto ev = Events(*got);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev["u0"].first, (std::vector<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(ev["u0"].second, (std::vector<int64_t>{100, 101, 103, 104}));
  EXPECT_EQ(ev["u1"].first, (std::vector<int32_t>{1, 1}));
  EXPECT_EQ(ev["u3"].first, (std::vector<int32_t>{0}));
  EXPECT_EQ(ev["u5"].first, (std::vector<int32_t>{0, 1, 5}));
  EXPECT_EQ(ev["u6"].first, (std::vector<int32_t>{0, 1, 2, 3}));  // a held-out event is never removed
  // The catalogue is the source's: the same id space, titles, categories and content.
  EXPECT_EQ(got->ItemIdsFingerprint(), ds->ItemIdsFingerprint());
  EXPECT_EQ(got->ReadItemTitles(0, 6), ds->ReadItemTitles(0, 6));
  EXPECT_EQ(got->ReadItemContent(0, 6), ds->ReadItemContent(0, 6));
  EXPECT_EQ(got->ReadItemCategories(0, 6).values, ds->ReadItemCategories(0, 6).values);
  EXPECT_TRUE(IsColdStartDatasetOf(out, *ds, 0.3, 9));
  EXPECT_FALSE(IsColdStartDatasetOf(out, *ds, 0.3, 10));
  EXPECT_FALSE(IsColdStartDatasetOf(out, *ds, 0.2, 9));
  EXPECT_FALSE(IsColdStartDatasetOf(dir.File("absent.h5"), *ds, 0.3, 9));
  // No training sequence of the protocol's data holds a cold item.
  SequenceReader reader(out, ReaderOptions{.split = Split::kTrain, .global_batch_size = 8, .max_len = 10});
  reader.StartEpoch(0);
  while (auto b = reader.Next()) {
    for (int64_t x : b->items) EXPECT_TRUE(x < 0 || !cold.cold[static_cast<size_t>(x)]) << x;
  }
}

TEST(ColdStart, TheChoiceIsASeededFractionOfTheItemsWithEvents) {
  TempDir dir;
  std::vector<Seq> users;
  for (int u = 0; u < 30; ++u) {
    Seq s{"u" + std::to_string(u), {}};
    for (int k = 0; k < 6; ++k) s.items.push_back(static_cast<int32_t>((u * 7 + k * 3) % 90));  // items 90..99 have none
    users.push_back(s);
  }
  const std::string src = Write(dir, "src.h5", 100, users);
  auto ds = Dataset::Open(src);
  std::vector<int64_t> counts(100, 0);
  for (const Seq& s : users) {
    for (int32_t i : s.items) ++counts[i];
  }
  int64_t with_events = 0;
  for (int64_t c : counts) with_events += c > 0;
  const ColdItems a = ChooseColdItems(*ds, 0.2, 5), b = ChooseColdItems(*ds, 0.2, 5), c = ChooseColdItems(*ds, 0.2, 6);
  EXPECT_EQ(a.event_counts, counts);
  EXPECT_EQ(a.num_cold, std::llround(0.2 * static_cast<double>(with_events)));
  EXPECT_EQ(std::count(a.cold.begin(), a.cold.end(), 1), a.num_cold);
  for (int i = 0; i < 100; ++i) {
    if (counts[i] == 0) {
      EXPECT_EQ(a.cold[i], 0) << "item " << i << " has no events";
    }
  }
  EXPECT_EQ(a.cold, b.cold);  // a function of (data, fraction, seed)
  EXPECT_NE(a.cold, c.cold);
  // Popularity ranks among the cold items: by count, ties by id; -1 for warm items.
  const std::vector<int64_t> rank = ColdPopularityRanks(a);
  std::vector<int64_t> order;
  for (int i = 0; i < 100; ++i) {
    if (a.cold[i]) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return counts[x] > counts[y] || (counts[x] == counts[y] && x < y); });
  for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(rank[order[k]], static_cast<int64_t>(k));
  for (int i = 0; i < 100; ++i) {
    if (!a.cold[i]) {
      EXPECT_EQ(rank[i], -1);
    }
  }
  ExpectUserError([&] { ChooseColdItems(*ds, 0, 1); }, {"--cold-items"});
  ExpectUserError([&] { ChooseColdItems(*ds, 1, 1); }, {"--cold-items"});
}

}  // namespace
}  // namespace shardrec
