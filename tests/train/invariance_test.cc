#include <gtest/gtest.h>

#include "distributed/inprocess.h"
#include "io/synth.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"

namespace shardrec {
namespace {

// 400 users, 150 items, 6000 events.
void SmallDataset(const std::string& path, int64_t content_dim) {
  SynthOptions so;
  so.users = 400;
  so.items = 150;
  so.events = 6000;
  so.content_dim = content_dim;
  GenerateSynthetic(path, so);
}

// Parameter: the loss ("full" or "sampled"), optionally followed by "/variant": separate input
// vectors, dot-product scores, positions from the newest event, earlier items out of each
// position's softmax, a cosine learning-rate schedule and the content loss. Dropout is on at the
// generic config's rate (0.5), and id dropout too: their masks are keyed by row and item, not rank.
class Invariance : public ::testing::TestWithParam<std::string> {
 protected:
  TrainOptions Options(const std::string& data, const std::string& run) const {
    const std::string p = GetParam();
    TrainOptions o = testing::InvarianceOptions(data, run, p.substr(0, p.find('/')));
    o.model.id_dropout = 0.3;
    if (p.find("/variant") != std::string::npos) {
      o.model.separate_input_vectors = true;
      o.model.cosine = false;
      o.model.positions_from_newest = true;
      o.temperature = 1.0;
      o.step.exclude_history = true;
      o.step.cosine = true;
      o.step.content_loss = 0.5;
    }
    return o;
  }
};

TEST(Precision, Bfloat16TrainingFollowsFloat32) {
  testing::TempDir dir;
  SmallDataset(dir.File("s.h5"), /*content_dim=*/0);
  std::map<std::string, TrainResult> results;
  for (const char* precision : {"float32", "bfloat16"}) {
    TrainOptions o = testing::InvarianceOptions(dir.File("s.h5"), dir.File(precision), "full");
    o.step.bfloat16 = std::string(precision) == "bfloat16";
    RunRanks(1, [&](Communicator& c) { results[precision] = Train(o, c); });
  }
  const auto& f = results["float32"].losses;
  const auto& b = results["bfloat16"].losses;
  ASSERT_EQ(f.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  EXPECT_LT(b.back(), b.front()) << "bfloat16 training learns";
  double max_rel = 0;
  for (size_t i = 0; i < f.size(); ++i) max_rel = std::max(max_rel, std::abs(b[i] - f[i]) / f[i]);
  EXPECT_LT(max_rel, 0.02) << "bfloat16 losses stay within 2% of float32";
  EXPECT_GT(max_rel, 0.0) << "the bfloat16 run must actually run in bfloat16";
}

TEST_P(Invariance, OneTwoAndFourRanksTrainTheSameModel) {
  testing::TempDir dir;
  SmallDataset(dir.File("s.h5"), /*content_dim=*/4);
  std::map<int, TrainResult> results;
  for (int world : {1, 2, 4}) {
    const std::string run = dir.File("run" + std::to_string(world));
    RunRanks(world, [&](Communicator& c) {
      TrainResult r = Train(Options(dir.File("s.h5"), run), c);
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

// The content loss: each target also scored by its content-only vector against the step's
// candidates. It adds a second softmax's sum to every step's loss (larger than the plain loss at
// the same parameters: the first step's), the model still learns under it, and a tower without a
// content path ignores it.
TEST(ContentLoss, AddsASoftmaxOfContentOnlyTargets) {
  testing::TempDir dir;
  SmallDataset(dir.File("s.h5"), /*content_dim=*/4);
  std::map<double, TrainResult> results;
  for (double w : {0.0, 1.0}) {
    TrainOptions o = testing::InvarianceOptions(dir.File("s.h5"), dir.File("w" + std::to_string(w)), "full");
    o.step.content_loss = w;
    RunRanks(1, [&](Communicator& c) { results[w] = Train(o, c); });
  }
  const auto& plain = results[0.0].losses;
  const auto& with = results[1.0].losses;
  ASSERT_EQ(with.size(), 20u);
  // Step 1 starts from the same parameters: the content softmax adds about as much again.
  EXPECT_GT(with.front(), 1.5 * plain.front());
  EXPECT_LT(with.front(), 2.5 * plain.front());
  EXPECT_LT(with.back(), with.front()) << "it still learns";
  // Ids only (no categories, no content): the same training with and without it.
  std::map<double, TrainResult> ids_only;
  for (double w : {0.0, 1.0}) {
    TrainOptions o = testing::InvarianceOptions(dir.File("s.h5"), dir.File("ids" + std::to_string(w)), "full");
    o.model.use_categories = false;
    o.model.use_content = false;
    o.step.content_loss = w;
    RunRanks(1, [&](Communicator& c) { ids_only[w] = Train(o, c); });
  }
  EXPECT_EQ(ids_only[0.0].losses, ids_only[1.0].losses);
  TrainOptions bad = testing::InvarianceOptions(dir.File("s.h5"), dir.File("bad"), "full");
  bad.step.content_loss = -1;
  testing::ExpectUserError([&] { RunRanks(1, [&](Communicator& c) { Train(bad, c); }); }, {"--content-loss"});
}

INSTANTIATE_TEST_SUITE_P(Losses, Invariance, ::testing::Values("full", "sampled", "full/variant", "sampled/variant"),
                         [](const auto& info) {
                           const std::string& n = info.param;
                           const size_t slash = n.find('/');
                           return slash == std::string::npos ? n : n.substr(0, slash) + "Variant";
                         });

// Length groups change how the user tower is batched, not what it computes: one group (the whole
// batch padded to its longest row) and five groups train the same model.
TEST_P(Invariance, LengthGroupsTrainTheSameModelAsOneGroup) {
  testing::TempDir dir;
  SmallDataset(dir.File("s.h5"), /*content_dim=*/0);
  std::map<int64_t, TrainResult> results;
  for (int64_t groups : {1, 5}) {
    TrainOptions o = Options(dir.File("s.h5"), dir.File("g" + std::to_string(groups)));
    o.step.length_groups = groups;
    RunRanks(1, [&](Communicator& c) { results[groups] = Train(o, c); });
  }
  testing::ExpectSameTraining(results[1], results[5], dir.File("g1/model"), dir.File("g5/model"));
}

}  // namespace
}  // namespace shardrec
