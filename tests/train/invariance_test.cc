#include <gtest/gtest.h>

#include "distributed/inprocess.h"
#include "io/synth.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"

namespace shardrec {
namespace {

class Invariance : public ::testing::TestWithParam<std::string> {};

TEST_P(Invariance, OneTwoAndFourRanksTrainTheSameModel) {
  testing::TempDir dir;
  SynthOptions so;
  so.users = 400;
  so.items = 150;
  so.events = 6000;
  so.content_dim = 4;
  GenerateSynthetic(dir.File("s.h5"), so);
  std::map<int, TrainResult> results;
  for (int world : {1, 2, 4}) {
    const std::string run = dir.File("run" + std::to_string(world));
    RunRanks(world, [&](Communicator& c) {
      TrainResult r = Train(testing::InvarianceOptions(dir.File("s.h5"), run, GetParam()), c);
      if (c.rank() == 0) results[world] = r;
    });
  }
  ASSERT_EQ(results[1].losses.size(), 20u);
  EXPECT_LT(results[1].losses.back(), results[1].losses.front()) << "it should learn something";
  for (int world : {2, 4}) {
    SCOPED_TRACE("world " + std::to_string(world));
    testing::ExpectSameTraining(results[1], results[world], dir.File("run1/model"),
                                dir.File("run" + std::to_string(world) + "/model"));
  }
}

INSTANTIATE_TEST_SUITE_P(Losses, Invariance, ::testing::Values("full", "sampled"));

}  // namespace
}  // namespace shardrec
