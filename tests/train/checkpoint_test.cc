#include "train/checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>

#include "common/file_util.h"
#include "common/json.h"
#include "common/strings.h"
#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "io/h5.h"
#include "io/synth.h"
#include "model/two_tower.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"
#include "serve/export.h"
#include "train/evaluate_run.h"
#include "train/run_dir.h"
#include "model/catalogue.h"

namespace shardrec {
namespace {

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthOptions so;
    so.users = 300;
    so.items = 120;
    so.events = 4500;
    so.content_dim = 4;
    GenerateSynthetic(dir_.File("s.h5"), so);
  }
  TrainOptions Options(const std::string& run, int64_t max_steps, const std::string& loss = "sampled") {
    TrainOptions o = testing::InvarianceOptions(dir_.File("s.h5"), dir_.File(run), loss);
    o.max_steps = max_steps;
    o.model.embedding_optimizer.type = OptimizerType::kAdam;  // the richest sparse state
    o.model.dropout = 0.3;  // masks drawn on every rank: a resumed run must draw the same ones
    o.log_every_seconds = 10;  // the default: console lines by the clock
    return o;
  }
  TrainResult Run(int world, const TrainOptions& o) {
    TrainResult out;
    RunRanks(world, [&](Communicator& c) {
      TrainResult r = Train(o, c);
      if (c.rank() == 0) out = r;
    });
    return out;
  }
  std::map<std::string, double> Eval(int world, const std::string& run) {
    std::map<std::string, double> out;
    RunRanks(world, [&](Communicator& c) {
      EvalOptions e;
      e.data = dir_.File("s.h5");
      e.run_dir = dir_.File(run);
      e.model = Options(run, 0).model;
      auto m = Evaluate(e, c);
      if (c.rank() == 0) out = m;
    });
    return out;
  }
  // The run's metrics file: step -> loss of its training lines (the last line of a step).
  std::map<int64_t, double> TrainLines(const std::string& run) {
    std::map<int64_t, double> out;
    const std::string text = ReadFileToString(RunDir(dir_.File(run)).metrics());
    for (const auto& line : SplitText(text, "\n")) {
      if (line.empty()) continue;
      const JsonValue j = JsonValue::Parse(std::string(line), "metrics.jsonl");
      if (j.at("split").str() == "train") out[j.at("step").integer()] = j.at("loss").num();
    }
    return out;
  }
  testing::TempDir dir_;
};

TEST_F(CheckpointTest, ResumeEqualsOneGo) {
  // 14 steps in one go == 7 steps, stop, resume, 7 steps (epochs have 5 batches: crosses epochs).
  for (int world : {1, 2}) {
    SCOPED_TRACE("world " + std::to_string(world));
    const std::string a = "a" + std::to_string(world), b = "b" + std::to_string(world);
    TrainResult whole = Run(world, Options(a, 14));
    TrainResult first = Run(world, Options(b, 7));
    TrainOptions more = Options(b, 14);
    more.resume = true;
    TrainResult second = Run(world, more);
    std::vector<double> joined = first.losses;
    joined.insert(joined.end(), second.losses.begin(), second.losses.end());
    ASSERT_EQ(joined.size(), whole.losses.size());
    for (size_t i = 0; i < joined.size(); ++i) EXPECT_DOUBLE_EQ(joined[i], whole.losses[i]) << "step " << i + 1;
    EXPECT_EQ(Eval(world, a), Eval(world, b));
    // The metrics file logs by steps (a line per read of the loss, whatever the console's
    // --log-every): past the resumed run's first read, its lines are the uninterrupted run's.
    const std::map<int64_t, double> whole_lines = TrainLines(a), resumed_lines = TrainLines(b);
    ASSERT_TRUE(whole_lines.count(14) && resumed_lines.count(14));
    EXPECT_EQ(resumed_lines.at(14), whole_lines.at(14));
    EXPECT_EQ(whole_lines.size(), 3u) << "reads at the epoch ends (5, 10) and the last step";
  }
}

