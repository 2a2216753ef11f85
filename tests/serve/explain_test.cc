#include "serve/explain.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "io/synth.h"
#include "model/history.h"
#include "tests/test_util.h"
#include "eval/evaluate.h"
#include "model/catalogue.h"
#include "train/trainer.h"
#include "train/model_files.h"

namespace shardrec {
namespace {

// The model's score of each candidate for one history, encoded on its own (the oracle: one
// forward pass per history, no batching).
std::vector<float> Scores(TwoTowerModel& model, const std::vector<int64_t>& items, const std::vector<int64_t>& stamps,
                          const std::vector<int64_t>& candidates, int64_t request = kUnknownTime) {
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(items.size());
  const std::vector<int64_t> len = {n}, req = {request};
  at::Tensor u = model.EncodeHistory(MakeHistoryBatch(1, n, items, stamps, len, req, model.config().history_features(), torch::kCPU))[0];
  const ItemVectors all = EncodeCatalogue(model, model.catalog().num_items);
  std::vector<float> out;
  for (int64_t c : candidates) out.push_back(torch::dot(u, all.output[c]).item<float>());
  return out;
}

class ExplainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    so_.users = 3000;
    so_.items = 300;
    so_.events = 60000;
    so_.transition = 0.5;
    so_.successors = 2;
    so_.content_dim = 0;
    GenerateSynthetic(dir_.File("s.h5"), so_);
  }
  ModelConfig Config() const {
    ModelConfig mc;
    mc.dim = 32;
    mc.blocks = 1;
    mc.heads = 1;
    mc.max_len = 20;
    mc.dropout = 0.2;
    mc.positions_from_newest = true;
    mc.cosine = false;
    return mc;
  }
  SynthOptions so_;
  testing::TempDir dir_;
};

// Each contribution equals the score with the whole history less the score with that event left
// out, each history encoded alone; histories longer than max_len keep their last max_len events.
TEST_F(ExplainTest, ContributionsAreLeaveOneOutScoreDrops) {
  RunRanks(1, [&](Communicator& c) {
    auto ds = Dataset::Open(dir_.File("s.h5"));
    ItemCatalog cat = LoadItemCatalog(*ds);
    ModelConfig mc = Config();
    mc.max_len = 6;
    TwoTowerModel model(mc, cat, PlanItemTables(mc, cat, c), &c, 3);
    model.train(false);
    const std::vector<int64_t> items = {5, 17, 3, 99, 42, 7, 250, 11};  // 8 events: the last 6 count
    const std::vector<int64_t> stamps = {100, 200, 4000, 4100, 90000, 90060, 90120, 200000};
    const std::vector<int64_t> candidates = {1, 17, 200, 1};  // repeats and a history item are fine
    // Timestamps with a request time (context: the request gap follows the last event kept), without
    // one, and no timestamps at all.
    for (int variant : {0, 1, 2}) {
      const bool with_time = variant < 2;
      const int64_t request = variant == 0 ? 260000 : kUnknownTime;
      SCOPED_TRACE(variant == 0 ? "timestamps and a request" : with_time ? "timestamps" : "no timestamps");
      const std::vector<int64_t> ts = with_time ? stamps : std::vector<int64_t>();
      at::Tensor got = HistoryContributions(model, items, ts, candidates, request);
      ASSERT_EQ(got.size(0), 6);
      ASSERT_EQ(got.size(1), 4);
      const std::vector<int64_t> kept(items.end() - 6, items.end());
      const std::vector<int64_t> kept_ts = with_time ? std::vector<int64_t>(stamps.end() - 6, stamps.end()) : ts;
      const std::vector<float> whole = Scores(model, kept, kept_ts, candidates, request);
      for (int64_t j = 0; j < 6; ++j) {
        std::vector<int64_t> without = kept, without_ts = kept_ts;
        without.erase(without.begin() + j);
        if (with_time) without_ts.erase(without_ts.begin() + j);
        const std::vector<float> less = Scores(model, without, without_ts, candidates, request);
        for (size_t k = 0; k < candidates.size(); ++k) {
          EXPECT_NEAR(got[j][k].item<float>(), whole[k] - less[k], 1e-4) << "event " << j << " candidate " << k;
        }
      }
    }
    // One event carries its whole score.
    at::Tensor one = HistoryContributions(model, {42}, {}, {1, 2});
    const std::vector<float> s = Scores(model, {42}, {}, {1, 2});
    EXPECT_NEAR(one[0][0].item<float>(), s[0], 1e-5);
    EXPECT_NEAR(one[0][1].item<float>(), s[1], 1e-5);
    EXPECT_EQ(HistoryContributions(model, {1, 2}, {}, {}).sizes(), (std::vector<int64_t>{2, 0}));
    testing::ExpectUserError([&] { HistoryContributions(model, {}, {}, {1}); }, {"empty"});
    testing::ExpectUserError([&] { HistoryContributions(model, {1}, {}, {300}); }, {"outside the catalogue"});
  });
}

