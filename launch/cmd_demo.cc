// shardrec demo: the main job end to end on the built-in synthetic dataset, with the settings of
// configs/demo.yaml (built into the binary; flags given on the command line win): generate,
// round-trip through the CSV converter, check the sharded reader, train, evaluate against the
// baselines and the generator's oracle, export, index, query.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "common/error.h"
#include "common/file_util.h"
#include "io/demo_checks.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "io/synth.h"
#include "launch/cli.h"
#include "launch/config.h"
#include "launch/demo_config.h"
#include "launch/commands.h"
#include "launch/flags.h"
#include "launch/job.h"
#include "serve/index_build.h"
#include "serve/export.h"
#include "train/trainer.h"
#include "train/evaluate_run.h"

namespace shardrec::cli {
namespace {

using Clock = std::chrono::steady_clock;

// 1. The synthetic dataset.
void SynthStep(const std::string& synth_path) {
  std::printf("== 1. synthetic data -> %s\n", synth_path.c_str());
  auto t0 = Clock::now();
  SynthReport sr = GenerateSynthetic(synth_path, SynthOptionsFromFlags());
  ProgressDone();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("   %lld users, %lld items, %lld events in %.2f s\n   %s\n",
              static_cast<long long>(sr.info.num_users), static_cast<long long>(sr.info.num_items),
              static_cast<long long>(sr.info.num_events), secs, OracleLine(sr).c_str());
}

// 5. Train on the synthetic data; 6. evaluate against the baselines and the generator's oracle.
TrainOptions TrainAndEvaluate(const std::string& synth_path, const std::string& run_dir, Job& job) {
  gflags::SetCommandLineOption("data", synth_path.c_str());
  gflags::SetCommandLineOption("run_dir", run_dir.c_str());
  gflags::SetCommandLineOption("overwrite", "true");  // the demo replaces its own earlier run
  TrainOptions o = TrainOptionsFromFlags();
  if (job.is_root()) {
    std::printf("== 5. train: %lld epochs, global batch %lld, on %d rank(s) -> %s\n", static_cast<long long>(o.epochs),
                static_cast<long long>(o.batch_size), job.comm->world_size(), o.run_dir.c_str());
    std::fflush(stdout);
  }
  std::unique_ptr<TrainingSink> progress = MakeConsoleSink();
  TrainResult tr = Train(o, *job.comm, progress.get());
  EvalOptions eo;
  eo.data = synth_path;
  eo.run_dir = o.run_dir;
  eo.model = o.model;
  eo.seed = o.seed;
  auto model = Evaluate(eo, *job.comm);
  eo.baseline = "pop";
  auto pop = Evaluate(eo, *job.comm);
  eo.baseline = "cooc";
  auto cooc = Evaluate(eo, *job.comm);
  if (!job.is_root()) return o;
  auto oracle = Dataset::Open(synth_path)->NumericAttributes("/oracle");
  std::printf("== 6. test metrics (full ranking, history excluded; %lld steps, %.0f sequences/s)\n",
              static_cast<long long>(tr.steps), tr.examples_per_second);
  std::printf("   %-22s %8s %8s %8s %8s\n", "", "HR@10", "NDCG@10", "HR@50", "MRR");
  auto row = [](const char* name, std::map<std::string, double>& m) {
    std::printf("   %-22s %8.4f %8.4f %8.4f %8.4f\n", name, m["hr@10"], m["ndcg@10"], m["hr@50"], m["mrr"]);
  };
  row("two-tower (ours)", model);
  row("item-to-item (cooc)", cooc);
  row("most popular", pop);
  std::printf("   %-22s %8.4f %8.4f\n", "generator's oracle", oracle["hr@10"], oracle["ndcg@10"]);
  const bool ok = model["hr@10"] > 2 * pop["hr@10"];
  std::printf("   two-tower vs most popular: %.1fx HR@10 (%s)\n", model["hr@10"] / std::max(1e-9, pop["hr@10"]),
              ok ? "ok: well above popularity" : "WARNING: not clearly above popularity");
  std::printf("   run directory: %s (config.yaml, metrics.jsonl, TensorBoard events, model/)\n", o.run_dir.c_str());
  return o;
}

// 7. Export (every rank its row range); 8. index + recall against exact search; 9. one query.
void ExportAndQuery(const TrainOptions& o, const std::string& dir, Job& job) {
  ExportOptions xo;
  xo.run_dir = o.run_dir;
  xo.data = o.data;
  xo.root = dir + "/exports";
  xo.model = o.model;
  xo.seed = o.seed;
  const std::string version_dir = ExportEmbeddings(xo, *job.comm);
  if (!job.is_root()) return;
  std::printf("== 7. export -> %s (LATEST -> %s)\n", version_dir.c_str(), Basename(version_dir).c_str());
  IndexOptions io;
  IndexReport r = BuildExportIndex(version_dir, io);
  std::printf("== 8. index: %s, recall@10 %.4f, recall@100 %.4f against exact search (%lld user queries)\n",
              r.factory.c_str(), r.recall10, r.recall100, static_cast<long long>(r.queries));
  const std::string user = Dataset::Open(o.data)->ReadUserRawIds(0, 1).at(0);
  RecommenderOptions ro;
  ro.export_dir = version_dir;
  const RecommendResponse q = Recommender::Open(ro)->Recommend({.user = user, .k = 5});
  std::printf("== 9. shardrec query --export %s --user %s --k 5\n", xo.root.c_str(), user.c_str());
  std::printf("%s", RecommendResponseText(q, 5).c_str());
}

int RunDemo(const std::vector<std::string>&) {
  ApplyConfigText(kDemoConfig, "configs/demo.yaml", TrainKeys());
  Job job = StartJob();
  const std::string dir = FLAGS_workdir;
  const std::string synth_path = dir + "/synth.h5";
  if (job.is_root()) {
    MakeDirs(dir);
    SynthStep(synth_path);
    std::printf("%s", CsvRoundTripCheck(dir, synth_path).c_str());
    std::printf("%s", ShardedReaderCheck(synth_path, FLAGS_world_size, FLAGS_batch_size, FLAGS_max_len, FLAGS_seed).c_str());
    std::printf("== 4. statistics (shardrec data stats %s)\n", synth_path.c_str());
    PrintStats(synth_path, false);
  }
  job.comm->Barrier();
  const TrainOptions o = TrainAndEvaluate(synth_path, dir + "/run", job);
  ExportAndQuery(o, dir, job);
  return 0;
}

Registrar demo_cmd({
    .name = "demo",
    .summary = "run the main job end to end on the built-in synthetic dataset",
    .usage = "[launch/mpirun.sh -np N] shardrec demo [--workdir DIR --users N --items N --events N --epochs E]",
    .flags = {"workdir", "users", "items", "events", "seed", "topics", "batch_size", "max_len",
              "world_size", "epochs", "max_steps", "log_every", "backend", "device", "comm_timeout"},
    .positional = 0,
    .run = RunDemo,
});

}  // namespace
}  // namespace shardrec::cli