// A stop request (a signal) that reaches one rank of two stops both at the same step; the run
// leaves a checkpoint there, and resuming it reaches, bitwise, the losses and the model of a run
// that was never stopped.
TEST_F(CheckpointTest, AStoppedRunResumesToTheUninterruptedOne) {
  TrainOptions whole_options = Options("whole", 14);
  whole_options.eval_every = 1;
  const TrainResult whole = Run(2, whole_options);
  std::atomic<int> signal{15};
  std::vector<TrainResult> stopped(2);
  RunRanks(2, [&](Communicator& c) {
    TrainOptions o = Options("stopped", 14);
    o.eval_every = 1;
    if (c.rank() == 1) o.stop_signal = &signal;  // rank 0 never sees it
    stopped[c.rank()] = Train(o, c);
  });
  for (const TrainResult& r : stopped) {
    EXPECT_EQ(r.stop_signal, 15);
    EXPECT_EQ(r.steps, 5);  // the first loss read: the end of the first epoch
  }
  EXPECT_EQ(stopped[0].last_checkpoint, dir_.File("stopped/checkpoints/step-000000005"));
  EXPECT_FALSE(PathExists(dir_.File("stopped/model")));
  TrainOptions more = Options("stopped", 14);
  more.eval_every = 1;
  more.resume = true;
  const TrainResult rest = Run(2, more);
  EXPECT_EQ(rest.stop_signal, 0);
  std::vector<double> joined = stopped[0].losses;
  joined.insert(joined.end(), rest.losses.begin(), rest.losses.end());
  EXPECT_EQ(joined, whole.losses);
  EXPECT_EQ(rest.best_valid_ndcg10, whole.best_valid_ndcg10);
  EXPECT_EQ(Eval(2, "stopped"), Eval(2, "whole"));
}

// Resuming on a dataset with the same item ids but other events goes on, and says so.
TEST_F(CheckpointTest, ResumingOnOtherEventsIsReported) {
  SynthOptions so;
  so.users = 300;
  so.items = 120;
  so.events = 4500;
  so.content_dim = 4;
  so.seed = 8;  // other events, the same item ids
  GenerateSynthetic(dir_.File("other.h5"), so);
  struct Warnings : TrainingSink {
    std::vector<std::string> seen;
    void OnWarning(const std::string& m) override { seen.push_back(m); }
  };
  Run(1, Options("r", 5));
  for (const bool other : {false, true}) {
    TrainOptions more = Options("r", other ? 10 : 7);
    more.resume = true;
    if (other) more.data = dir_.File("other.h5");
    Warnings w;
    RunRanks(1, [&](Communicator& c) { Train(more, c, &w); });
    const bool said = std::any_of(w.seen.begin(), w.seen.end(), [](const std::string& m) {
      return m.find("resuming on other events") != std::string::npos && m.find("other.h5") != std::string::npos;
    });
    EXPECT_EQ(said, other) << (w.seen.empty() ? "" : w.seen[0]);
  }
}

// A signal that arrives mid-epoch (here: raised by rank 0's sink at its first progress report,
// step 2, with losses read every 2 steps) stops both ranks at the next read, step 4 of a 5-step
// epoch; the checkpoint resumes inside the epoch and reaches the uninterrupted run bitwise.
TEST_F(CheckpointTest, AStopInsideAnEpochResumesThere) {
  struct RaiseAtFirstReport : TrainingSink {
    std::atomic<int>* signal;
    void OnProgress(const ProgressReport&) override { signal->store(2); }
  };
  auto options = [&](const std::string& run) {
    TrainOptions o = Options(run, 12);
    o.loss_every_steps = 2;
    o.log_every_seconds = 0;
    return o;
  };
  const TrainResult whole = Run(2, options("whole"));
  std::atomic<int> signal{0};
  RaiseAtFirstReport sink;
  sink.signal = &signal;
  TrainResult stopped;
  RunRanks(2, [&](Communicator& c) {
    TrainOptions o = options("stopped");
    o.stop_signal = &signal;
    TrainResult r = Train(o, c, c.rank() == 0 ? &sink : nullptr);
    if (c.rank() == 0) stopped = r;
  });
  EXPECT_EQ(stopped.stop_signal, 2);
  EXPECT_EQ(stopped.steps, 4);
  TrainOptions more = options("stopped");
  more.resume = true;
  const TrainResult rest = Run(2, more);
  std::vector<double> joined = stopped.losses;
  joined.insert(joined.end(), rest.losses.begin(), rest.losses.end());
  EXPECT_EQ(joined, whole.losses);
  EXPECT_EQ(Eval(2, "stopped"), Eval(2, "whole"));
}

