// The `shardrec` binary as users run it: exit codes, one-line errors, no partial outputs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/file_util.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "io/recall_lists.h"
#include "common/json.h"
#include "sharding/plan.h"
#include "train/checkpoint.h"
#include "eval/evaluate.h"
#include "model/catalogue.h"
#include "train/trainer.h"
#include "distributed/inprocess.h"
#include "tests/test_util.h"
#include "train/model_files.h"

namespace shardrec {
namespace {

using testing::RunCommand;
using testing::TempDir;

const std::string kBin = SHARDREC_BINARY;

TEST(Cli, HelpForEveryCommand) {
  auto r = RunCommand(kBin + " help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* c : {"data convert", "data stats", "data synth", "demo", "version", "train", "eval", "comm check"}) {
    EXPECT_NE(r.output.find(c), std::string::npos) << c;
    auto h = RunCommand(kBin + " " + c + " --help");
    EXPECT_EQ(h.exit_code, 0) << c;
    EXPECT_NE(h.output.find("usage:"), std::string::npos) << h.output;
    EXPECT_NE(h.output.find("shardrec " + std::string(c)), std::string::npos) << h.output;
  }
  auto h = RunCommand(kBin + " data convert --help");
  EXPECT_NE(h.output.find("--min-user-events"), std::string::npos);  // dashed names
}

// `shardrec plan` for 1B items x 128 on 64 H200s: the row-wise plan, memory per GPU in GiB and
// the all-to-all, without allocating the tables it describes (its peak memory stays far below
// the 7.45 GiB of one rank's shard).
TEST(Cli, PlanForABillionItemsOnSixtyFourGpus) {
  int64_t peak = 0;
  auto r = testing::RunProgram(kBin, {"plan", "--cluster", testing::SourceDir() + "/configs/cluster-h200x64.yaml", "--items",
                                      "1000000000", "--dim", "128"}, &peak);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* want : {"8 node(s) x 8 GPU(s) = 64 ranks", "row_wise [984375000,1000000000)x[0,128)", "memory per GPU, GiB",
                           "all-to-all per step", ": fits"}) {
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  }
  // Every rank holds 15,625,000 rows x 128 floats = 7.45 GiB, and one float per row of Adagrad state.
  const size_t row = r.output.find("0-63 ");
  ASSERT_NE(row, std::string::npos) << r.output;
  std::istringstream fields(r.output.substr(row + 5));
  double tables = 0, optimizer = 0;
  fields >> tables >> optimizer;
  EXPECT_NEAR(tables, 15625000.0 * 128 * 4 / (1ULL << 30), 0.006);
  EXPECT_NEAR(optimizer, 15625000.0 * 4 / (1ULL << 30), 0.006);
  EXPECT_LT(peak, int64_t{2} << 30);
  // A cluster file with a mistake names the file, the line and the key.
  TempDir dir;
  WriteFileAtomically(dir.File("c.yaml"), "nodes: 2\ngpus-per-node: 8\nmemory-per-gpu-gib: -1\n");
  auto bad = RunCommand(kBin + " plan --cluster " + dir.File("c.yaml") + " --items 1000");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("c.yaml:3"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("memory-per-gpu-gib"), std::string::npos) << bad.output;
  WriteFileAtomically(dir.File("c.yaml"), "nodes: 2\ngpus-per-node: 8\n");
  bad = RunCommand(kBin + " plan --cluster " + dir.File("c.yaml") + " --items 1000");
  EXPECT_NE(bad.output.find("missing key 'memory-per-gpu-gib'"), std::string::npos) << bad.output;
}

TEST(Cli, SynthStatsJson) {
  TempDir dir;
  auto r = RunCommand(kBin + " data synth --output " + dir.File("s.h5") +
                      " --users 300 --items 200 --events 3000 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("oracle"), std::string::npos);
  auto s = RunCommand(kBin + " data stats --json " + dir.File("s.h5"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  EXPECT_NE(s.output.find("\"users\": 300"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("\"items\": 200"), std::string::npos);
  EXPECT_NE(s.output.find("\"events\": 3000"), std::string::npos);
  EXPECT_NE(s.output.find("\"hr@10\""), std::string::npos);
}

TEST(Cli, ConvertBadLineFailsWithOneMessageAndNoOutput) {
  TempDir dir;
  testing::WriteText(dir.File("s.txt"), "1 2 3\n2 x\n");
  auto r = RunCommand(kBin + " data convert --format seq --input " + dir.File("s.txt") +
                      " --output " + dir.File("o.h5"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("shardrec: error: " + dir.File("s.txt") + ":2: expected an integer item id"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"s.txt"});
}

TEST(Cli, UserMistakesExitNonZero) {
  TempDir dir;
  struct Case {
    std::string args, fragment;
  };
  for (const Case& c : std::vector<Case>{
           {"data convert --input x --output y", "--format is required"},
           {"data convert --format xml --input " + dir.path() + " --output " + dir.File("o.h5"),
            "unknown format 'xml'"},
           {"data stats " + dir.File("missing.h5"), "missing.h5: no such file"},
           {"data stats", "takes 1 positional argument"},
           {"data stats --users 3 " + dir.File("x.h5"), "--users is not a flag of 'shardrec data stats'"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --events 5", "--events"},
           // Counts near INT64_MAX: refused by name (an overflowed default, a hang, a misleading
           // disk-full message and an allocation failure before).
           {"data synth --output " + dir.File("s.h5") + " --users 9223372036854775807", "--users: expected 1 to 2147483647"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --categories 2147483647", "--categories: expected 0 to 1048576"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --content-dim 2147483647", "--content-dim: expected 0 to 4096"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --successors 2147483647", "--successors: expected 0 to 1024"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --days 2147483647", "--days: expected 1 to 1000"},
           {"data synth --output " + dir.File("s.h5") + " --users 10 --days 3 --items 9223372036854775807", "--items: at most"},
           {"comm check --bytes 9223372036854775807", "--bytes: expected 1 to 2^34"},
           {"frobnicate", "unknown command"},
           {"index --export " + dir.path() + " --nprobe 0", "--nprobe: 0 is not in [1, 1048576]"},
           {"index --export " + dir.path() + " --ef-search 9223372036854775807", "--ef-search: 9223372036854775807 is not in [1, 1048576]"},
           {"publish --rollback --run-dir " + dir.File("r") + " --export-root " + dir.path(),
            "--rollback takes a VERSION argument, not --run-dir or --export-version"},
           {"train --resume latest-valid --data x.h5", "--resume=latest-valid needs --run-dir"},
           {"train --data x.h5 --run-dir " + dir.File("r") + " --precision half",
            "--precision: expected float32 or bfloat16, got 'half'"},
       }) {
    auto r = RunCommand(kBin + " " + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.find(c.fragment), std::string::npos) << c.args << " -> " << r.output;
  }
  EXPECT_FALSE(PathExists(dir.File("o.h5")));
  EXPECT_FALSE(PathExists(dir.File("s.h5")));
}

// A flag the command does not read is an error naming it, whichever file defines it (the plan's
// --cluster, training keys given to eval, eval's flags given to train), before anything runs.
TEST(Cli, ForeignFlagsExitTwoNamingTheFlag) {
  TempDir dir;
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {"train --data x.h5 --run-dir " + dir.File("r") + " --cluster x", "--cluster"},
           {"train --data x.h5 --run-dir " + dir.File("r") + " --id-order sorted", "--id-order"},
           {"eval --run-dir " + dir.File("r") + " --lr 0.1", "--lr"},
           {"eval --run-dir " + dir.File("r") + " --config c.yaml", "--config"},
           {"eval --run-dir " + dir.File("r") + " --epochs 3", "--epochs"},
           {"train --data x.h5 --run-dir " + dir.File("r") + " --split valid", "--split"},
           {"query --export " + dir.File("e") + " --user 1 --lr 0.1", "--lr"},
           {"demo --workdir " + dir.File("d") + " --cluster x", "--cluster"},
       }) {
    auto r = RunCommand(kBin + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << " -> " << r.output;
    const std::string command = args.substr(0, args.find(' '));
    EXPECT_NE(r.output.find(flag + " is not a flag of 'shardrec " + command + "'"), std::string::npos) << args << " -> " << r.output;
  }
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{});
}

// Out-of-range and malformed flags end in one "shardrec: error:" line naming the flag, exit 2, and
// leave no run directory behind (nothing is written before the run starts).
TEST(Cli, FlagMistakesNameTheFlagAndLeaveNothing) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 200 --items 100 --events 2000").exit_code, 0);
  struct Case {
    std::string flags, message;
  };
  for (const Case& c : std::vector<Case>{
           {"--lr nan", "--lr: expected a finite rate > 0, got nan"},
           {"--lr -1", "--lr: expected a finite rate > 0, got -1"},
           {"--weight-decay nan", "--weight-decay"},
           {"--batch-size -5", "--batch-size: expected 1 to 2^30, got -5"},
           // Counts near INT64_MAX are refused by name, not met with an allocation that fails.
           {"--batch-size 9223372036854775807", "--batch-size: expected 1 to 2^30, got 9223372036854775807"},
           {"--dim 9223372036854775807", "--dim: expected 1 to 65536, got 9223372036854775807"},
           {"--max-len 9223372036854775807", "--max-len: expected 1 to 1048576"},
           {"--blocks 9223372036854775807", "--blocks: expected 0 to 1024"},
           {"--heads 9223372036854775807", "--heads: expected 1 to --dim"},
           {"--negatives 9223372036854775807", "--negatives: expected 0 to 2^24"},
           {"--time-buckets 9223372036854775807", "--time-buckets: expected 0 (off) to 4096"},
           {"--eval-batch-size 9223372036854775807", "--eval-batch-size: expected 1 to 2^30"},
           {"--bucket-batches 9223372036854775807", "--bucket-batches: expected 0 (off) to 65536"},  // a crash before
           {"--checkpoint-every -1", "--checkpoint-every: expected 0 (only at the end) or more steps, got -1"},
           {"--epochs 0", "--epochs: expected at least 1"},
           {"--negatives -1", "--negatives"},
           {"--keep-checkpoints 0", "--keep-checkpoints"},
           {"--clip-norm -1", "--clip-norm"},
           {"--warmup-steps -1", "--warmup-steps"},
           {"--lr-schedule linear", "--lr-schedule: expected constant or cosine, got 'linear'"},
           {"--min-lr-ratio 2", "--min-lr-ratio: expected a ratio in [0, 1], got 2"},
           {"--temperature -1", "--temperature"},
           {"--patience 0", "--patience"},
           {"--eval-batch-size 0", "--eval-batch-size"},
           {"--dim 6 --heads 4", "--dim 6 is not divisible by --heads 4"},
           {"--embedding-lr -1", "--embedding-lr"},
           {"--bogus 3", "unknown flag --bogus"},
           {"--batch-size abc", "--batch-size: expected an integer (int64), got 'abc'"},
           {"--logq=maybe", "--logq: expected true or false"},
           {"--lr", "--lr needs a value"},
           {"--overwrite --resume latest", "--resume and --overwrite contradict each other"},
       }) {
    auto r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") + " " + c.flags);
    EXPECT_EQ(r.exit_code, 2) << c.flags << " -> " << r.output;
    EXPECT_NE(r.output.find("shardrec: error: " + c.message), std::string::npos) << c.flags << " -> " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.flags << " -> " << r.output;
    EXPECT_FALSE(PathExists(dir.File("run"))) << c.flags;
  }
  // A run directory that is a file, and a GPU that is not there, are named as such.
  auto r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("s.h5"));
  EXPECT_NE(r.output.find("--run-dir " + dir.File("s.h5") + ": exists and is not a directory"), std::string::npos) << r.output;
  if (RunCommand("nvidia-smi -L").exit_code != 0) {
    r = RunCommand("CUDA_VISIBLE_DEVICES= " + kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                   " --device cuda");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(r.output.find("--backend"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--device cuda"), std::string::npos) << r.output;
  }
  // gflags' own errors take the same form in every command.
  r = RunCommand(kBin + " data stats --json=2 " + dir.File("s.h5"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("shardrec: error: --json: expected true or false"), std::string::npos) << r.output;
}

// A run directory belongs to one run: a fresh run into it needs --overwrite (which replaces the
// whole old run, checkpoints and metrics included), and a run in progress locks it.
TEST(Cli, RunDirectoriesAreLockedAndNeverReplacedSilently) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 200 --items 100 --events 2000").exit_code, 0);
  const std::string train = kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                            " --dim 8 --blocks 1 --max-len 5 --eval-every 0 --log-every 0";
  ASSERT_EQ(RunCommand(train + " --max-steps 3 --checkpoint-every 1").exit_code, 0);
  const std::string config = ReadFileToString(dir.File("run/config.yaml"));
  auto r = RunCommand(train + " --max-steps 2 --lr 0.01");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--run-dir " + dir.File("run") + " holds a run (config.yaml); continue it with --resume latest, "
                          "or replace it with --overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(ReadFileToString(dir.File("run/config.yaml")), config);
  EXPECT_EQ(ListCheckpoints(dir.File("run")).size(), 3u);
  // --overwrite: a new run, with none of the old one's checkpoints or metrics.
  r = RunCommand(train + " --max-steps 2 --lr 0.01 --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(ReadFileToString(dir.File("run/config.yaml")).find("lr: 0.01"), std::string::npos);
  const auto left = ListCheckpoints(dir.File("run"));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(Basename(left[0]), "step-000000002");
  const std::string metrics = ReadFileToString(dir.File("run/metrics.jsonl"));
  EXPECT_EQ(metrics.find("\"step\": 3"), std::string::npos) << metrics;
  // A failing --overwrite run leaves the old run as it was.
  r = RunCommand(train + " --max-steps 2 --overwrite --data " + dir.File("missing.h5"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(ListCheckpoints(dir.File("run")), left);
  // While a run holds the directory (here this process), another is refused by name.
  {
    DirectoryLock held(dir.File("run"), "a training run");
    r = RunCommand(train + " --resume latest --max-steps 4");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(dir.File("run") + " is in use by a training run (process " + std::to_string(::getpid())),
              std::string::npos) << r.output;
  }
  EXPECT_EQ(RunCommand(train + " --resume latest --max-steps 4").exit_code, 0);
}

// SIGINT or SIGTERM to a one-process run: the run finishes its steps, checkpoints, says how to go
// on and exits 75; --resume continues from there. A second signal a moment later ends it at once.
TEST(Cli, ASignalStopsTrainingWithACheckpoint) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 300 --items 150 --events 4000").exit_code, 0);
  const std::string train = kBin + " train --data " + dir.File("s.h5") + " --epochs 100000 --eval-every 0 --log-every 0";
  // Waits for the run's first logged loss, then signals it; prints the exit status last.
  const auto signal_run = [&](const std::string& run, const std::string& flags, const std::string& signals) {
    return RunCommand("(" + train + " --run-dir " + dir.File(run) + " " + flags + " & pid=$!; for i in $(seq 1200); do grep -q train " +
                      dir.File(run + "/metrics.jsonl") + " 2>/dev/null && break; sleep 0.05; done; " + signals +
                      "; wait $pid; echo \"exit $?\")");
  };
  auto r = signal_run("run", "--dim 16 --blocks 1 --max-len 10 --batch-size 32", "kill -INT $pid");
  EXPECT_NE(r.output.find("exit 75"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stop requested"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("continue with: shardrec train --resume " + dir.File("run")), std::string::npos) << r.output;
  const auto saved = ListCheckpoints(dir.File("run"));
  ASSERT_EQ(saved.size(), 1u) << r.output;
  EXPECT_NE(r.output.find("stopped by SIGINT after step " + std::to_string(std::stoll(Basename(saved[0]).substr(5))) +
                          "; checkpoint " + saved[0]), std::string::npos) << r.output;
  EXPECT_NO_THROW(VerifyCheckpoint(saved[0]));
  r = RunCommand(kBin + " train --resume " + dir.File("run") + " --max-steps " +
                 std::to_string(std::stoll(Basename(saved[0]).substr(5)) + 3));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + saved[0]), std::string::npos) << r.output;
  // Two signals 1.2 s apart during a slow stretch (losses read at the end of 15-step epochs of a
  // larger model, seconds apart).
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("big.h5") + " --users 8000 --items 1000 --events 80000").exit_code, 0);
  r = signal_run("slow", "--data " + dir.File("big.h5") + " --dim 128 --blocks 2 --max-len 50 --batch-size 512",
                 "kill -TERM $pid; sleep 1.2; kill -TERM $pid");
  EXPECT_NE(r.output.find("exit 143"), std::string::npos) << r.output;  // ended by the signal itself
}

TEST(Cli, DemoTrainsWellAbovePopularity) {
  TempDir dir;
  auto r = RunCommand(kBin + " demo --workdir " + dir.File("demo") +
                      " --users 1500 --items 400 --events 30000 --world-size 3 --batch-size 128 --epochs 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("identical users, items and event order"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank pieces == single-process batches: yes"), std::string::npos);
  EXPECT_NE(r.output.find("users                  1500"), std::string::npos);
  // A relative check, not a time: the model must be well above the popularity ranker.
  EXPECT_NE(r.output.find("ok: well above popularity"), std::string::npos) << r.output;
  // ... and goes on to the serving side: export, index with measured recall, a query.
  EXPECT_NE(r.output.find("== 8. index: Flat, recall@10 1.0000"), std::string::npos) << r.output;
  const auto q = r.output.find("== 9. shardrec query --export " + dir.File("demo/exports") + " --user 1 --k 5");
  ASSERT_NE(q, std::string::npos) << r.output;
  EXPECT_NE(r.output.find("user 1 (", q), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("   5. ", q), std::string::npos) << r.output;
  EXPECT_TRUE(PathExists(dir.File("demo/exports/LATEST")));
}

TEST(Cli, ConfigFilesAndOverrides) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 200 --items 100 --events 2000").exit_code, 0);
  testing::WriteText(dir.File("bad.yaml"), "epochs: 1\n# comment\nlearning-rate: 3\n");
  auto r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") + " --config " + dir.File("bad.yaml"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bad.yaml:3: unknown key 'learning-rate'"), std::string::npos) << r.output;
  EXPECT_FALSE(PathExists(dir.File("run")));
  testing::WriteText(dir.File("ok.yaml"), "epochs: 7\ndim: 8\nblocks: 1\nmax-len: 5\nmax-steps: 2\neval-every: 0\n");
  r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") + " --config " +
                 dir.File("ok.yaml") + " --epochs 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string cfg = ReadFileToString(dir.File("run/config.yaml"));
  EXPECT_NE(cfg.find("epochs: 1\n"), std::string::npos) << cfg;  // the command line wins
  EXPECT_NE(cfg.find("dim: 8\n"), std::string::npos) << cfg;     // the file fills the rest
  EXPECT_NE(cfg.find("max-steps: 2\n"), std::string::npos) << cfg;
  // The plan: printed at start, saved beside the run and in its checkpoints, budget from flags.
  EXPECT_NE(r.output.find("sharding plan: 1 rank(s); budget 16.0 GiB/rank"), std::string::npos) << r.output;
  const std::string plan = ReadFileToString(dir.File("run/plan.txt"));
  EXPECT_NE(r.output.find(plan.substr(0, plan.find("--- plan ---"))), std::string::npos) << plan;
  EXPECT_EQ(ReadPlanFile(dir.File("run/plan.txt")).tables.size(), 2u);  // item ids and categories
  // The loss `auto` chose, and why, heads the plan.
  EXPECT_EQ(plan.rfind("loss: full softmax over all 100 items (--loss auto: full up to 50000 items, this data has 100)\n", 0), 0u) << plan;
  r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run3") + " --config " +
                 dir.File("ok.yaml") + " --full-softmax-max-items 99 --negatives 16 --max-len 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loss: sampled softmax over the batch's targets and 16 shared uniform negatives, logQ-corrected "
                          "(--loss auto: full up to 99 items, this data has 100)"), std::string::npos) << r.output;
  // --max-len 0: chosen from the data (10 events per user: the floor, 50), printed first, and
  // recorded as a number, which eval then uses.
  EXPECT_EQ(r.output.find("max-len: 50 (--max-len 0: 90% of the 200 users have at most "), r.output.find("\nmax-len: ") + 1) << r.output;
  EXPECT_EQ(ReadFileToString(dir.File("run3/plan.txt")).rfind("max-len: 50 (--max-len 0:", 0), 0u);
  EXPECT_NE(ReadFileToString(dir.File("run3/config.yaml")).find("max-len: 50\n"), std::string::npos);
  EXPECT_EQ(RunCommand(kBin + " eval --run-dir " + dir.File("run3")).exit_code, 0);
  const auto checkpoints = ListCheckpoints(dir.File("run"));
  ASSERT_FALSE(checkpoints.empty());
  EXPECT_EQ(ReadPlanFile(checkpoints.back() + "/plan.txt"), ReadPlanFile(dir.File("run/plan.txt")));
  r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run2") + " --config " +
                 dir.File("ok.yaml") + " --memory-per-rank 0.000001");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("item_id"), std::string::npos) << r.output;
}

