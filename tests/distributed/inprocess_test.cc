#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "distributed/inprocess.h"
#include "tests/distributed/collective_bodies.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

class Collectives : public ::testing::TestWithParam<std::tuple<int, at::ScalarType>> {};

TEST_P(Collectives, EveryCollectiveMatchesHandComputedValues) {
  const auto [world, dtype] = GetParam();
  RunRanks(world, [dtype](Communicator& c) { testing::AllBodies(c, dtype); });
}

INSTANTIATE_TEST_SUITE_P(WorldSizesAndDtypes, Collectives,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4),
                                            ::testing::ValuesIn(testing::AllDtypes())),
                         [](const auto& info) {
                           return "world" + std::to_string(std::get<0>(info.param)) + "_" +
                                  std::string(c10::toString(std::get<1>(info.param)));
                         });

CommOptions Timeout(int ms) {
  CommOptions o;
  o.timeout = std::chrono::milliseconds(ms);
  return o;
}

std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const CommError& e) {
    return e.what();
  }
  return "";
}

TEST(InProcessFailures, PeerFailureEndsWaitingRanksQuicklyWithItsName) {
  const auto start = Clock::now();
  std::vector<std::string> errors(3);
  EXPECT_THROW(RunRanks(3, [&](Communicator& c) {
                 c.SetStep(7);
                 if (c.rank() == 1) throw std::runtime_error("out of memory");
                 at::Tensor t = at::ones({4});
                 try {
                   c.AllReduce(t, ReduceOp::kSum);
                 } catch (const CommError& e) {
                   errors[c.rank()] = e.what();
                   throw;
                 }
               }, Timeout(30000)),
               std::runtime_error);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5)) << "must not wait for the deadline";
  for (int r : {0, 2}) {
    EXPECT_NE(errors[r].find("AllReduce #1 (step 7)"), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("rank 1 failed: out of memory"), std::string::npos) << errors[r];
  }
}

