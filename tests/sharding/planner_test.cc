#include "sharding/planner.h"

#include <gtest/gtest.h>

#include "distributed/inprocess.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

std::vector<TableSpec> Tables() {
  std::vector<TableSpec> t;
  t.push_back({.name = "items", .rows = 1000000, .dim = 64, .features = {"history"}, .lookups_per_sample = 50});
  t.push_back({.name = "users", .rows = 200000, .dim = 64, .features = {"user"}});
  t.push_back({.name = "genres", .rows = 20, .dim = 16, .features = {"genre"}, .pooling = Pooling::kSum, .lookups_per_sample = 3});
  t.push_back({.name = "brands", .rows = 50000, .dim = 32, .features = {"brand"}});
  return t;
}

TEST(Planner, CoversEveryTableAndRespectsTheBudget) {
  PlannerOptions o;
  o.world_size = 4;
  o.memory_budget_bytes = 120e6;
  ShardingPlan p = PlanSharding(Tables(), o);
  p.Validate(Tables());
  ASSERT_EQ(p.loads.size(), 4u);
  for (const auto& l : p.loads) EXPECT_LE(l.memory_bytes, o.memory_budget_bytes);
  // The big hot table cannot sit on one rank (256 MiB + state > 120 MB): it is split.
  EXPECT_NE(p.Find("items").type, ShardingType::kTableWise);
  EXPECT_NE(p.Find("items").type, ShardingType::kDataParallel);
  // The tiny, hot genre table is replicated or put whole somewhere, never split into row slivers.
  EXPECT_TRUE(p.Find("genres").type == ShardingType::kDataParallel || p.Find("genres").type == ShardingType::kTableWise);
  const std::string table = p.ToTable();
  EXPECT_NE(table.find("items"), std::string::npos);
  EXPECT_NE(table.find("(total)"), std::string::npos);
}

TEST(Planner, BalancesTheBusiestRank) {
  // Four identical tables on four ranks: table-wise, one per rank, beats stacking.
  std::vector<TableSpec> t;
  for (int i = 0; i < 4; ++i) {
    t.push_back({.name = "t" + std::to_string(i), .rows = 1000, .dim = 32, .features = {"f" + std::to_string(i)}});
    t.back().pinned = ShardingType::kTableWise;
  }
  PlannerOptions o;
  o.world_size = 4;
  ShardingPlan p = PlanSharding(t, o);
  std::set<int> ranks;
  for (const auto& tp : p.tables) ranks.insert(tp.shards[0].rank);
  EXPECT_EQ(ranks.size(), 4u);
}

TEST(Planner, InfeasibleBudgetIsReportedByTable) {
  PlannerOptions o;
  o.world_size = 2;
  o.memory_budget_bytes = 10e6;
  testing::ExpectUserError([&] { PlanSharding(Tables(), o); }, {"table 'items'", "memory budget", "add ranks or memory"});
}

TEST(Planner, PinnedShardingsAreHonoured) {
  auto t = Tables();
  t[0].pinned = ShardingType::kColumnWise;
  t[1].pinned = ShardingType::kRowWise;
  t[2].pinned = ShardingType::kTableWise;
  PlannerOptions o;
  o.world_size = 4;
  ShardingPlan p = PlanSharding(t, o);
  EXPECT_EQ(p.Find("items").type, ShardingType::kColumnWise);
  EXPECT_EQ(p.Find("items").shards.size(), 4u);
  EXPECT_EQ(p.Find("users").type, ShardingType::kRowWise);
  EXPECT_EQ(p.Find("genres").type, ShardingType::kTableWise);
}

TEST(Planner, PlanRoundTripsAndBroadcasts) {
  PlannerOptions o;
  o.world_size = 3;
  ShardingPlan p = PlanSharding(Tables(), o);
  ShardingPlan q = ShardingPlan::Parse(p.Serialize());
  EXPECT_EQ(p, q);
  RunRanks(3, [&](Communicator& c) {
    ShardingPlan got = BroadcastPlan(c, c.rank() == 0 ? p : ShardingPlan());
    EXPECT_EQ(got, p);
  });
  testing::ExpectUserError([] { ShardingPlan::Parse("shardrec.plan 1\nworld_size 2\ntable t row_wise 2\nshard 0 0 5 0 4\n"); },
                           {"missing shard lines"});
  testing::ExpectUserError([] { ShardingPlan::Parse("nonsense"); }, {"line 1", "shardrec.plan 1"});
}

