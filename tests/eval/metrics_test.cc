#include "eval/metrics.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "distributed/inprocess.h"

namespace shardrec {
namespace {

TEST(RankTargets, CountsHigherScoresTiesByIdAndExclusions) {
  // 6 items. Row 0: target 2 (score 0.5); items 0 (0.9) and 4 (0.5, tie, higher id) -> rank 1.
  // Row 1: target 5 (0.1); items 1, 3 excluded (history) -> only item 0 (0.2) is ahead -> rank 1;
  //        item 2 ties at 0.1 with a lower id -> rank 2.
  at::Tensor s = at::tensor({0.9f, 0.1f, 0.5f, 0.2f, 0.5f, 0.0f,
                             0.2f, 0.8f, 0.1f, 0.9f, 0.0f, 0.1f}).view({2, 6});
  auto r = RankTargets(s, {10, 11}, {2, 5}, {{}, {1, 3, 5}});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].rank, 1);
  EXPECT_EQ(r[1].rank, 2);  // the target itself is never excluded
  EXPECT_EQ(r[0].top, (std::vector<int64_t>{0, 2, 4, 3, 1, 5}));  // ties by id
  EXPECT_EQ(r[1].top, (std::vector<int64_t>{0, 2, 5, 4}));           // excluded items never listed
}

TEST(ReduceMetrics, HandComputedValuesAndWorldSizeIndependence) {
  // Users (id, rank, training events, list) with ranks 0, 1, 12, 60 over 4 ranks' worth of data.
  std::vector<UserResult> all = {{0, 0, 1, {1, 2}}, {1, 1, 4, {1, 3}}, {2, 12, 10, {4, 2}}, {3, 60, 30, {1, 2}}};
  ListContext items;
  items.num_items = 5;
  items.item_counts = {0, 8, 4, 2, 2};  // training counts of items 0..4 (total 16)
  // Unit features: items 1 and 3 alike, 2 orthogonal to them, 4 at cosine 0.8 with 2.
  items.vectors = at::tensor({0.f, 0.f, 1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 0.6f, 0.8f}).view({5, 2});
  auto expect = [&](std::map<std::string, double> m) {
    EXPECT_DOUBLE_EQ(m["users"], 4);
    EXPECT_DOUBLE_EQ(m["hr@10"], 0.5);
    EXPECT_DOUBLE_EQ(m["hr@50"], 0.75);
    EXPECT_DOUBLE_EQ(m["hr@200"], 1.0);
    EXPECT_NEAR(m["ndcg@10"], (1.0 + 1.0 / std::log2(3.0)) / 4, 1e-12);
    EXPECT_NEAR(m["ndcg@50"], (1.0 + 1.0 / std::log2(3.0) + 1.0 / std::log2(14.0)) / 4, 1e-12);
    EXPECT_NEAR(m["mrr"], (1.0 + 0.5 + 1.0 / 13 + 1.0 / 61) / 4, 1e-12);
    for (const char* k : {"@10", "@50", "@200"}) {  // lists of 2: every cut-off sees the same lists
      SCOPED_TRACE(k);
      EXPECT_DOUBLE_EQ(m[std::string("coverage") + k], 4.0 / 5);  // items 1, 2, 3, 4 of 5
      // novelty: per user the mean -log2(count/16): (1+2)/2, (1+3)/2, (3+2)/2, (1+2)/2.
      EXPECT_NEAR(m[std::string("novelty") + k], (1.5 + 2.0 + 2.5 + 1.5) / 4, 1e-12);
      // popularity percentiles by count (mid rank / 4): item 0 -> 0, items 3, 4 -> 0.375, 2 -> 0.75, 1 -> 1.
      EXPECT_NEAR(m[std::string("popularity_bias") + k], ((1 + 0.75) / 2 + (1 + 0.375) / 2 + (0.375 + 0.75) / 2 + (1 + 0.75) / 2) / 4, 1e-12);
      // diversity: 1 - cosine of the pair: {1,2} 1, {1,3} 0, {4,2} 0.2, {1,2} 1.
      EXPECT_NEAR(m[std::string("diversity") + k], (1 + 0 + 0.2 + 1) / 4, 1e-6);
    }
    EXPECT_DOUBLE_EQ(m["hist_1-2.users"], 1);
    EXPECT_DOUBLE_EQ(m["hist_1-2.ndcg@10"], 1);
    EXPECT_DOUBLE_EQ(m["hist_3-5.users"], 1);
    EXPECT_NEAR(m["hist_3-5.ndcg@10"], 1.0 / std::log2(3.0), 1e-12);
    EXPECT_DOUBLE_EQ(m["hist_6-20.hr@10"], 0);
    EXPECT_DOUBLE_EQ(m["hist_6-20.hr@50"], 1);
    EXPECT_DOUBLE_EQ(m["hist_21+.users"], 1);
    EXPECT_NEAR(m["hist_21+.mrr"], 1.0 / 61, 1e-12);
  };
  RunRanks(1, [&](Communicator& c) { expect(ReduceMetrics(c, all, items)); });
  std::vector<std::map<std::string, double>> per_rank(3);
  RunRanks(3, [&](Communicator& c) {
    std::vector<UserResult> mine;  // uneven split, rank 1 gets nothing
    if (c.rank() == 0) mine = {all[3], all[0]};
    if (c.rank() == 2) mine = {all[1], all[2]};
    per_rank[c.rank()] = ReduceMetrics(c, mine, items);
  });
  for (const auto& m : per_rank) expect(m);
  RunRanks(1, [&](Communicator& c) { EXPECT_EQ(ReduceMetrics(c, all, items), per_rank[0]); });  // bitwise
}

