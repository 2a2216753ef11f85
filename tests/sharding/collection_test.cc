#include <gtest/gtest.h>

#include "distributed/inprocess.h"
#include "tests/sharding/oracle.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::PlanKind;

class Oracle : public ::testing::TestWithParam<std::tuple<int, PlanKind>> {};

TEST_P(Oracle, ShardedEqualsUnshardedForwardAndTables) {
  const auto [world, kind] = GetParam();
  RunRanks(world, [kind](Communicator& c) { testing::RunOracle(c, kind, /*steps=*/4); });
}

INSTANTIATE_TEST_SUITE_P(
    WorldSizesAndPlans, Oracle,
    ::testing::Combine(::testing::Values(1, 2, 3, 4),
                       ::testing::Values(PlanKind::kTableWise, PlanKind::kRowWise, PlanKind::kColumnWise,
                                         PlanKind::kDataParallel, PlanKind::kMixed, PlanKind::kPlanner)),
    [](const auto& info) {
      return "world" + std::to_string(std::get<0>(info.param)) + "_" + testing::PlanKindName(std::get<1>(info.param));
    });

// Gradients reach the sharded rows through autograd alone: the tables after training equal the
// unsharded reference's, with no hand-called Backward, at several world sizes and plans.
class AutogradOracle : public ::testing::TestWithParam<std::tuple<int, PlanKind>> {};

TEST_P(AutogradOracle, SparseUpdatesThroughAutogradEqualTheReference) {
  const auto [world, kind] = GetParam();
  RunRanks(world, [kind](Communicator& c) {
    testing::RunOracle(c, kind, /*steps=*/4, /*dedup=*/true, testing::BackwardPath::kAutograd);
  });
}

INSTANTIATE_TEST_SUITE_P(
    WorldSizesAndPlans, AutogradOracle,
    ::testing::Combine(::testing::Values(1, 2, 3),
                       ::testing::Values(PlanKind::kRowWise, PlanKind::kColumnWise, PlanKind::kDataParallel,
                                         PlanKind::kMixed)),
    [](const auto& info) {
      return "world" + std::to_string(std::get<0>(info.param)) + "_" + testing::PlanKindName(std::get<1>(info.param));
    });

TEST(AutogradLookup, OutputsTheLossDoesNotUseGetZeroGradients) {
  // Only the "history" feature enters the loss: the other tables see zero gradients (their
  // optimizers still step, as after a hand-called Backward with zeros), and nothing hangs.
  RunRanks(2, [](Communicator& c) {
    const auto tables = testing::OracleTables();
    ShardedEmbeddingCollection coll(tables, testing::MakePlan(tables, PlanKind::kRowWise, 2), &c, {.seed = 1});
    const at::Tensor before = coll.LocalWeights("tags").clone();
    ASSERT_EQ(coll.LocalShard("items")->row_end, c.rank() == 0 ? 12 : 23);
    FeatureBatch b;
    for (const auto& t : tables) {
      for (const auto& f : t.features) b[f] = {at::full({3}, c.rank() + 1, at::kLong), at::ones({3}, at::kLong)};
    }
    FeatureOutputs out = DifferentiableLookup(coll, b);
    out.at("history").sum().backward();
    EXPECT_TRUE(at::equal(coll.LocalWeights("tags"), before));  // SGD on zero gradients
    // Ids 1 and 2 live on rank 0's rows [0, 12) of "items": only rank 0's shard moved.
    const Shard* s = coll.LocalShard("items");
    const bool moved = !at::equal(coll.LocalWeights("items"), InitRows(tables[0], 1, s->row_begin, s->row_end, 0, 8));
    EXPECT_EQ(moved, c.rank() == 0);
  });
}

TEST(Oracle, WithoutDedupTheResultIsTheSame) {
  RunRanks(3, [](Communicator& c) { testing::RunOracle(c, PlanKind::kMixed, 3, /*dedup=*/false); });
}

TEST(Collection, InitDependsOnlyOnSeedTableAndRow) {
  TableSpec t{.name = "t", .rows = 10, .dim = 6, .features = {"f"}};
  at::Tensor full = InitRows(t, 3, 0, 10, 0, 6);
  EXPECT_TRUE(at::equal(InitRows(t, 3, 4, 7, 2, 5), full.slice(0, 4, 7).slice(1, 2, 5)));
  EXPECT_FALSE(at::equal(InitRows(t, 4, 0, 10, 0, 6), full));
  TableSpec u = t;
  u.name = "u";
  EXPECT_FALSE(at::equal(InitRows(u, 3, 0, 10, 0, 6), full));
  EXPECT_LE(full.abs().max().item<float>(), 1 / std::sqrt(6.0f));
}

TEST(Collection, OutOfRangeIdNamesTableFeatureIdAndPosition) {
  auto tables = testing::OracleTables();
  std::string error;
  EXPECT_ANY_THROW(RunRanks(2, [&](Communicator& c) {
    ShardedEmbeddingCollection coll(tables, testing::MakePlan(tables, PlanKind::kRowWise, 2), &c);
    FeatureBatch b;
    for (const auto& t : tables) {
      for (const auto& f : t.features) b[f] = {at::zeros({2}, at::kLong), at::full({2}, 1, at::kLong)};
    }
    if (c.rank() == 1) b["candidates"] = {at::tensor({int64_t{3}, int64_t{23}}, at::kLong), at::full({2}, 1, at::kLong)};
    try {
      coll.Forward(b);
    } catch (const UserError& e) {
      if (c.rank() == 1) error = e.what();
      throw;
    }
  }));
  EXPECT_EQ(error, "table 'items': feature 'candidates' has id 23 at position 1 (sample 1) outside [0, 23)");
}

TEST(Collection, BadInputsAreUserErrors) {
  auto tables = testing::OracleTables();
  RunRanks(1, [&](Communicator& c) {
    ShardedEmbeddingCollection coll(tables, testing::MakePlan(tables, PlanKind::kRowWise, 1), &c);
    FeatureBatch b;
    testing::ExpectUserError([&] { coll.Forward(b); }, {"no feature 'history'"});
    for (const auto& t : tables) {
      for (const auto& f : t.features) b[f] = {at::zeros({2}, at::kLong), at::full({2}, 1, at::kLong)};
    }
    b["tag_bag"].lengths = at::full({2}, 2, at::kLong);
    testing::ExpectUserError([&] { coll.Forward(b); }, {"feature 'tag_bag'", "lengths sum to 4", "2 ids"});
  });
  testing::ExpectUserError(
      [&] { RunRanks(2, [&](Communicator& c) { ShardedEmbeddingCollection(tables, testing::MakePlan(tables, PlanKind::kRowWise, 3), &c); }); },
      {"plan is for 3 ranks", "has 2"});
}

}  // namespace
}  // namespace shardrec