// The cold-start protocol from the command line: the run trains on its own derived data, records the
// protocol, and eval repeats it (warm / cold slices, the cold items' popularity); a run trained
// without it is sliced the same way on the data's own histories.
TEST(Cli, ColdStartProtocolIsRecordedAndRepeatedByEval) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 400 --items 150 --events 6000").exit_code, 0);
  const std::string common = " --data " + dir.File("s.h5") + " --dim 16 --blocks 1 --max-len 20 --epochs 3 --eval-every 0";
  auto r = RunCommand(kBin + " train" + common + " --run-dir " + dir.File("cold") + " --cold-items 0.2 --cold-seed 4 --id-dropout 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cold start: 30 of the items with events are cold (--cold-items 0.2 --cold-seed 4); "), std::string::npos)
      << r.output;
  EXPECT_TRUE(PathExists(dir.File("cold/cold-start.h5")));
  const std::string cfg = ReadFileToString(dir.File("cold/config.yaml"));
  EXPECT_NE(cfg.find("cold-items: 0.2"), std::string::npos) << cfg;  // (as the shortest round-trip or 17 digits)
  EXPECT_NE(cfg.find("cold-seed: 4\n"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("id-dropout: 0.5\n"), std::string::npos) << cfg;
  r = RunCommand(kBin + " eval --run-dir " + dir.File("cold"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  JsonValue m = JsonValue::Parse(ReadFileToString(dir.File("cold/eval.json")), "eval.json");
  for (const char* k : {"all.hr@10", "warm.hr@10", "cold.hr@10", "cold.ndcg@10", "warm.users", "cold.users", "cold.pop_hr@10",
                        "cold.pop_ndcg@10", "hist_1-2.ndcg@10", "coverage@200", "novelty@50", "diversity@10", "popularity_bias@10"}) {
    EXPECT_TRUE(m.has(k)) << k;
  }
  EXPECT_GT(m.at("cold.users").num(), 0);
  EXPECT_EQ(m.at("warm.users").num() + m.at("cold.users").num(), m.at("users").num());
  EXPECT_NE(m.at("protocol").str().find("histories from " + dir.File("cold/cold-start.h5")), std::string::npos);
  // A run without the protocol, sliced by the same cold items on every event of the data.
  ASSERT_EQ(RunCommand(kBin + " train" + common + " --run-dir " + dir.File("plain")).exit_code, 0);
  r = RunCommand(kBin + " eval --run-dir " + dir.File("plain") + " --cold-items 0.2 --cold-seed 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  JsonValue p = JsonValue::Parse(ReadFileToString(dir.File("plain/eval.json")), "eval.json");
  EXPECT_NE(p.at("protocol").str().find("histories from " + dir.File("s.h5") + " (every event"), std::string::npos);
  // The popularity baseline does not depend on the model; the slices hold the same users where no
  // user lost every training event to the protocol.
  EXPECT_DOUBLE_EQ(p.at("cold.pop_hr@10").num(), m.at("cold.pop_hr@10").num());
  EXPECT_FALSE(PathExists(dir.File("plain/cold-start.h5")));
  r = RunCommand(kBin + " train" + common + " --run-dir " + dir.File("bad") + " --cold-items 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--cold-items"), std::string::npos) << r.output;
  EXPECT_FALSE(PathExists(dir.File("bad")));
}

TEST(Cli, DivergedTrainingNamesTheStep) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 200 --items 100 --events 2000").exit_code, 0);
  auto r = RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                      " --temperature 1e-40 --dim 8 --blocks 1 --max-len 5 --eval-every 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("training diverged: the loss is"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("at step 1 (epoch 0)"), std::string::npos) << r.output;
}

TEST(Cli, KillDuringCheckpointsLeavesAValidOneAndResumeWorks) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 300 --items 150 --events 4000").exit_code, 0);
  const std::string train = kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                            " --dim 16 --blocks 1 --max-len 10 --batch-size 32 --epochs 1000 --eval-every 0"
                            " --checkpoint-every 1 --keep-checkpoints 2";
  // Each run is killed at some point after it has written a checkpoint of its own (waiting for one
  // rather than a fixed delay: start-up time varies with the machine's load).
  for (const char* delay : {"0.7", "0.1", "0.4"}) {
    const std::string newest = "$(ls -d " + dir.File("run/checkpoints") + "/step-*/manifest.json 2>/dev/null | tail -1)";
    const std::string cmd = "(before=\"" + newest + "\"; " + train +
                            (PathExists(dir.File("run/checkpoints")) ? " --resume " + dir.File("run") : "") +
                            " >/dev/null 2>&1 & pid=$!; for i in $(seq 600); do now=\"" + newest +
                            "\"; [ -n \"$now\" ] && [ \"$now\" != \"$before\" ] && break; sleep 0.05; done; sleep " + delay +
                            "; kill -9 $pid; wait $pid)";
    RunCommand(cmd);
    auto all = ListCheckpoints(dir.File("run"));
    ASSERT_FALSE(all.empty()) << "no checkpoint after " << delay << " s";
    for (const auto& c : all) EXPECT_NO_THROW(VerifyCheckpoint(c)) << c;  // complete or invisible
  }
  auto r = RunCommand(kBin + " train --resume " + dir.File("run") + " --epochs 1000 --dim 16"
                      " --checkpoint-every 0 --log-every 0 --max-steps 3");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  // Damage the newest checkpoint: plain --resume refuses it by name, --resume=latest-valid falls back.
  auto all = ListCheckpoints(dir.File("run"));
  ASSERT_GE(all.size(), 2u);
  std::string dense = ReadFileToString(all.back() + "/dense.h5");
  dense[dense.size() / 2] ^= 0x21;
  testing::WriteText(all.back() + "/dense.h5", dense);
  const std::string more = " --checkpoint-every 0 --log-every 0 --max-steps 3";
  r = RunCommand(kBin + " train --resume " + dir.File("run") + more);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(all.back() + "/dense.h5: checksum mismatch"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume=latest-valid"), std::string::npos) << r.output;
  r = RunCommand(kBin + " train --resume=latest-valid --run-dir " + dir.File("run") + more);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("skipping damaged checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resumed from " + all[all.size() - 2]), std::string::npos) << r.output;
  r = RunCommand(kBin + " train --resume latest" + more);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--resume=latest needs --run-dir"), std::string::npos) << r.output;
}