TEST(InProcessFailures, SilentPeerTimesOutNamingIt) {
  std::vector<std::string> errors(3);
  const auto start = Clock::now();
  EXPECT_ANY_THROW(RunRanks(3, [&](Communicator& c) {
    if (c.rank() == 2) return;  // never joins
    at::Tensor t = at::ones({2});
    errors[c.rank()] = ErrorOf([&] { c.AllReduce(t, ReduceOp::kSum); });
    if (!errors[c.rank()].empty()) throw CommError(errors[c.rank()]);
  }, Timeout(300)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  const std::string all = errors[0] + errors[1];
  EXPECT_NE(all.find("timed out after 0.3 s"), std::string::npos) << all;
  EXPECT_NE(all.find("rank 2 did not join"), std::string::npos) << all;
}

TEST(InProcessFailures, MismatchedCollectivesAreReported) {
  std::string error;
  EXPECT_ANY_THROW(RunRanks(2, [&](Communicator& c) {
    if (c.rank() == 0) {
      at::Tensor t = at::ones({2});
      error = ErrorOf([&] { c.AllReduce(t, ReduceOp::kSum); });
      if (!error.empty()) throw CommError(error);
    } else {
      c.Barrier();
    }
  }, Timeout(2000)));
  EXPECT_NE(error.find("collective mismatch"), std::string::npos) << error;
  EXPECT_NE(error.find("Barrier #1"), std::string::npos) << error;
}

TEST(InProcessFailures, ShapeAndDtypeMismatchesAreReported) {
  std::string error;
  EXPECT_ANY_THROW(RunRanks(2, [&](Communicator& c) {
    at::Tensor t = at::ones({c.rank() == 0 ? 2 : 3});
    std::string e = ErrorOf([&] { c.AllReduce(t, ReduceOp::kSum); });
    if (c.rank() == 0) error = e;
    if (!e.empty()) throw CommError(e);
  }, Timeout(2000)));
  // Whichever rank notices first, the message names both shapes.
  EXPECT_NE(error.find("shape [3]"), std::string::npos) << error;
  EXPECT_NE(error.find("shape [2]"), std::string::npos) << error;
}

TEST(InProcessFailures, BadArgumentsAreCommErrors) {
  RunRanks(2, [](Communicator& c) {
    at::Tensor d = at::ones({2}, at::kDouble);
    EXPECT_THROW(c.AllReduce(d, ReduceOp::kSum), CommError);  // float64 is not a collective dtype
    at::Tensor i = at::ones({2}, at::kInt);
    EXPECT_THROW(c.AllReduce(i, ReduceOp::kAvg), CommError);
    EXPECT_THROW(c.AllToAll(at::ones({3, 2}), {1, 1}), CommError);  // splits sum to 2, not 3
    EXPECT_THROW(c.ReduceScatter(at::ones({3}), ReduceOp::kSum), CommError);
  });
}

TEST(UnevenWork, DetectedAndReportedNotDeadlocked) {
  std::vector<std::string> errors(3);
  EXPECT_ANY_THROW(RunRanks(3, [&](Communicator& c) {
    for (int step = 0; step < 5; ++step) {
      c.SetStep(step);
      const bool has = !(c.rank() == 1 && step >= 3);  // rank 1 runs out after 3 batches
      std::string e = ErrorOf([&] {
        if (!AllRanksHaveData(c, has, "training")) return;
        at::Tensor g = at::ones({2});
        c.AllReduce(g, ReduceOp::kSum);
      });
      if (!e.empty()) {
        errors[c.rank()] = e;
        throw CommError(e);
      }
    }
  }, Timeout(5000)));
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(errors[r].find("uneven work in training at step 3: rank 1 ran out of data"),
              std::string::npos) << errors[r];
  }
}

TEST(UnevenWork, AllRanksOutOfDataIsTheNormalEnd) {
  RunRanks(3, [](Communicator& c) {
    EXPECT_TRUE(AllRanksHaveData(c, true, "x"));
    EXPECT_FALSE(AllRanksHaveData(c, false, "x"));
  });
}

TEST(Agreement, BroadcastStringAndFirstError) {
  for (int world : {1, 2, 4}) {
    RunRanks(world, [world](Communicator& c) {
      // From any root, including an empty text and one that is not a multiple of the word size.
      for (int root = 0; root < world; ++root) {
        EXPECT_EQ(BroadcastString(c, c.rank() == root ? "from " + std::to_string(root) + " \xff\x01" : "junk", root),
                  "from " + std::to_string(root) + " \xff\x01");
        EXPECT_EQ(BroadcastString(c, c.rank() == root ? "" : "junk", root), "");
      }
      EXPECT_EQ(FirstError(c, ""), "");
      // Ranks 1 and 3 fail (where they exist): every rank gets rank 1's message, rank 0's when alone.
      const bool fails = c.rank() == 1 || c.rank() == 3 || world == 1;
      EXPECT_EQ(FirstError(c, fails ? "rank " + std::to_string(c.rank()) + " failed" : ""),
                world == 1 ? "rank 0 failed" : "rank 1 failed");
      EXPECT_NO_THROW(ThrowIfAnyRankFailed(c, ""));
      try {
        ThrowIfAnyRankFailed(c, c.rank() == world - 1 ? "the last rank failed" : "");
        ADD_FAILURE() << "rank " << c.rank() << " did not throw";
      } catch (const AgreedUserError& e) {
        EXPECT_STREQ(e.what(), "the last rank failed");
      }
    });
  }
}

TEST(EvenSplits, SumsAndBalance) {
  EXPECT_EQ(EvenSplits(10, 3), (std::vector<int64_t>{3, 3, 4}));
  EXPECT_EQ(EvenSplits(2, 4), (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(EvenSplits(0, 2), (std::vector<int64_t>{0, 0}));
}

}  // namespace
}  // namespace shardrec