// --time-budget stops before an epoch that would end past it. Here rank 1's budget is already spent
// after the first epoch and rank 0's is not: both stop there (the decision is agreed), validated,
// with the best model saved; the checkpoint resumes at the second epoch and, without a budget,
// reaches the uninterrupted run bitwise.
TEST_F(CheckpointTest, ATimeBudgetStopsAtAnEpochBoundaryOnEveryRank) {
  struct Record : TrainingSink {
    int calls = 0;
    double budget = 0;
    void OnTimeBudget(double, double, double b) override { ++calls, budget = b; }
  };
  TrainOptions whole_options = Options("whole", 14);
  whole_options.eval_every = 1;
  const TrainResult whole = Run(2, whole_options);
  Record sink;
  std::vector<TrainResult> stopped(2);
  RunRanks(2, [&](Communicator& c) {
    TrainOptions o = Options("budget", 14);
    o.eval_every = 1;
    o.time_budget_seconds = c.rank() == 1 ? 1e-6 : 1e6;
    stopped[c.rank()] = Train(o, c, c.rank() == 0 ? &sink : nullptr);
  });
  for (const TrainResult& r : stopped) {
    EXPECT_TRUE(r.out_of_time);
    EXPECT_EQ(r.steps, 5);  // one epoch of 5 batches
    EXPECT_EQ(r.best_epoch, 0);
  }
  EXPECT_EQ(sink.calls, 1);
  EXPECT_EQ(sink.budget, 1e6);  // rank 0 reports its own budget
  EXPECT_TRUE(PathExists(dir_.File("budget/model")));
  TrainOptions more = Options("budget", 14);
  more.eval_every = 1;
  more.resume = true;
  const TrainResult rest = Run(2, more);
  EXPECT_FALSE(rest.out_of_time);
  std::vector<double> joined = stopped[0].losses;
  joined.insert(joined.end(), rest.losses.begin(), rest.losses.end());
  EXPECT_EQ(joined, whole.losses);
  EXPECT_EQ(Eval(2, "budget"), Eval(2, "whole"));
  // No budget (0) and a generous one never stop a run.
  TrainOptions roomy = Options("roomy", 14);
  roomy.time_budget_seconds = 1e6;
  EXPECT_FALSE(Run(1, roomy).out_of_time);
  roomy.time_budget_seconds = -1;
  testing::ExpectUserError([&] { Run(1, roomy); }, {"--time-budget"});
}