// Under the cold-start protocol: slices by whether the target is cold, and the popularity baseline
// of the cold slice, by hand.
TEST(ReduceMetrics, WarmAndColdSlicesAndThePopularityOfColdItems) {
  // (user, rank, history, list, target): targets 0 and 3 are cold, 1 and 2 warm.
  std::vector<UserResult> all = {{0, 0, 3, {1}, 0}, {1, 4, 3, {1}, 1}, {2, 30, 3, {1}, 3}, {3, 60, 3, {1}, 2},
                                 {4, 2, 3, {1}, 3}};
  all[0].cold_rank = 3;  // the model among the cold items alone (two cold users of three measured)
  all[2].cold_rank = 12;
  ListContext items;
  items.num_items = 4;
  items.item_counts = {0, 5, 5, 0};
  items.cold = {1, 0, 0, 1};
  items.cold_popularity_rank = {11, -1, -1, 0};  // item 3 the most popular cold item, item 0 the 12th
  auto expect = [&](std::map<std::string, double> m) {
    EXPECT_DOUBLE_EQ(m["cold.users"], 3);
    EXPECT_DOUBLE_EQ(m["warm.users"], 2);
    EXPECT_DOUBLE_EQ(m["all.users"], 5);
    EXPECT_NEAR(m["cold.hr@10"], 2.0 / 3, 1e-12);  // ranks 0, 30, 2
    EXPECT_NEAR(m["cold.ndcg@10"], (1.0 + 1.0 / std::log2(4.0)) / 3, 1e-12);
    EXPECT_NEAR(m["cold.hr@50"], 1.0, 1e-12);
    EXPECT_NEAR(m["cold.mrr"], (1.0 + 1.0 / 31 + 1.0 / 3) / 3, 1e-12);
    EXPECT_NEAR(m["warm.hr@10"], 0.5, 1e-12);  // ranks 4, 60
    EXPECT_NEAR(m["warm.ndcg@10"], 1.0 / std::log2(6.0) / 2, 1e-12);
    EXPECT_NEAR(m["warm.hr@50"], 0.5, 1e-12);
    EXPECT_DOUBLE_EQ(m["all.hr@10"], m["hr@10"]);
    EXPECT_DOUBLE_EQ(m["all.mrr"], m["mrr"]);
    // Popularity among the cold items: targets 0 (rank 11), 3 (0), 3 (0).
    EXPECT_NEAR(m["cold.pop_hr@10"], 2.0 / 3, 1e-12);
    EXPECT_NEAR(m["cold.pop_ndcg@10"], 2.0 / 3, 1e-12);
    EXPECT_NEAR(m["cold.pop_hr@50"], 1.0, 1e-12);
    EXPECT_NEAR(m["cold.among_cold_hr@10"], 0.5, 1e-12);
    EXPECT_NEAR(m["cold.among_cold_ndcg@10"], 0.5 / std::log2(5.0), 1e-12);
    EXPECT_NEAR(m["cold.among_cold_hr@50"], 1.0, 1e-12);
  };
  RunRanks(1, [&](Communicator& c) { expect(ReduceMetrics(c, all, items)); });
  RunRanks(2, [&](Communicator& c) {
    std::vector<UserResult> mine(all.begin() + (c.rank() == 0 ? 0 : 2), c.rank() == 0 ? all.begin() + 2 : all.end());
    expect(ReduceMetrics(c, mine, items));
  });
  items.cold.clear();
  items.cold_popularity_rank.clear();
  RunRanks(1, [&](Communicator& c) {
    auto m = ReduceMetrics(c, all, items);
    EXPECT_EQ(m.count("cold.hr@10") + m.count("warm.hr@10") + m.count("all.hr@10"), 0u) << "no slices without the protocol";
  });
}