TEST(Planner, RowWiseBlocksAreCeilDivided) {
  TableSpec t{.name = "t", .rows = 10, .dim = 4, .features = {"f"}};
  auto s = MakeShards(t, ShardingType::kRowWise, 4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].row_end, 3);
  EXPECT_EQ(s[2].row_begin, 6);
  EXPECT_EQ(s[3].row_begin, 9);
  EXPECT_EQ(s[3].row_end, 10);
  ShardingPlan p;
  p.world_size = 4;
  p.tables.push_back({"t", ShardingType::kRowWise, s});
  p.Validate({t});
  p.tables[0].shards.pop_back();
  testing::ExpectUserError([&] { p.Validate({t}); }, {"table 't'", "cover"});
}

}  // namespace
}  // namespace shardrec

namespace shardrec {
namespace {

// One cost model: the planner's choice for a table is the candidate whose capacity estimate
// (EstimateCapacity of the whole plan, the figure `shardrec plan` prints) has the fastest busiest
// rank, found here by brute force over every sharding the table may take; and the plan's per-rank
// estimates are that estimate's.
TEST(Planner, ChoosesTheCandidateTheCapacityModelRanksFastest) {
  ClusterSpec cluster{.name = "2x2", .nodes = 2, .gpus_per_node = 2, .memory_bandwidth = 100e9,
                      .intra_node_bandwidth = 50e9, .inter_node_bandwidth = 2e9, .latency_seconds = 1e-5};
  for (const bool sorted : {false, true}) {
    for (const int64_t rows : {int64_t{800}, int64_t{50000}, int64_t{2000000}}) {
      TableSpec spec{.name = "items", .rows = rows, .dim = 32, .features = {"history"}, .lookups_per_sample = 50};
      TableWorkload wl;
      wl.ids = {.zipf = 1.1, .sorted = sorted};
      wl.shared_draws = 256 * 50;
      wl.uniform_draws = 256;
      wl.outputs = 4000;
      PlannerOptions o;
      o.world_size = 4;
      o.cluster = cluster;
      o.workloads = {wl};
      const ShardingPlan plan = PlanSharding({spec}, o);
      auto busiest = [&](const ShardingPlan& p) {
        const CapacityEstimate e = EstimateCapacity({spec}, p, {wl}, cluster);
        double m = 0;
        for (int r = 0; r < 4; ++r) m = std::max(m, e.RankSeconds(r));
        return m;
      };
      double best = std::numeric_limits<double>::infinity();
      for (ShardingType t : {ShardingType::kTableWise, ShardingType::kRowWise, ShardingType::kColumnWise,
                             ShardingType::kDataParallel}) {
        if (t == ShardingType::kDataParallel && rows > o.data_parallel_max_rows) continue;
        for (int r = 0; r < (t == ShardingType::kTableWise ? 4 : 1); ++r) {
          ShardingPlan p;
          p.world_size = 4;
          p.tables.push_back({"items", t, MakeShards(spec, t, 4, r)});
          best = std::min(best, busiest(p));
        }
      }
      const std::string what = std::to_string(rows) + (sorted ? " rows, sorted" : " rows, shuffled");
      EXPECT_DOUBLE_EQ(busiest(plan), best) << what << ": chose " << ShardingTypeName(plan.tables[0].type);
      const CapacityEstimate e = EstimateCapacity({spec}, plan, {wl}, cluster);
      for (int r = 0; r < 4; ++r) EXPECT_DOUBLE_EQ(plan.loads[r].seconds, e.RankSeconds(r)) << what << " rank " << r;
    }
  }
}

}  // namespace
}  // namespace shardrec