// --max-len 0: the 90th percentile of the training lengths (rounded up to 10, within [50, 200]) for
// a fresh run; PREV's length for a warm start, from a run, its model or a checkpoint.
TEST_F(CheckpointTest, MaxLenAutoFollowsTheDataOrThePreviousRun) {
  {
    SynthOptions so;  // long histories: ~120 events per user, spread by the generator
    so.users = 200;
    so.items = 300;
    so.events = 24000;
    GenerateSynthetic(dir_.File("long.h5"), so);
  }
  for (const char* data : {"s.h5", "long.h5"}) {
    SCOPED_TRACE(data);
    auto ds = Dataset::Open(dir_.File(data));
    std::vector<int64_t> lengths;
    for (int64_t u = 0; u < ds->info().num_users; ++u) {
      const int64_t n = ds->user_length(u);
      lengths.push_back(n >= 3 ? n - 2 : n);  // validation and test events are not training events
    }
    std::sort(lengths.begin(), lengths.end());
    const int64_t p90 = lengths[static_cast<size_t>(std::ceil(0.9 * static_cast<double>(lengths.size()))) - 1];
    const MaxLenChoice c = ChooseMaxLen(dir_.File(data), "", 16);
    EXPECT_EQ(c.max_len, std::min<int64_t>(200, std::max<int64_t>(50, (p90 + 9) / 10 * 10))) << "p90 " << p90;
    EXPECT_NE(c.reason.find("at most " + std::to_string(p90) + " training events"), std::string::npos) << c.reason;
  }
  EXPECT_GT(ChooseMaxLen(dir_.File("long.h5"), "", 16).max_len, 50);  // the test data spans the range
  TrainOptions o = Options("prev", 6);
  o.checkpoint_every = 3;
  Run(1, o);  // max-len 10
  RunRanks(1, [&](Communicator& c) {  // an export root, as a nightly warm start names it
    ExportOptions e;
    e.run_dir = dir_.File("prev");
    e.data = dir_.File("s.h5");
    e.root = dir_.File("exports");
    e.model = o.model;
    ExportEmbeddings(e, c);
  });
  for (const std::string prev : {"prev", "prev/model", "prev/checkpoints/step-000000003", "exports"}) {
    SCOPED_TRACE(prev);
    EXPECT_EQ(ChooseMaxLen(dir_.File("s.h5"), dir_.File(prev), 16).max_len, 10);
  }
  testing::ExpectUserError([&] { ChooseMaxLen(dir_.File("s.h5"), dir_.File("prev"), 24); }, {"dense.h5: the model has dim 16, this run --dim 24"});
  MakeDirs(dir_.File("empty"));
  testing::ExpectUserError([&] { ChooseMaxLen(dir_.File("s.h5"), dir_.File("empty"), 16); }, {"--max-len N"});
}

// A fixed seed reproduces a run bitwise, dropout included, at one and at two ranks; another seed
// gives other masks (so other losses from the first step on).
TEST_F(CheckpointTest, TheSameSeedGivesTheSameRun) {
  for (int world : {1, 2}) {
    SCOPED_TRACE("world " + std::to_string(world));
    const std::string w = std::to_string(world);
    TrainOptions o = Options("x" + w, 4);
    const std::vector<double> first = Run(world, o).losses;
    o.run_dir = dir_.File("y" + w);
    EXPECT_EQ(Run(world, o).losses, first);
    o.run_dir = dir_.File("z" + w);
    o.seed += 1;
    const std::vector<double> other = Run(world, o).losses;
    ASSERT_EQ(other.size(), first.size());
    EXPECT_NE(other[0], first[0]);
  }
}

// A model saved with tied item vectors has no input table: loading it into a model with separate
// input vectors is an error naming the table, on every rank (no rank keeps random rows or hangs).
TEST_F(CheckpointTest, LoadingIntoAModelWithAnotherTableIsAnError) {
  Run(2, Options("tied", 3));
  TrainOptions more = Options("tied", 6);
  more.resume = true;
  more.model.separate_input_vectors = true;
  testing::ExpectUserError([&] { Run(2, more); }, {"item_input_id", "--input-vectors"});
}

TEST_F(CheckpointTest, ReshardFourRanksToTwoAndOne) {
  for (const std::string sharding : {"row_wise", "column_wise"}) {
    SCOPED_TRACE(sharding);
    const std::string run = "r4-" + sharding;
    TrainOptions base = Options(run, 6);
    base.model.sharding = sharding;  // shards really split: every rank's file matters
    base.model.dropout = 0.5;          // masks keyed by row, not rank: the same at every world size
    Run(4, base);
    const auto saved = Eval(4, run);
    for (int world : {2, 1}) {
      SCOPED_TRACE("world " + std::to_string(world));
      // Resume with no further steps: the very same model, whatever the world size.
      TrainOptions o = base;
      o.resume = true;
      Run(world, o);
      EXPECT_EQ(Eval(world, run), saved);
    }
  }
  // And training on from the 4-rank checkpoint with 2 ranks matches 4 ranks going on.
  const std::string copy = dir_.File("r4b");
  ASSERT_EQ(testing::RunCommand("cp -r " + dir_.File("r4-row_wise") + " " + copy).exit_code, 0);
  TrainOptions o4 = Options("r4-row_wise", 10);
  o4.model.sharding = "row_wise";
  o4.model.dropout = 0.0;
  o4.resume = true;
  TrainResult on4 = Run(4, o4);
  TrainOptions o2 = Options("r4b", 10);
  o2.model.sharding = "row_wise";
  o2.model.dropout = 0.0;
  o2.resume = true;
  TrainResult on2 = Run(2, o2);
  ASSERT_EQ(on4.losses.size(), 4u);
  for (size_t i = 0; i < on4.losses.size(); ++i) EXPECT_NEAR(on4.losses[i], on2.losses[i], 1e-4 * on4.losses[i]);
}

