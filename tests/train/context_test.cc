// Context features learnt end to end: on data where the next item is the hour of day it happens at,
// only the request time says what comes next. Trained and evaluated through the real paths (the
// reader's target times, training's next-event requests, evaluation's request after the history).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/rng.h"
#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"
#include "train/trainer.h"
#include "train/evaluate_run.h"

namespace shardrec {
namespace {

// 24 items, "h0" .. "h23": an event's item is the UTC hour it happens at. Events follow each other
// 1 to 25 hours apart, uniformly, so the previous item does not tell the next hour.
void WriteHourData(const std::string& path) {
  DatasetWriterOptions wo;
  wo.timestamps = true;
  auto w = DatasetWriter::Create(path, wo);
  Rng rng(11);
  for (int u = 0; u < 600; ++u) {
    std::vector<int32_t> items;
    std::vector<int64_t> ts;
    int64_t t = 1700000000 + static_cast<int64_t>(rng.Below(86400 * 30));
    for (int k = 0; k < 10; ++k) {
      t += 3600 * (1 + static_cast<int64_t>(rng.Below(24))) + static_cast<int64_t>(rng.Below(3600));
      ts.push_back(t);
      items.push_back(static_cast<int32_t>((t / 3600) % 24));
    }
    w->AddUser("u" + std::to_string(u), items, ts);
  }
  for (int h = 0; h < 24; ++h) w->AddItem("h" + std::to_string(h));
  w->Finish();
}

double TestMrr(const testing::TempDir& dir, bool context) {
  const std::string run = dir.File(context ? "with" : "without");
  TrainOptions o = testing::InvarianceOptions(dir.File("hours.h5"), run, "full");
  o.max_steps = 150;
  o.model.time_buckets = 0;  // the gap buckets would hint at the hour; context alone carries time here
  o.model.context = context;
  o.step.exclude_history = false;  // hours come back
  EvalOptions e;
  e.data = o.data;
  e.run_dir = run;
  e.model = o.model;
  e.seed = o.seed;
  std::map<std::string, double> m;
  RunRanks(1, [&](Communicator& c) {
    Train(o, c);
    m = Evaluate(e, c);
  });
  return m.at("mrr");
}

TEST(Context, TheRequestHourIsLearntAndUsed) {
  testing::TempDir dir;
  WriteHourData(dir.File("hours.h5"));
  const double with = TestMrr(dir, true), without = TestMrr(dir, false);
  std::printf("test MRR with context %.3f, without %.3f\n", with, without);
  EXPECT_GT(with, 0.9);      // the request's hour is the answer
  // A guess among the hours not in the history (evaluation never ranks them) gives about 0.2.
  EXPECT_LT(without, 0.4);
}

}  // namespace
}  // namespace shardrec
