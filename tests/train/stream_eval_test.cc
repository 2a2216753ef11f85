#include "train/stream_eval.h"

#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "io/synth.h"
#include "io/time_cut.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

StreamEvalOptions SmallProtocol(const std::string& data, const std::string& run_dir) {
  StreamEvalOptions o;
  o.train.data = data;
  o.train.run_dir = run_dir;
  o.train.epochs = 2;
  o.train.batch_size = 64;
  o.train.eval_every = 0;
  o.train.log_every_seconds = 1000;
  o.train.model.dim = 16;
  o.train.model.blocks = 1;
  o.train.model.heads = 2;
  o.train.model.max_len = 10;
  o.train.model.dropout = 0;
  o.modes = "frozen,nightly,3600s,5min";
  o.learner.batch_events = 32;
  o.rank_batch = 50;
  return o;
}

// The protocol's bookkeeping against counts made from the file itself: the cut, the events ranked
// (those whose user had an earlier event), the events learnt once each, the refreshes; then a
// second call reuses the run and reproduces the frozen mode's metrics.
TEST(StreamEval, CountsAgreeWithTheData) {
  testing::TempDir dir;
  SynthOptions so;
  so.users = 300;
  so.items = 200;
  so.topics = 8;
  so.drift = 0.5;
  so.time_scale = 24;
  so.seed = 4;
  const std::string data = dir.File("drift.h5");
  const SynthReport synth = GenerateSynthetic(data, so);
  auto ds = Dataset::Open(data);
  int64_t after = 0, ranked = 0;
  std::set<int64_t> days, hours, fives;
  const int64_t cut = synth.drift_time;
  ForEachUserBlock(*ds, [&](int64_t u, int64_t v, const std::vector<int32_t>&, const std::vector<int64_t>& ts) {
    const auto& off = ds->user_offsets();
    for (int64_t w = u; w < v; ++w) {
      for (int64_t e = off[w] - off[u]; e < off[w + 1] - off[u]; ++e) {
        if (ts[e] < cut) continue;
        ++after;
        if (e > off[w] - off[u]) ++ranked;  // an earlier event of the user, before the cut or not
        days.insert(ts[e] / 86400), hours.insert(ts[e] / 3600), fives.insert(ts[e] / 300);
      }
    }
  });
  ASSERT_GT(after, 100);
  const StreamEvalOptions o = SmallProtocol(data, dir.File("run"));
  StreamEvalReport r;
  RunRanks(1, [&](Communicator& comm) { r = RunStreamEval(o, comm, nullptr); });
  EXPECT_EQ(r.cut, cut);
  EXPECT_TRUE(r.trained);
  EXPECT_EQ(r.events_after, after);
  EXPECT_EQ(r.events_before + r.events_after, ds->info().num_events);
  ASSERT_EQ(r.modes.size(), 4u);
  for (const auto& m : r.modes) {
    EXPECT_EQ(m.ranked, ranked) << m.mode;
    EXPECT_GT(m.hr10, 0) << m.mode;
    EXPECT_LE(m.ndcg10, m.hr10) << m.mode;
  }
  EXPECT_EQ(r.modes[0].steps, 0);
  EXPECT_EQ(r.modes[0].refreshes, 0);
  EXPECT_EQ(r.modes[1].refreshes, static_cast<int64_t>(days.size()) - 1);
  EXPECT_EQ(r.modes[2].refreshes, static_cast<int64_t>(hours.size()) - 1);
  EXPECT_EQ(r.modes[3].refreshes, static_cast<int64_t>(fives.size()) - 1);
  // Streaming learns each replayed event once (every one has an earlier event here, or is a
  // history's first, which nothing predicts).
  EXPECT_EQ(r.modes[2].learnt, ranked);
  EXPECT_EQ(r.modes[3].learnt, ranked);
  EXPECT_GE(r.modes[3].steps, r.modes[2].steps);

  StreamEvalOptions again = o;
  again.modes = "frozen";
  StreamEvalReport r2;
  RunRanks(1, [&](Communicator& comm) { r2 = RunStreamEval(again, comm, nullptr); });
  EXPECT_FALSE(r2.trained);
  ASSERT_EQ(r2.modes.size(), 1u);
  EXPECT_EQ(r2.modes[0].hr10, r.modes[0].hr10);
  EXPECT_EQ(r2.modes[0].ndcg10, r.modes[0].ndcg10);
}

TEST(StreamEval, RejectsABadMode) {
  EXPECT_EQ(StreamModeInterval("90s"), 90);
  EXPECT_EQ(StreamModeInterval("nightly"), -1);
  testing::ExpectUserError([] { StreamModeInterval("weekly"); }, {"--stream-modes", "weekly"});
  testing::ExpectUserError([] { StreamModeInterval("0s"); }, {"--stream-modes"});
}

}  // namespace
}  // namespace shardrec
