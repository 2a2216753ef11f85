#include "train/metrics.h"

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
  EXPECT_EQ(r[0].top10, (std::vector<int64_t>{0, 2, 4, 3, 1, 5}));  // ties by id
  EXPECT_EQ(r[1].top10[0], 0);
  EXPECT_EQ(r[1].top10[1], 2);
}

TEST(ReduceMetrics, HandComputedValuesAndWorldSizeIndependence) {
  // Users with ranks 0, 1, 12, 60 over 4 ranks' worth of data.
  std::vector<UserResult> all = {{0, 0, {1, 2}}, {1, 1, {1, 3}}, {2, 12, {4, 2}}, {3, 60, {1, 2}}};
  std::vector<int64_t> counts = {0, 8, 4, 2, 2};  // training counts of items 0..4 (total 16)
  auto expect = [&](std::map<std::string, double> m) {
    EXPECT_DOUBLE_EQ(m["users"], 4);
    EXPECT_DOUBLE_EQ(m["hr@10"], 0.5);
    EXPECT_DOUBLE_EQ(m["hr@50"], 0.75);
    EXPECT_DOUBLE_EQ(m["hr@200"], 1.0);
    EXPECT_NEAR(m["ndcg@10"], (1.0 + 1.0 / std::log2(3.0)) / 4, 1e-12);
    EXPECT_NEAR(m["ndcg@50"], (1.0 + 1.0 / std::log2(3.0) + 1.0 / std::log2(14.0)) / 4, 1e-12);
    EXPECT_NEAR(m["mrr"], (1.0 + 0.5 + 1.0 / 13 + 1.0 / 61) / 4, 1e-12);
    EXPECT_DOUBLE_EQ(m["coverage@10"], 4.0 / 5);  // items 1, 2, 3, 4 of 5
    // novelty: -log2(count/16) over the 8 listed items: 1 x3 (8/16), 2 x3 (4/16), 3 (2/16), 4 (2/16).
    EXPECT_NEAR(m["novelty@10"], (3 * 1.0 + 3 * 2.0 + 3.0 + 3.0) / 8, 1e-12);
  };
  RunRanks(1, [&](Communicator& c) { expect(ReduceMetrics(c, all, 5, counts)); });
  RunRanks(3, [&](Communicator& c) {
    std::vector<UserResult> mine;  // uneven split, rank 1 gets nothing
    if (c.rank() == 0) mine = {all[3], all[0]};
    if (c.rank() == 2) mine = {all[1], all[2]};
    expect(ReduceMetrics(c, mine, 5, counts));
  });
}

}  // namespace
}  // namespace shardrec