// Loading reads what a rank keeps: a checkpoint saved at 2 ranks, loaded at 1, 2 and 3 ranks with
// row-wise tables, each rank's HDF5 reads (h5::ThreadBytesRead) cover its own rows' vectors and
// optimizer state, every file's row ids and the dense parameters, not the other ranks' rows. The
// loaded model is the saved one, row for row.
TEST(CheckpointLoad, EachRankReadsOnlyTheRowsItOwns) {
  testing::TempDir dir;
  ItemCatalog catalog;
  catalog.num_items = 30000;
  ModelConfig mc;
  mc.dim = 16;
  mc.blocks = 1;
  mc.max_len = 8;
  mc.sharding = "row_wise";
  mc.embedding_optimizer.type = OptimizerType::kAdam;  // vectors + two moments: 3 x 16 floats a row
  const int64_t row_bytes = 3 * 16 * 4;
  RunRanks(2, [&](Communicator& c) {
    TwoTowerModel m(mc, catalog, PlanItemTables(mc, catalog, c), &c, 3);
    SaveCheckpoint(dir.File("saved"), m, nullptr, nullptr, c);
  });
  const auto saved = testing::ReadSavedModel(dir.File("saved"));
  for (int world : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(world) + " ranks");
    std::vector<int64_t> bytes(static_cast<size_t>(world)), owned(static_cast<size_t>(world));
    RunRanks(world, [&](Communicator& c) {
      TwoTowerModel m(mc, catalog, PlanItemTables(mc, catalog, c), &c, 4);  // another seed: every row must be loaded
      int64_t dense = 0;
      for (const auto& p : m.dense_parameters()) dense += p.numel() * 4;
      const int64_t before = h5::ThreadBytesRead();
      LoadCheckpoint(dir.File("saved"), m, nullptr, nullptr, c, {.verified = true});
      bytes[c.rank()] = h5::ThreadBytesRead() - before - dense;
      const Shard* s = m.embeddings().LocalShard("item_id");
      owned[c.rank()] = s ? s->row_end - s->row_begin : 0;
      SaveCheckpoint(dir.File("again" + std::to_string(world)), m, nullptr, nullptr, c);
    });
    for (int r = 0; r < world; ++r) {
      const int64_t ids = catalog.num_items * 8;  // every saved file's row ids
      EXPECT_GE(bytes[r], owned[r] * row_bytes) << "rank " << r;
      EXPECT_LE(bytes[r], owned[r] * row_bytes + ids + 4096) << "rank " << r << " of " << world << " owns " << owned[r] << " rows";
    }
    EXPECT_EQ(testing::ReadSavedModel(dir.File("again" + std::to_string(world))), saved);
  }
}

// Runs fn on `world` ranks; returns each rank's UserError message ("" if it threw none).
std::vector<std::string> ErrorsOnRanks(int world, const std::function<void(Communicator&)>& fn) {
  std::vector<std::string> errors(static_cast<size_t>(world));
  RunRanks(world, [&](Communicator& c) {
    try {
      fn(c);
    } catch (const UserError& e) {
      errors[c.rank()] = e.what();
    }
  });
  return errors;
}

// Every rank threw the same message, and it holds every fragment.
void ExpectSameErrorOnAllRanks(const std::vector<std::string>& errors, const std::vector<std::string>& fragments) {
  for (size_t r = 0; r < errors.size(); ++r) {
    EXPECT_EQ(errors[r], errors[0]) << "rank " << r;
    for (const auto& f : fragments) EXPECT_NE(errors[r].find(f), std::string::npos) << "rank " << r << ": " << errors[r];
  }
}