TEST(Cli, ExportIndexQueryEndToEnd) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 200 --items 300 --events 3000").exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                       " --max-steps 4 --dim 8 --blocks 1 --max-len 5 --eval-every 0").exit_code, 0);
  auto r = RunCommand(kBin + " export --run-dir " + dir.File("run") + " --out " + dir.File("exp"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand(kBin + " index --export " + dir.File("exp"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("recall@10 1.0000"), std::string::npos) << r.output;  // Flat at this size
  r = RunCommand(kBin + " eval --run-dir " + dir.File("run") + " --ann --export " + dir.File("exp"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  {
    // Flat index: the same HR@10 through the index as exact.
    const auto a = r.output.find("\"ann_hr@10\": "), e = r.output.find("\"hr@10\": ");
    ASSERT_NE(a, std::string::npos) << r.output;
    EXPECT_EQ(std::stod(r.output.substr(a + 13)), std::stod(r.output.substr(e + 9))) << r.output;
  }
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user 17 --k 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("user 17 ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  3. "), std::string::npos) << r.output;
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5,9,12 --k 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"rank\": 2"), std::string::npos) << r.output;
  // --explain: the same list, each item with the history events that drove it (the history is the
  // last max-len 5 events: at most 3 reasons, all of them history items).
  const auto plain = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5,9,12 --k 2");
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5,9,12 --k 2 --explain");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find(plain.output.substr(0, plain.output.find("  2. "))), 0u) << r.output;
  EXPECT_NE(r.output.find("      because: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(leave-one-out over the last 3 events"), std::string::npos) << r.output;
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user 17 --k 2 --explain --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"because\": [{\"item\": "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"explain_ms\": "), std::string::npos) << r.output;
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user nobody");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("user: unknown user id 'nobody'"), std::string::npos) << r.output;
  // An item the export does not know is left out of the history, listed, and warned about.
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5,99999 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("history: 1 item(s) not in export"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"ignored\": [\"99999\"]"), std::string::npos) << r.output;
  const auto known = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5 --json");
  ASSERT_EQ(known.exit_code, 0) << known.output;
  EXPECT_EQ(JsonValue::Parse(r.output.substr(r.output.find('{'), r.output.rfind('}') + 1 - r.output.find('{')), "ignored").at("items").array.size(),
            JsonValue::Parse(known.output, "known").at("items").array.size());
  // k near INT64_MAX (k + the user's events overflowed to an empty answer): the same list as k =
  // the catalogue's 300 items, every item the user has not seen.
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user 17 --k 9223372036854775807 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto all = RunCommand(kBin + " query --export " + dir.File("exp") + " --user 17 --k 300 --json");
  EXPECT_EQ(JsonValue::Parse(r.output, "huge k").at("items").array.size(),
            JsonValue::Parse(all.output, "k 300").at("items").array.size());
  EXPECT_GT(JsonValue::Parse(r.output, "huge k").at("items").array.size(), 250u) << r.output;
  EXPECT_EQ(r.output, all.output);
  r = RunCommand("timeout 60 " + kBin + " recall --export " + dir.File("exp") + " --users /dev/zero --k 3 --out " + dir.File("L"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("/dev/zero: is not a regular file (a device)"), std::string::npos) << r.output;
  // Input is echoed escaped and bounded: a NUL in a users file does not cut the message, a
  // 5,000,000-byte id does not make a 5 MB line, a terminal escape does not reach the terminal.
  testing::WriteText(dir.File("nul.txt"), std::string("17\n3\0x\n", 8));
  r = RunCommand(kBin + " recall --export " + dir.File("exp") + " --users " + dir.File("nul.txt") + " --k 3 --out " + dir.File("L"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nul.txt:2: the user id '3\\x00x' holds a control byte"), std::string::npos) << r.output;
  testing::WriteText(dir.File("long.txt"), "17\n" + std::string(5000000, 'u') + "\n");
  r = RunCommand(kBin + " recall --export " + dir.File("exp") + " --users " + dir.File("long.txt") + " --k 3 --out " + dir.File("L"));
  EXPECT_EQ(r.exit_code, 2) << r.output.substr(0, 300);
  EXPECT_NE(r.output.find("long.txt:2: a user id of 5000000 bytes (at most 4096)"), std::string::npos) << r.output.substr(0, 300);
  EXPECT_LT(r.output.size(), 5000u);
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user \"$(printf '\\033[31mred')\" --k 3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unknown user id '\\x1b[31mred'"), std::string::npos) << r.output;
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5," + std::string(100000, 'h') + " --k 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_LT(r.output.size(), 5000u) << r.output.substr(0, 300);
  EXPECT_FALSE(PathExists(dir.File("L")));
  // Reserved and unsafe version names are refused before anything is written: a version named
  // LATEST would take the place of the root's pointer file.
  MakeDirs(dir.File("root"));
  for (const std::string& name : {"LATEST", "-x", "a b", "\x1b[31m"}) {
    for (const std::string& cmd : {" export --run-dir " + dir.File("run") + " --out " + dir.File("root"),
                                   " publish --run-dir " + dir.File("run") + " --export-root " + dir.File("root")}) {
      r = RunCommand(kBin + cmd + " --export-version '" + name + "'");
      EXPECT_EQ(r.exit_code, 2) << cmd << " " << name << ": " << r.output;
      EXPECT_NE(r.output.find("--export-version: "), std::string::npos) << r.output;
      EXPECT_NE(r.output.find("is not a version name"), std::string::npos) << r.output;
      EXPECT_TRUE(testing::ListDir(dir.File("root")).empty()) << cmd << " " << name;
    }
  }
}