TEST(ReduceMetrics, CutOffsSeeTheirOwnPrefix) {
  // One user, a list of 60 items 0..59 of a 100-item catalogue; item i has i training events.
  UserResult r{7, 3, 2, {}};
  for (int64_t i = 0; i < 60; ++i) r.top.push_back(i);
  ListContext items;
  items.num_items = 100;
  for (int64_t i = 0; i < 100; ++i) items.item_counts.push_back(i);
  RunRanks(1, [&](Communicator& c) {
    auto m = ReduceMetrics(c, {r}, items);
    EXPECT_DOUBLE_EQ(m["coverage@10"], 0.10);
    EXPECT_DOUBLE_EQ(m["coverage@50"], 0.50);
    EXPECT_DOUBLE_EQ(m["coverage@200"], 0.60);  // the list is shorter than 200
    EXPECT_NEAR(m["popularity_bias@10"], 4.5 / 99, 1e-12);  // mean percentile of items 0..9
    EXPECT_NEAR(m["popularity_bias@200"], 29.5 / 99, 1e-12);
    EXPECT_EQ(m.count("diversity@10"), 0u);  // no features: not reported
  });
}

// Diversity by categories: unit multi-hot vectors (repeats count once; items without categories
// are alike among themselves). Lists shorter than 2 give no diversity, empty ones no list figures:
// those users are left out of the means, not counted as 0.
TEST(ReduceMetrics, DiversityByCategoriesAndShortLists) {
  ListContext items;
  items.num_items = 4;
  items.item_counts = {1, 1, 1, 1};
  items.num_categories = 2;
  // Item 0: {0, 1}; item 1: {1, 1} (= {1}); items 2 and 3: none.
  items.category_offsets = {0, 2, 4, 4, 4};
  items.category_values = {0, 1, 1, 1};
  const double h = 1 / std::sqrt(2.0);
  std::vector<UserResult> users = {
      {0, 0, 3, {0, 1}},     // cosine h -> diversity 1 - h
      {1, 0, 3, {2, 3}},     // both without categories: alike -> 0
      {2, 0, 3, {1, 2, 0}},  // pairs (1,2) 0, (1,0) h, (2,0) 0 -> 1 - h / 3
      {3, 0, 3, {3}},        // one item: in novelty, not in diversity
      {4, 0, 3, {}},         // nothing listed: in neither
  };
  RunRanks(1, [&](Communicator& c) {
    auto m = ReduceMetrics(c, users, items);
    EXPECT_NEAR(m["diversity@10"], ((1 - h) + 0 + (1 - h / 3)) / 3, 1e-12);
    EXPECT_NEAR(m["novelty@10"], 2.0, 1e-12);  // every item 1 of 4 events: -log2(1/4) for the 4 listing users
    EXPECT_DOUBLE_EQ(m["popularity_bias@10"], 0.5);  // all tied
    EXPECT_DOUBLE_EQ(m["coverage@10"], 1.0);
    EXPECT_DOUBLE_EQ(m["users"], 5);
  });
}

// Items tied at the last listed place are taken by lowest id, whatever topk picked.
TEST(RankTargets, TiesAtTheCutAreTakenByLowestId) {
  const int64_t n = 400;
  at::Tensor s = at::zeros({1, n});
  for (int64_t j = 0; j < 150; ++j) s[0][j] = 2.0f;  // 150 above the cut
  s[0][399] = 3.0f;                                  // one more above
  auto r = RankTargets(s, {0}, {399}, {{}});
  ASSERT_EQ(r[0].top.size(), static_cast<size_t>(kListLength));
  EXPECT_EQ(r[0].top[0], 399);
  for (int64_t k = 1; k <= 150; ++k) EXPECT_EQ(r[0].top[k], k - 1);
  for (int64_t k = 151; k < kListLength; ++k) EXPECT_EQ(r[0].top[k], k - 1);  // zeros 150..198 by id
}

}  // namespace
}  // namespace shardrec
