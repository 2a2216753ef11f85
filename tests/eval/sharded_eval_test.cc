// Sharded scoring (eval/evaluate.h, EvalScoring::kSharded) against the replicated evaluation on
// one rank, the oracle: each rank holds 1/W of the catalogue's vectors, and the metrics (ranks,
// lists, coverage, novelty, diversity, the cold slices, the index's lists) come out the same.
#include <gtest/gtest.h>

#include <cmath>

#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "io/synth.h"
#include "serve/index_build.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"
#include "eval/evaluate.h"
#include "serve/export.h"
#include "train/trainer.h"
#include "train/model_files.h"
#include "train/evaluate_run.h"
#include "model/catalogue.h"

namespace shardrec {
namespace {

class ShardedEvalTest : public ::testing::TestWithParam<int> {  // the data's categories (0: none)
 protected:
  void SetUp() override {
    SynthOptions so;
    so.users = 300;
    so.items = 150;  // 50 or 75 items per rank: shorter than a list (200), so lists merge across ranks
    so.events = 4500;
    so.categories = GetParam();
    so.content_dim = 0;
    GenerateSynthetic(dir_.File("s.h5"), so);
    TrainOptions o = testing::InvarianceOptions(dir_.File("s.h5"), dir_.File("run"), "full");
    model_ = o.model;
    model_.use_categories = GetParam() > 0;
    o.model = model_;
    RunRanks(1, [&](Communicator& c) { Train(o, c); });
  }
  std::map<std::string, double> Eval(int world, EvalScoring scoring, double cold_items = 0, const std::string& ann = "") {
    std::map<std::string, double> out;
    RunRanks(world, [&](Communicator& c) {
      EvalOptions e;
      e.data = dir_.File("s.h5");
      e.run_dir = dir_.File("run");
      e.model = model_;
      e.batch_size = 64;
      e.cold_items = cold_items;
      e.ann_export = ann;
      e.scoring = scoring;
      auto m = Evaluate(e, c);
      if (c.rank() == 0) out = m;
    });
    return out;
  }
  static void ExpectSame(const std::map<std::string, double>& want, const std::map<std::string, double>& got) {
    ASSERT_EQ(want.size(), got.size());
    for (const auto& [k, v] : want) {
      ASSERT_TRUE(got.count(k)) << k;
      EXPECT_NEAR(got.at(k), v, 1e-9 * std::max(1.0, std::abs(v))) << k;
    }
  }
  testing::TempDir dir_;
  ModelConfig model_;
};

TEST_P(ShardedEvalTest, SameMetricsAsTheWholeCatalogueOnOneRank) {
  const auto one = Eval(1, EvalScoring::kReplicated);
  ASSERT_GT(one.at("users"), 200);
  EXPECT_GT(one.at("hr@10"), 0);
  ASSERT_TRUE(one.count("diversity@10"));  // by categories, or by the item vectors without them
  for (int world : {2, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    ExpectSame(one, Eval(world, EvalScoring::kSharded));
  }
  // Under the cold-start protocol: the warm / cold slices and the ranks among cold items.
  const auto cold_one = Eval(1, EvalScoring::kReplicated, 0.2);
  ASSERT_GT(cold_one.at("cold.users"), 0);
  ExpectSame(cold_one, Eval(2, EvalScoring::kSharded, 0.2));
}

TEST_P(ShardedEvalTest, IndexListsAndUnknownItems) {
  // The index's lists (ann_* metrics, their diversity from vectors fetched from the owning ranks).
  RunRanks(1, [&](Communicator& c) {
    ExportOptions e;
    e.run_dir = dir_.File("run");
    e.data = dir_.File("s.h5");
    e.root = dir_.File("exports");
    e.version = "v1";
    e.model = model_;
    ExportEmbeddings(e, c);
  });
  IndexOptions io;
  io.factory = "Flat";
  BuildExportIndex(dir_.File("exports/v1"), io);
  const auto one = Eval(1, EvalScoring::kReplicated, 0, dir_.File("exports"));
  ASSERT_TRUE(one.count("ann_hr@10"));
  ExpectSame(one, Eval(2, EvalScoring::kSharded, 0, dir_.File("exports")));

  // Items the model cannot recall score -inf on the rank that holds them.
  std::map<std::string, double> by_world[4];
  for (int world : {1, 3}) {
    RunRanks(world, [&](Communicator& c) {
      auto ds = Dataset::Open(dir_.File("s.h5"));
      ItemCatalog catalog = LoadItemCatalog(*ds);
      TwoTowerModel model(model_, catalog, PlanItemTables(model_, catalog, c), &c, 1);
      LoadModel(model, dir_.File("run/model"), c);
      at::Tensor unknown = at::zeros({catalog.num_items}, at::kBool);
      for (int64_t i = 0; i < catalog.num_items; i += 7) unknown[i] = true;
      const std::vector<int64_t> counts = TrainItemCounts(*ds, c);
      auto m = EvaluateModel(model,
                             {.data = dir_.File("s.h5"), .batch_size = 64, .item_counts = counts, .unknown = unknown,
                              .scoring = world == 1 ? EvalScoring::kReplicated : EvalScoring::kSharded},
                             c);
      if (c.rank() == 0) by_world[world] = m;
    });
  }
  EXPECT_LT(by_world[1].at("coverage@200"), one.at("coverage@200"));  // unknown items are never listed
  ExpectSame(by_world[1], by_world[3]);
}

INSTANTIATE_TEST_SUITE_P(Categories, ShardedEvalTest, ::testing::Values(16, 0),
                         [](const ::testing::TestParamInfo<int>& p) { return p.param ? "ByCategories" : "ByVectors"; });

}  // namespace
}  // namespace shardrec