// Inputs are read from regular files, whole: a FIFO would wait forever for a writer and a device
// (/dev/zero) never ends, so each is refused by name before anything is read (nothing hangs, memory
// stays bounded).
TEST(Cli, FifosAndDevicesAreRefusedAsInputs) {
  TempDir dir;
  const std::string fifo = dir.File("f");
  ASSERT_EQ(RunCommand("mkfifo " + fifo).exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 50 --items 40 --events 500").exit_code, 0);
  struct Case {
    std::string args, fragment;
  };
  for (const Case& c : std::vector<Case>{
           {"data convert --format csv --input " + fifo + " --output " + dir.File("o.h5"), fifo + ": is not a regular file (a FIFO)"},
           {"data stats " + fifo, fifo + ": is not a regular file (a FIFO)"},
           {"train --data " + fifo + " --run-dir " + dir.File("r1"), fifo + ": is not a regular file (a FIFO)"},
           {"train --data " + dir.File("s.h5") + " --run-dir " + dir.File("r2") + " --config " + fifo,
            fifo + ": is not a regular file (a FIFO)"},
           {"train --data " + dir.File("s.h5") + " --run-dir " + dir.File("r3") + " --config /dev/zero",
            "/dev/zero: is not a regular file (a device)"},
           {"data stats /dev/zero", "/dev/zero: is not a regular file (a device)"},
       }) {
    auto r = RunCommand("timeout 60 " + kBin + " " + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << " -> " << r.output;
    EXPECT_NE(r.output.find(c.fragment), std::string::npos) << c.args << " -> " << r.output;
  }
  EXPECT_FALSE(PathExists(dir.File("o.h5")));
}

// The one history -> user vector path: `query --history RAW@SECONDS,... --at T` on a user's
// test-split history, T the test event's time, gives the vector that evaluation ranks that user
// with (same items, same time gaps, the same request context). Without --at it differs.
TEST(Cli, QueryWithTimestampsGivesTheVectorEvaluationUses) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 200 --items 300 --events 4000").exit_code, 0);
  const std::string model_flags = " --dim 8 --blocks 1 --max-len 6 --dropout 0";
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                       " --max-steps 4 --eval-every 0" + model_flags).exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " export --run-dir " + dir.File("run") + " --out " + dir.File("exp")).exit_code, 0);
  ModelConfig mc;
  mc.dim = 8;
  mc.blocks = 1;
  mc.max_len = 6;
  mc.dropout = 0;
  SplitUserVectors eval;
  RunRanks(1, [&](Communicator& c) {
    auto ds = Dataset::Open(dir.File("s.h5"));
    const ItemCatalog cat = LoadItemCatalog(*ds);
    TwoTowerModel model(mc, cat, PlanItemTables(mc, cat, c), &c, 1);
    LoadModel(model, dir.File("run/model"), c);
    eval = EvaluationUserVectors(model, dir.File("s.h5"), Split::kTest, 64, c);
  });
  auto ds = Dataset::Open(dir.File("s.h5"));
  ASSERT_TRUE(ds->info().has_timestamps);
  int checked = 0;
  for (size_t i = 0; i < eval.users.size() && checked < 3; ++i) {
    const int64_t u = eval.users[i], b = ds->user_offsets()[u], e = ds->user_offsets()[u + 1] - 1;  // test input
    if (e - b < 3) continue;
    const auto raw = ds->ReadItemRawIds(0, ds->info().num_items);
    const auto items = ds->ReadItems(b, e);
    const auto ts = ds->ReadTimestamps(b, e);
    const int64_t request = ds->ReadTimestamps(e, e + 1)[0];
    std::string history;
    for (size_t k = 0; k < items.size(); ++k) {
      history += (k ? "," : "") + raw[items[k]] + "@" + std::to_string(ts[k]);
    }
    auto vector_of = [&](const std::string& extra) {
      auto r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history " + history + " --k 3 --json" + extra);
      EXPECT_EQ(r.exit_code, 0) << r.output;
      const auto at = r.output.find("\"user_vector\": [");
      EXPECT_NE(at, std::string::npos) << r.output;
      std::vector<float> got;
      if (at == std::string::npos) return got;
      std::string list = r.output.substr(at + 16, r.output.find(']', at) - at - 16);
      std::replace(list.begin(), list.end(), ',', ' ');
      std::istringstream values(list);
      for (float v; values >> v;) got.push_back(v);
      return got;
    };
    const std::vector<float> got = vector_of(" --at " + std::to_string(request));
    ASSERT_EQ(got.size(), 8u);
    for (int64_t k = 0; k < 8; ++k) EXPECT_NEAR(got[k], eval.vectors[i][k].item<float>(), 1e-5) << "user " << u << " dim " << k;
    const std::vector<float> without = vector_of("");
    ASSERT_EQ(without.size(), 8u);
    float diff = 0;
    for (int64_t k = 0; k < 8; ++k) diff = std::max(diff, std::abs(without[k] - got[k]));
    EXPECT_GT(diff, 1e-4) << "the request time enters the user tower";
    if (checked == 0) {
      auto r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history " + history + " --at " + std::to_string(ts.back() - 1));
      EXPECT_EQ(r.exit_code, 2);
      EXPECT_NE(r.output.find("before the history's last event"), std::string::npos) << r.output;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 3);
  auto r = RunCommand(kBin + " query --export " + dir.File("exp") + " --history 5@100,9");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("timestamp for every item"), std::string::npos) << r.output;
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {" --history 5,9 --at 100", "at: the history has no timestamps"},
           {" --history 5@100,9@200 --at noon", "--at: expected unix seconds or 'now'"}}) {
    r = RunCommand(kBin + " query --export " + dir.File("exp") + bad);
    EXPECT_EQ(r.exit_code, 2) << bad;
    EXPECT_NE(r.output.find(says), std::string::npos) << r.output;
  }
  // --user with --at re-encodes the user's history with that request time.
  r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user 3 --k 3 --at now");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // A run from before context existed (its config.yaml has no `context` key) is rebuilt without it.
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("old") +
                       " --max-steps 2 --eval-every 0 --context=false" + model_flags).exit_code, 0);
  std::string cfg = ReadFileToString(dir.File("old/config.yaml"));
  const auto line = cfg.find("context: false\n");
  ASSERT_NE(line, std::string::npos) << cfg;
  cfg.erase(line, std::string("context: false\n").size());
  WriteFileAtomically(dir.File("old/config.yaml"), cfg);
  r = RunCommand(kBin + " eval --run-dir " + dir.File("old"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// The nightly path on a 3-day synthetic scenario: a warm start on day 2 is published through the
// gate, a broken candidate (one step from scratch) is refused with LATEST unchanged, --force and
// --keep, and --rollback moves LATEST back and forth.
TEST(Cli, PublishGatesRefusesABrokenCandidateAndRollsBack) {
  TempDir dir;
  auto r = RunCommand(kBin + " data synth --output " + dir.File("days") + " --days 2 --users 400 --items 300 --events 8000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string model = " --dim 16 --blocks 1 --max-len 10 --eval-every 0 --log-every 0";
  const std::string root = dir.File("serve");
  auto latest = [&] { return ReadFileToString(root + "/LATEST"); };
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("days/day-1.h5") + " --run-dir " + dir.File("run1") +
                       " --max-steps 80" + model).exit_code, 0);
  r = RunCommand(kBin + " publish --run-dir " + dir.File("run1") + " --export-root " + root + " --export-version d1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("published: " + root + "/LATEST -> d1"), std::string::npos) << r.output;
  EXPECT_EQ(latest(), "d1\n");
  // Day 2: warm start, published against the served d1 (scored on the ids d1 knows).
  r = RunCommand(kBin + " train --data " + dir.File("days/day-2.h5") + " --run-dir " + dir.File("run2") +
                 " --max-steps 40 --init-from " + dir.File("run1") + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warm start from"), std::string::npos) << r.output;
  r = RunCommand(kBin + " publish --run-dir " + dir.File("run2") + " --export-root " + root + " --export-version d2 --tolerance 0.2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\n  served "), std::string::npos) << r.output;  // the served version's metrics row
  EXPECT_EQ(latest(), "d2\n");
  const std::string manifest = ReadFileToString(root + "/d2/manifest.json");
  EXPECT_NE(manifest.find("\"parent\": \"d1\""), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"decision\": \"published\""), std::string::npos) << manifest;
  // A broken candidate: one step from scratch on day 2. Refused; LATEST still names d2.
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("days/day-2.h5") + " --run-dir " + dir.File("bad") +
                       " --max-steps 1" + model).exit_code, 0);
  r = RunCommand(kBin + " publish --run-dir " + dir.File("bad") + " --export-root " + root + " --export-version bad1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("shardrec: refused: NDCG@10"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("LATEST still names d2"), std::string::npos) << r.output;
  EXPECT_EQ(latest(), "d2\n");
  EXPECT_NE(ReadFileToString(root + "/bad1/manifest.json").find("\"decision\": \"refused\""), std::string::npos);
  // Forced, with --keep 2: served, recorded, and the oldest versions go (never the served one).
  r = RunCommand(kBin + " publish --run-dir " + dir.File("bad") + " --export-root " + root +
                 " --export-version bad2 --force --keep 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("forced: "), std::string::npos) << r.output;
  EXPECT_EQ(latest(), "bad2\n");
  EXPECT_FALSE(PathExists(root + "/bad1"));
  EXPECT_FALSE(PathExists(root + "/d1"));
  EXPECT_TRUE(PathExists(root + "/d2/manifest.json"));
  // Rollback to the parent (d2), then explicitly to a version, then to one that is gone.
  r = RunCommand(kBin + " publish --rollback --export-root " + root);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(latest(), "d2\n");
  r = RunCommand(kBin + " publish --rollback bad2/ --export-root " + root);  // as a shell completes it
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(latest(), "bad2\n");
  r = RunCommand(kBin + " publish --rollback d1 --export-root " + root);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("d1: no such complete version"), std::string::npos) << r.output;
  EXPECT_EQ(latest(), "bad2\n");
}