// On data with planted item -> successor transitions, a trained model's recalled item that is the
// planted successor of the history's last event is explained first by that event in at least 80%
// of cases. The generator follows a transition from the previous event only, so the last event is
// the one a recalled successor can owe to its predecessor; an item that merely happens to be a
// successor of an older event (same topic, often popular) is counted too and printed, not judged.
TEST_F(ExplainTest, PlantedSuccessorsAreExplainedByTheirPredecessor) {
  TrainOptions o;
  o.data = dir_.File("s.h5");
  o.run_dir = dir_.File("run");
  o.epochs = 8;
  o.batch_size = 128;
  o.loss = "full";
  o.eval_every = 0;
  o.step.exclude_history = true;
  o.model = Config();
  o.log_every_seconds = 1e9;
  const std::vector<std::vector<int32_t>> successors = SyntheticSuccessors(so_);
  int64_t cases = 0, first = 0, last_cases = 0, last_first = 0;
  RunRanks(1, [&](Communicator& c) {
    Train(o, c);
    auto ds = Dataset::Open(o.data);
    ItemCatalog cat = LoadItemCatalog(*ds);
    TwoTowerModel model(o.model, cat, PlanItemTables(o.model, cat, c), &c, 1);
    LoadModel(model, o.run_dir + "/model", c);
    model.train(false);
    torch::NoGradGuard no_grad;
    const ItemVectors all = EncodeCatalogue(model, cat.num_items);
    // Dense item id -> generator item (raw id i + 1 is generator item i).
    const std::vector<std::string> raw = ds->ReadItemRawIds(0, cat.num_items);
    std::vector<int64_t> gen(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) gen[i] = std::stoll(raw[i]) - 1;
    for (int64_t u = 0; u < 400; ++u) {
      const int64_t b = ds->user_offsets()[u], e = ds->user_offsets()[u + 1];
      std::vector<int32_t> events = ds->ReadItems(b, e);
      std::vector<int64_t> stamps = ds->ReadTimestamps(b, e);
      const int64_t n = std::min<int64_t>(o.model.max_len, static_cast<int64_t>(events.size()));
      std::vector<int64_t> hist(events.end() - n, events.end());
      std::vector<int64_t> ts = stamps.empty() ? stamps : std::vector<int64_t>(stamps.end() - n, stamps.end());
      // The model's top 10, the whole history excluded.
      const std::vector<int64_t> len = {n};
      at::Tensor v = model.EncodeHistory(MakeHistoryBatch(1, n, hist, ts, len, {}, o.model.history_features(), torch::kCPU))[0];
      at::Tensor scores = torch::matmul(all.output, v);
      for (int32_t it : events) scores[it] = -1e30f;
      at::Tensor top = std::get<1>(scores.topk(10)).contiguous();
      const std::vector<int64_t> recalled(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + 10);
      at::Tensor contrib = HistoryContributions(model, hist, ts, recalled);
      for (size_t k = 0; k < recalled.size(); ++k) {
        std::set<int64_t> predecessors;  // positions in hist of the events it is a planted successor of
        for (int64_t j = 0; j < n; ++j) {
          const auto& s = successors[gen[hist[j]]];
          if (std::find(s.begin(), s.end(), static_cast<int32_t>(gen[recalled[k]])) != s.end()) predecessors.insert(j);
        }
        if (predecessors.empty()) continue;
        ++cases;
        const int64_t best = contrib.select(1, static_cast<int64_t>(k)).argmax().item<int64_t>();
        first += predecessors.count(best);
        if (predecessors.count(n - 1)) ++last_cases, last_first += best == n - 1;
      }
    }
  });
  ASSERT_GE(last_cases, 100) << "too few recalled successors of the last event to judge";
  EXPECT_GE(static_cast<double>(last_first) / static_cast<double>(last_cases), 0.8) << last_first << " of " << last_cases;
  std::printf("recalled successor of the last event explained first by it: %lld of %lld (%.1f%%); successor of any "
              "history event explained first by one of its predecessors: %lld of %lld (%.1f%%)\n",
              static_cast<long long>(last_first), static_cast<long long>(last_cases),
              100.0 * static_cast<double>(last_first) / static_cast<double>(last_cases), static_cast<long long>(first),
              static_cast<long long>(cases), 100.0 * static_cast<double>(first) / static_cast<double>(cases));
}

}  // namespace
}  // namespace shardrec
