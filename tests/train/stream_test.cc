#include "train/stream.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <map>
#include <vector>

#include "common/rng.h"
#include "distributed/inprocess.h"
#include "model/losses.h"
#include "train/step.h"

namespace shardrec {
namespace {

constexpr int64_t kItems = 40, kUsers = 12, kMaxLen = 5;

ModelConfig SmallConfig() {
  ModelConfig c;
  c.dim = 8;
  c.blocks = 1;
  c.heads = 2;
  c.max_len = kMaxLen;
  c.dropout = 0.3;  // masks keyed by row: the same at any world size
  c.time_buckets = 4;
  c.context = false;
  return c;
}

// Users 0..5 start with a history of 3 events; users 6..11 with none. Then bursts: a user's events
// come several in a row (up to 13, more than max_len), so a step holds users with many new events.
std::vector<StreamEvent> Events(int64_t n) {
  Rng rng(7);
  std::vector<StreamEvent> out;
  int64_t ts = 1000;
  while (static_cast<int64_t>(out.size()) < n) {
    const int64_t user = static_cast<int64_t>(rng.Below(kUsers)), burst = 1 + static_cast<int64_t>(rng.Below(13));
    for (int64_t k = 0; k < burst && static_cast<int64_t>(out.size()) < n; ++k) {
      out.push_back({user, static_cast<int64_t>(rng.Below(kItems)), ts += 1 + static_cast<int64_t>(rng.Below(600))});
    }
  }
  return out;
}

UserHistories StartHistories() {
  UserHistories h(kUsers);
  for (int64_t u = 0; u < 6; ++u) {
    for (int64_t k = 0; k < 3; ++k) h.Append({u, (u * 7 + k * 3) % kItems, 100 + k});
  }
  return h;
}

struct Trained {
  int64_t learnt = 0, steps = 0, replay = 0;
  std::vector<float> dense, rows;  // every dense value; every item row (rank 0 gathers nothing: 1 rank only)
  std::vector<double> losses;
};

// Streams `events` through a learner at `world` ranks and returns what rank 0 saw.
Trained Stream(int world, const std::vector<StreamEvent>& events, const std::string& loss_kind) {
  Trained out;
  RunRanks(world, [&](Communicator& comm) {
    const ModelConfig c = SmallConfig();
    ItemCatalog catalog;
    catalog.num_items = kItems;
    TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/3);
    model.train(true);
    torch::optim::AdamW adam(model.dense_parameters(), torch::optim::AdamWOptions(3e-3));
    StreamLearnerOptions so;
    so.batch_events = 16;
    so.replay = 0.5;
    so.seed = 9;
    so.lr = 3e-3;
    RetrievalLossOptions lo;
    lo.full = loss_kind == "full";
    lo.negatives = 8;
    lo.temperature = 0.1;
    lo.max_positions_per_rank = StreamLearner::MaxPositions(so, kMaxLen, 1);
    UserHistories h = StartHistories();
    std::vector<int64_t> counts(kItems, 0);
    for (int64_t u = 0; u < kUsers; ++u) {
      for (int64_t it : h.items(u)) ++counts[it];
    }
    RetrievalLoss loss(lo, counts, c10::Device(at::kCPU));
    StepOptions st;
    st.lr = 3e-3;
    st.warmup_steps = 0;
    TrainStep step(model, loss, adam, comm, st);
    StreamLearner learner(model, loss, step, h, counts, comm, so);
    std::vector<double> losses;
    for (size_t i = 0; i < events.size(); i += 37) {  // arrivals in uneven chunks
      learner.Add(std::span<const StreamEvent>(events.data() + i, std::min<size_t>(37, events.size() - i)));
      losses.push_back(learner.last_loss());
    }
    learner.Flush();
    if (comm.rank() != 0) return;
    out.learnt = learner.events_learnt();
    out.steps = learner.steps();
    out.replay = learner.replay_rows();
    out.losses = losses;
    for (const auto& [name, p] : model.named_dense_parameters()) {
      at::Tensor f = p.detach().contiguous().view({-1});
      // The key bias shifts every logit of a query's softmax alike: its gradient is zero but for
      // rounding, which Adam's normalisation turns into full steps that depend on the summation
      // order. Left out of the comparison.
      if (name.find("qkv.bias") != std::string::npos) f = at::cat({f.narrow(0, 0, c.dim), f.narrow(0, 2 * c.dim, c.dim)});
      out.dense.insert(out.dense.end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    }
    if (world == 1) {
      const at::Tensor w = model.embeddings().LocalWeights("item_id").contiguous().view({-1});
      out.rows.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    }
  });
  return out;
}

// Every new event is a target exactly once, except a history's very first event (nothing before
// it to predict it from): an independent count from the events themselves.
TEST(StreamLearner, EveryNewEventIsLearntOnce) {
  const std::vector<StreamEvent> events = Events(400);
  std::map<int64_t, bool> started;
  for (int64_t u = 0; u < 6; ++u) started[u] = true;
  int64_t expected = 0;
  for (const StreamEvent& e : events) {
    if (started[e.user]) ++expected;
    started[e.user] = true;
  }
  const Trained t = Stream(1, events, "full");
  EXPECT_EQ(t.learnt, expected);
  EXPECT_GE(t.steps, 400 / 16);  // a step at least every 16 events
  EXPECT_GT(t.replay, 0);
  for (double l : t.losses) EXPECT_TRUE(std::isfinite(l));
}

// Two ranks split every step's rows and train what one rank trains (dropout on), under both
// losses.
TEST(StreamLearner, TwoRanksTrainWhatOneRankTrains) {
  const std::vector<StreamEvent> events = Events(200);
  for (const char* kind : {"full", "sampled"}) {
    const Trained one = Stream(1, events, kind), two = Stream(2, events, kind);
    ASSERT_EQ(one.steps, two.steps) << kind;
    ASSERT_EQ(one.learnt, two.learnt) << kind;
    ASSERT_EQ(one.losses.size(), two.losses.size());
    for (size_t i = 0; i < one.losses.size(); ++i) EXPECT_NEAR(one.losses[i], two.losses[i], 1e-4) << kind << " chunk " << i;
    ASSERT_EQ(one.dense.size(), two.dense.size());
    for (size_t i = 0; i < one.dense.size(); ++i) ASSERT_NEAR(one.dense[i], two.dense[i], 2e-5) << kind << " dense " << i;
  }
}

// Learning moves the model: the stream's items' rows change, and the loss falls over a stream that
// repeats one pattern (each user's next item is the successor of the last).
TEST(StreamLearner, LossFallsOnARepeatedPattern) {
  std::vector<StreamEvent> events;
  int64_t ts = 1000;
  for (int64_t round = 0; round < 40; ++round) {
    for (int64_t u = 0; u < kUsers; ++u) events.push_back({u, (u + round) % kItems, ts += 60});
  }
  const Trained t = Stream(1, events, "full");
  ASSERT_GE(t.losses.size(), 10u);
  double first = 0, last = 0;
  for (size_t i = 1; i < 4; ++i) first += t.losses[i];
  for (size_t i = t.losses.size() - 3; i < t.losses.size(); ++i) last += t.losses[i];
  EXPECT_LT(last, 0.7 * first);
}

}  // namespace
}  // namespace shardrec