// `shardrec recall` against two oracles: `shardrec query --user` for a sample of users (the
// serving tier's one-user path) and a brute-force inner product over the exported vectors, the
// user's own items left out, for every user.
TEST(Cli, RecallListsAreTheQueryAnswersForEveryUser) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 300 --items 250 --events 6000").exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                       " --max-steps 20 --dim 8 --blocks 1 --max-len 8 --eval-every 0 --log-every 0").exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " export --run-dir " + dir.File("run") + " --out " + dir.File("exp") + " --export-version v1").exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " index --export " + dir.File("exp")).exit_code, 0);
  const int64_t k = 7;
  auto r = RunCommand(kBin + " recall --export " + dir.File("exp") + " --users all --k 7 --out " + dir.File("lists"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("recall lists: 300 users x top 7 from export v1 (Flat search"), std::string::npos) << r.output;
  const RecallManifest rm = ReadRecallManifest(dir.File("lists"));
  EXPECT_EQ(rm.export_version, "v1");
  EXPECT_EQ(rm.k, k);
  EXPECT_EQ(rm.num_users, 300);
  ASSERT_EQ(rm.parts.size(), 1u);
  const RecallPart p = ReadRecallPart(dir.File("lists/" + rm.parts[0].file));
  ASSERT_EQ(p.users.size(), 300u);

  // The oracle: every item scored against the user's exported vector, the user's items left out.
  const std::string version = dir.File("exp/v1");
  const ExportManifest m = ReadExportManifest(version);
  std::vector<float> items(static_cast<size_t>(m.num_items * m.dim));
  std::vector<std::string> item_raw(static_cast<size_t>(m.num_items));
  for (const auto& sh : m.item_shards) {
    VectorShard v = ReadVectorShard(version + "/" + sh.file);
    for (size_t i = 0; i < v.ids.size(); ++i) {
      std::copy_n(v.vectors.begin() + i * m.dim, m.dim, items.begin() + v.ids[i] * m.dim);
      item_raw[v.ids[i]] = v.raw_ids[i];
    }
  }
  auto ds = Dataset::Open(dir.File("s.h5"));
  int64_t row = 0, tie_skips = 0;
  for (const auto& sh : m.user_shards) {
    VectorShard v = ReadVectorShard(version + "/" + sh.file);
    for (size_t i = 0; i < v.ids.size(); ++i, ++row) {
      ASSERT_EQ(p.users[row], v.raw_ids[i]);  // "all": every exported user, in dense-id order
      const int64_t u = v.ids[i];
      const auto seen = ds->ReadItems(ds->user_offsets()[u], ds->user_offsets()[u + 1]);
      std::vector<std::pair<float, int64_t>> scored;
      for (int64_t it = 0; it < m.num_items; ++it) {
        if (std::find(seen.begin(), seen.end(), it) != seen.end()) continue;
        float dot = 0;
        for (int64_t d = 0; d < m.dim; ++d) dot += v.vectors[i * m.dim + d] * items[it * m.dim + d];
        scored.push_back({-dot, it});
      }
      std::sort(scored.begin(), scored.end());
      ASSERT_EQ(p.counts[row], k);
      for (int64_t j = 0; j < k; ++j) {
        EXPECT_NEAR(p.scores[row * k + j], -scored[j].first, 1e-5) << "user " << p.users[row] << " rank " << j;
        const bool tied = std::abs(scored[j].first - scored[j + 1].first) < 1e-5 || (j > 0 && std::abs(scored[j].first - scored[j - 1].first) < 1e-5);
        if (tied) {
          ++tie_skips;
          continue;
        }
        EXPECT_EQ(p.items[row * k + j], item_raw[scored[j].second]) << "user " << p.users[row] << " rank " << j;
      }
    }
  }
  EXPECT_EQ(row, 300);
  EXPECT_LT(tie_skips, 30);

  // A sample against `shardrec query --user`: the same items in the same order, the same scores.
  for (int64_t at : {0, 151, 299}) {
    auto q = RunCommand(kBin + " query --export " + dir.File("exp") + " --user " + p.users[at] + " --k 7 --json");
    ASSERT_EQ(q.exit_code, 0) << q.output;
    const JsonValue j = JsonValue::Parse(q.output, "query");
    const auto& hits = j.at("items").array;
    ASSERT_EQ(static_cast<int64_t>(hits.size()), k);
    for (int64_t h = 0; h < k; ++h) {
      EXPECT_EQ(hits[h].at("item").str(), p.items[at * k + h]) << "user " << p.users[at];
      EXPECT_NEAR(hits[h].at("score").num(), p.scores[at * k + h], 1e-6);
    }
  }

  // A users file: its order, comments and blank lines skipped; the same lists.
  testing::WriteText(dir.File("users.txt"), "# tonight\n" + p.users[42] + "\n\n" + p.users[7] + "\n");
  r = RunCommand(kBin + " recall --export " + dir.File("exp/v1") + " --users " + dir.File("users.txt") + " --k 7 --out " + dir.File("some"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const RecallPart some = ReadRecallPart(dir.File("some/part-0.h5"));
  ASSERT_EQ(some.users, (std::vector<std::string>{p.users[42], p.users[7]}));
  EXPECT_TRUE(std::equal(some.items.begin(), some.items.begin() + k, p.items.begin() + 42 * k));
  EXPECT_TRUE(std::equal(some.items.begin() + k, some.items.end(), p.items.begin() + 7 * k));

  // Mistakes: one message naming the file and line, exit 2, nothing written.
  testing::WriteText(dir.File("bad.txt"), p.users[3] + "\nnobody\n");
  r = RunCommand(kBin + " recall --export " + dir.File("exp") + " --users " + dir.File("bad.txt") + " --out " + dir.File("l3"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir.File("bad.txt") + ":2: unknown user id 'nobody' (not in export v1)"), std::string::npos) << r.output;
  testing::WriteText(dir.File("twice.txt"), p.users[3] + "\n" + p.users[3] + "\n");
  r = RunCommand(kBin + " recall --export " + dir.File("exp") + " --users " + dir.File("twice.txt") + " --out " + dir.File("l3"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(":2: user id '" + p.users[3] + "' listed twice (first at line 1)"), std::string::npos) << r.output;
  r = RunCommand(kBin + " recall --export " + dir.File("exp") + " --out " + dir.File("lists"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("exists already"), std::string::npos) << r.output;
  EXPECT_FALSE(PathExists(dir.File("l3")));
  EXPECT_FALSE(PathExists(dir.File(".l3.partial")));
  EXPECT_FALSE(PathExists(dir.File(".lists.partial")));
  EXPECT_EQ(ReadRecallManifest(dir.File("lists")).num_users, 300);
}

TEST(Cli, KillDuringExportLeavesThePreviousVersionServed) {
  TempDir dir;
  ASSERT_EQ(RunCommand(kBin + " data synth --output " + dir.File("s.h5") + " --users 3000 --items 60000 --events 30000").exit_code, 0);
  ASSERT_EQ(RunCommand(kBin + " train --data " + dir.File("s.h5") + " --run-dir " + dir.File("run") +
                       " --max-steps 1 --dim 8 --blocks 1 --max-len 5 --eval-every 0 --loss sampled").exit_code, 0);
  const std::string exp = kBin + " export --run-dir " + dir.File("run") + " --out " + dir.File("exp");
  ASSERT_EQ(RunCommand(exp + " --export-version first").exit_code, 0);
  int n = 0, killed = 0;
  for (const char* delay : {"0.3", "0.4", "0.5", "0.6", "0.7", "0.8"}) {
    const std::string version = "next" + std::to_string(n++);
    RunCommand("(" + exp + " --export-version " + version + " >/dev/null 2>&1 & pid=$!; sleep " + delay +
               "; kill -9 $pid; wait $pid)");
    killed += !PathExists(dir.File("exp/" + version));
    const std::string served = ResolveExport(dir.File("exp"));
    EXPECT_NO_THROW(ReadExportManifest(served)) << served;  // whatever LATEST names is complete
  }
  EXPECT_GT(killed, 0) << "no export was interrupted; the delays are too long for this machine";
  auto r = RunCommand(kBin + " query --export " + dir.File("exp") + " --user 5 --k 2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Cli, EvalMistakes) {
  TempDir dir;
  auto r = RunCommand(kBin + " eval --run-dir " + dir.File("nothing"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no config.yaml"), std::string::npos) << r.output;
  r = RunCommand(kBin + " eval --baseline best --data " + dir.File("x.h5"));
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace shardrec