TEST_F(CheckpointTest, DamagedCheckpointsAreReportedAndSkippedOnlyWhenAsked) {
  // Three ranks: files dense.h5, embeddings-rank{0,1,2}.h5 are verified by ranks 0, 1, 2, 0.
  TrainOptions o = Options("c", 6);
  o.checkpoint_every = 2;
  o.keep_checkpoints = 5;
  Run(3, o);
  auto all = ListCheckpoints(dir_.File("c"));
  ASSERT_EQ(all.size(), 3u);  // steps 2, 4, 6
  EXPECT_NE(all.back().find("step-000000006"), std::string::npos);
  auto pick = [&](const std::string& policy) {
    std::vector<std::string> picked(3);
    auto errors = ErrorsOnRanks(3, [&](Communicator& c) { picked[c.rank()] = PickCheckpoint(dir_.File("c"), policy, c).dir; });
    for (const auto& e : errors) EXPECT_EQ(e, "");
    for (const auto& p : picked) EXPECT_EQ(p, picked[0]);
    return picked[0];
  };
  EXPECT_EQ(pick("latest"), all.back());
  // Flip one byte of the newest dense.h5 (rank 0 checks it).
  const std::string dense = all.back() + "/dense.h5";
  std::string bytes = ReadFileToString(dense);
  bytes[bytes.size() / 2] ^= 0x5A;
  testing::WriteText(dense, bytes);
  testing::ExpectUserError([&] { VerifyCheckpoint(all.back()); }, {"dense.h5", "checksum mismatch"});
  ExpectSameErrorOnAllRanks(ErrorsOnRanks(3, [&](Communicator& c) { PickCheckpoint(dir_.File("c"), "latest", c); }),
                            {"dense.h5", "checksum mismatch", "--resume=latest-valid"});
  EXPECT_EQ(pick("latest-valid"), all[1]);
  // Truncate a file of the next one that rank 1 checks: named by size, and ranks 0 and 2 agree.
  const std::string emb = all[1] + "/embeddings-rank0.h5";
  std::string e = ReadFileToString(emb);
  testing::WriteText(emb, e.substr(0, e.size() - 100));
  testing::ExpectUserError([&] { VerifyCheckpoint(all[1]); }, {"embeddings-rank0.h5", "truncated"});
  ExpectSameErrorOnAllRanks(ErrorsOnRanks(3, [&](Communicator& c) { VerifyCheckpoint(all[1], c); }),
                            {"embeddings-rank0.h5", "truncated"});
  EXPECT_NO_THROW(VerifyCheckpoint(all[1], 0, 3));  // rank 0's part is intact
  EXPECT_EQ(pick("latest-valid"), all[0]);
  // Loading without verification is the caller's promise; loading a damaged one directly fails.
  ExpectSameErrorOnAllRanks(ErrorsOnRanks(3,
                                          [&](Communicator& c) {
                                            auto ds = Dataset::Open(dir_.File("s.h5"));
                                            const ModelConfig mc = Options("c", 0).model;
                                            const ItemCatalog cat = LoadItemCatalog(*ds);
                                            TwoTowerModel model(mc, cat, PlanItemTables(mc, cat, c), &c, 1);
                                            LoadCheckpoint(all[1], model, nullptr, nullptr, c);
                                          }),
                            {"embeddings-rank0.h5", "truncated"});
  // A directory without a manifest (a crash mid-write) is not a checkpoint at all.
  RemoveAll(all[0] + "/manifest.json");
  EXPECT_EQ(ListCheckpoints(dir_.File("c")).size(), 2u);
  ExpectSameErrorOnAllRanks(ErrorsOnRanks(3, [&](Communicator& c) { PickCheckpoint(dir_.File("c"), "latest-valid", c); }),
                            {"every checkpoint is damaged"});
}

TEST_F(CheckpointTest, KeepsTheNewestK) {
  TrainOptions o = Options("k", 8);
  o.checkpoint_every = 1;
  o.keep_checkpoints = 2;
  Run(1, o);
  auto all = ListCheckpoints(dir_.File("k"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_NE(all[0].find("step-000000007"), std::string::npos);
  EXPECT_NE(all[1].find("step-000000008"), std::string::npos);
}

}  // namespace
}  // namespace shardrec
