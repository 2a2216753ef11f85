// shardrec train | eval
#include <gflags/gflags.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>

#include "common/error.h"
#include "common/strings.h"
#include "common/file_util.h"
#include "common/json.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/flags.h"
#include "launch/job.h"
#include "model/precision.h"
#include "common/stop_signals.h"
#include "eval/evaluate.h"
#include "io/dataset.h"
#include "train/run_dir.h"
#include "train/trainer.h"
#include "train/evaluate_run.h"
#include "train/stream_eval.h"

namespace shardrec::cli {

const std::vector<std::string>& ModelFlags() {
  static const std::vector<std::string> f = {"dim", "blocks", "heads", "max_len", "dropout", "time_buckets", "context",
                                             "use_categories", "use_content", "embedding_optimizer",
                                             "embedding_lr", "sharding", "positions", "score", "input_vectors", "id_dropout", "untrained_items"};
  return f;
}

namespace {
// Whether a two-valued flag says `on` rather than `off`; another value is a user error naming the flag.
bool FlagSays(const char* flag, const std::string& value, const char* off, const char* on) {
  if (value != off && value != on) Fail("--", flag, ": expected ", off, " or ", on, ", got ", Quote(value));
  return value == on;
}
}  // namespace

ModelConfig ModelConfigFromFlags() {
  ModelConfig m;
  m.dim = FLAGS_dim;
  m.blocks = FLAGS_blocks;
  m.heads = FLAGS_heads;
  m.max_len = FLAGS_max_len;
  m.dropout = FLAGS_dropout;
  m.id_dropout = FLAGS_id_dropout;
  m.impute_untrained = FlagSays("untrained-items", FLAGS_untrained_items, "content", "neighbours");
  m.time_buckets = FLAGS_time_buckets;
  m.context = FLAGS_context;
  m.use_categories = FLAGS_use_categories;
  m.use_content = FLAGS_use_content;
  m.embedding_optimizer.type = ParseOptimizer(FLAGS_embedding_optimizer);
  m.embedding_optimizer.lr = FLAGS_embedding_lr;
  m.sharding = FLAGS_sharding;
  m.positions_from_newest = FlagSays("positions", FLAGS_positions, "oldest", "newest");
  m.cosine = !FlagSays("score", FLAGS_score, "cosine", "dot");
  m.separate_input_vectors = FlagSays("input-vectors", FLAGS_input_vectors, "tied", "separate");
  CheckModelConfig(m);
  return m;
}

std::vector<std::string> TrainKeys() {
  std::vector<std::string> k = {"data", "run_dir", "epochs", "max_steps", "time_budget", "batch_size", "seed", "lr",
                                "weight_decay", "warmup_steps", "init_from", "retired", "lr_schedule", "min_lr_ratio", "exclude_history", "content_loss", "clip_norm", "loss", "negatives", "full_softmax_max_items", "precision",
                                "temperature", "logq", "eval_every", "patience", "eval_batch_size", "log_every",
                                "checkpoint_every", "keep_checkpoints", "length_groups", "bucket_batches", "memory_per_rank", "cold_items", "cold_seed",
                                "memory_bandwidth", "link_bandwidth"};
  k.insert(k.end(), ModelFlags().begin(), ModelFlags().end());
  k.insert(k.end(), kJobFlags.begin(), kJobFlags.end());
  return k;
}

PlannerOptions PlannerOptionsFromFlags() {
  if (!(FLAGS_memory_per_rank > 0) || !(FLAGS_memory_bandwidth > 0) || !(FLAGS_link_bandwidth > 0)) {
    Fail("--memory-per-rank, --memory-bandwidth and --link-bandwidth must be > 0");
  }
  PlannerOptions p;
  p.memory_budget_bytes = FLAGS_memory_per_rank * (1 << 30);
  p.memory_bandwidth = FLAGS_memory_bandwidth * 1e9;
  p.link_bandwidth = FLAGS_link_bandwidth * 1e9;
  return p;
}


namespace {

std::vector<std::string> WithConfig(std::vector<std::string> k) {
  k.push_back("config");
  return k;
}

std::vector<std::string> TrainCommandFlags() {
  std::vector<std::string> k = WithConfig(TrainKeys());
  k.push_back("resume");
  k.push_back("overwrite");
  return k;
}

// --resume RUN | latest | latest-valid (the last two name the policy for the run of --run-dir):
// the run's own configuration, under the flags given now (e.g. a larger --max-steps). Returns the
// policy.
std::string ApplyResumeFlags() {
  std::string resume_policy = "latest";
  if (!FLAGS_resume.empty() && FLAGS_overwrite) {
    Fail("--resume and --overwrite contradict each other: continue the run or replace it");
  }
  if (!FLAGS_resume.empty()) {
    std::string run = FLAGS_resume;
    if (run == "latest" || run == "latest-valid") {
      resume_policy = run;
      run = FLAGS_run_dir;
      if (run.empty() && !FLAGS_config.empty()) {
        ApplyConfigFile(FLAGS_config, TrainKeys(), {"run_dir"});
        run = FLAGS_run_dir;
      }
      if (run.empty()) Fail("--resume=", FLAGS_resume, " needs --run-dir (the run to continue)");
    }
    // The run's own configuration; flags given now still win (e.g. a larger --max-steps).
    if (!PathExists(RunDir(run).config())) Fail(run, ": no config.yaml; not a run directory");
    if (FLAGS_run_dir.empty()) gflags::SetCommandLineOption("run_dir", run.c_str());
    if (FLAGS_run_dir != run) Fail("--resume ", run, " and --run-dir ", FLAGS_run_dir, " differ");
    ApplyRunConfigFile(RunDir(run).config(), TrainKeys());
  }
  return resume_policy;
}

// --config, then what the command line derives from the data (--max-len 0, context without
// timestamps); returns the derived lines printed with the plan.
std::string ApplyConfigAndDerive() {
  if (!FLAGS_config.empty()) ApplyConfigFile(FLAGS_config, TrainKeys());
  std::string derived;
  if (FLAGS_max_len == 0) {  // auto; RUN/config.yaml records the number chosen
    if (FLAGS_data.empty()) Fail("--data is required (a file from `shardrec data convert` or `data synth`)");
    // An explicit --max-len 0 on --resume: the length the run was trained with.
    const MaxLenChoice c = ChooseMaxLen(FLAGS_data, FLAGS_resume.empty() ? FLAGS_init_from : FLAGS_run_dir, FLAGS_dim);
    gflags::SetCommandLineOption("max_len", std::to_string(c.max_len).c_str());
    derived = c.reason;
  }
  // Context reads timestamps: on data without them the run is built, and recorded, without it.
  if (FLAGS_context && !FLAGS_data.empty() && PathExists(FLAGS_data) && !Dataset::Open(FLAGS_data)->info().has_timestamps) {
    gflags::SetCommandLineOption("context", "false");
  }
  return derived;
}

}  // namespace

TrainOptions TrainOptionsFromFlags() {
  TrainOptions o;
  o.data = FLAGS_data, o.run_dir = FLAGS_run_dir, o.cold_items = FLAGS_cold_items;
  o.cold_seed = FLAGS_cold_seed, o.epochs = FLAGS_epochs, o.max_steps = FLAGS_max_steps;
  o.time_budget_seconds = FLAGS_time_budget, o.batch_size = FLAGS_batch_size, o.seed = FLAGS_seed;
  o.step.lr = FLAGS_lr, o.weight_decay = FLAGS_weight_decay, o.step.warmup_steps = FLAGS_warmup_steps;
  o.step.cosine = FlagSays("lr-schedule", FLAGS_lr_schedule, "constant", "cosine");
  o.init_from = FLAGS_init_from, o.keep_retired = FlagSays("retired", FLAGS_retired, "drop", "keep");
  if (o.keep_retired && o.init_from.empty()) Fail("--retired keep goes with --init-from (a warm start)");
  o.step.min_lr_ratio = FLAGS_min_lr_ratio, o.step.exclude_history = FLAGS_exclude_history, o.step.content_loss = FLAGS_content_loss;
  o.step.clip_norm = FLAGS_clip_norm, o.loss = FLAGS_loss, o.step.bfloat16 = IsBfloat16(FLAGS_precision);
  o.negatives = FLAGS_negatives, o.full_softmax_max_items = FLAGS_full_softmax_max_items, o.temperature = FLAGS_temperature;
  o.logq = FLAGS_logq, o.eval_every = FLAGS_eval_every, o.patience = FLAGS_patience;
  o.eval_batch_size = FLAGS_eval_batch_size, o.log_every_seconds = FLAGS_log_every, o.checkpoint_every = FLAGS_checkpoint_every;
  o.keep_checkpoints = FLAGS_keep_checkpoints, o.bucket_batches = FLAGS_bucket_batches, o.step.length_groups = FLAGS_length_groups;
  o.overwrite = FLAGS_overwrite, o.model = ModelConfigFromFlags(), o.planner = PlannerOptionsFromFlags(), o.config_text = EffectiveConfig(TrainKeys());
  return o;
}

namespace {

// The run's last lines: what it trained (rank 0), and every rank's peak memory against the
// estimate printed with the plan.
void PrintTrainResult(const TrainResult& r, const TrainOptions& o, const Job& job) {
  if (job.is_root()) {
    char best[96] = "no validation (--eval-every 0)";
    if (r.best_epoch >= 0) {
      std::snprintf(best, sizeof(best), "best valid NDCG@10 %.4f (epoch %lld)", r.best_valid_ndcg10,
                    static_cast<long long>(r.best_epoch));
    }
    std::printf("trained %lld steps (%lld epochs) in %.1f s, %.0f sequences/s; %s; model in %s/model\n",
                static_cast<long long>(r.steps), static_cast<long long>(r.epochs), r.seconds, r.examples_per_second, best,
                o.run_dir.c_str());
  }
  // Every rank its own line (no collective after the run's agreed saves).
  std::printf("rank %d: peak memory %.0f MiB%s, estimate %.0f MiB printed with the plan (%+.1f%%)\n", job.comm->rank(),
              r.peak_memory_bytes / (1 << 20), job.comm->device() == "cpu" ? " (saves included)" : " of host memory",
              r.estimated_memory_bytes / (1 << 20), 100.0 * (r.estimated_memory_bytes / r.peak_memory_bytes - 1.0));
}

int RunTrain(const std::vector<std::string>&) {
  const std::string resume_policy = ApplyResumeFlags();
  const std::string derived = ApplyConfigAndDerive();
  TrainOptions o = TrainOptionsFromFlags();
  o.derived = derived, o.resume = !FLAGS_resume.empty(), o.resume_from = resume_policy;
  CheckTrainOptions(o);  // before the job starts: a bad flag is reported once, by every process alike
  Job job = StartJob();
  InstallStopHandlers(job.is_root());
  o.stop_signal = &StopSignal();
  const std::unique_ptr<TrainingSink> out = MakeConsoleSink();
  TrainResult r = Train(o, *job.comm, out.get());
  if (r.stop_signal != 0) {
    if (job.is_root()) {
      std::printf("stopped by %s after step %lld; checkpoint %s\ncontinue with: shardrec train --resume %s\n",
                  r.stop_signal == SIGINT ? "SIGINT" : r.stop_signal == SIGUSR1 ? "SIGUSR1" : "SIGTERM",
                  static_cast<long long>(r.steps), r.last_checkpoint.empty() ? "(none: no step was taken)" : r.last_checkpoint.c_str(),
                  o.run_dir.c_str());
      std::fflush(stdout);
    }
    return kExitStopped;
  }
  PrintTrainResult(r, o, job);
  return 0;
}

std::vector<std::string> EvalKeys(bool stream);

// eval --stream (train/stream_eval.h) -> RUN/stream-eval.json.
int RunEvalStream() {
  if (FLAGS_data.empty() || FLAGS_run_dir.empty()) Fail("eval --stream needs --data (the whole dataset) and --run-dir");
  if (PathExists(RunDir(FLAGS_run_dir).config())) ApplyRunConfigFile(RunDir(FLAGS_run_dir).config(), TrainKeys());
  const std::string derived = ApplyConfigAndDerive(), whole = FLAGS_data;
  gflags::SetCommandLineOption("data", StreamEvalBeforeCutData(FLAGS_run_dir).c_str());  // what RUN/config.yaml names
  StreamEvalOptions o{.train = TrainOptionsFromFlags()};
  o.train.data = whole, o.train.derived = derived;
  o.cut = FLAGS_stream_cut, o.stream_lr = FLAGS_stream_lr, o.nightly_epochs = FLAGS_nightly_epochs, o.modes = FLAGS_stream_modes;
  o.learner.batch_events = FLAGS_stream_batch, o.learner.replay = FLAGS_replay, o.rank_batch = FLAGS_eval_batch_size;
  Job job = StartJob();
  o.progress = job.is_root();
  const StreamEvalReport r = RunStreamEval(o, *job.comm, MakeConsoleSink().get());  // rank 0: RUN/stream-eval.json
  if (job.is_root()) std::printf("%s", StreamEvalTable(r).c_str());
  return 0;
}

int RunEval(const std::vector<std::string>&) {
  if (FLAGS_stream) return RunEvalStream();
  RejectForeignFlags({.name = "eval", .flags = EvalKeys(/*stream=*/false)});  // training keys go with --stream alone
  const bool baseline = !FLAGS_baseline.empty();
  if (!baseline && FLAGS_run_dir.empty()) Fail("--run-dir is required (or --baseline pop|cooc with --data)");
  // A run's own configuration rebuilds its model; flags given here still win.
  if (!FLAGS_run_dir.empty() && PathExists(RunDir(FLAGS_run_dir).config())) {
    ApplyRunConfigFile(RunDir(FLAGS_run_dir).config(), TrainKeys());
  } else if (!baseline) {
    Fail(FLAGS_run_dir, ": no config.yaml; is this a run directory of `shardrec train`?");
  }
  if (FLAGS_data.empty()) Fail("--data is required");
  Job job = StartJob();
  EvalOptions o;
  o.data = FLAGS_data, o.run_dir = FLAGS_run_dir, o.split = FLAGS_split;
  o.baseline = FLAGS_baseline, o.batch_size = FLAGS_eval_batch_size, o.model = ModelConfigFromFlags();
  o.seed = FLAGS_seed, o.cold_items = FLAGS_cold_items, o.cold_seed = FLAGS_cold_seed;
  if (FLAGS_eval_users < 0) Fail("--eval-users must be >= 0 (0 = every user), got ", FLAGS_eval_users);
  o.sample_users = FLAGS_eval_users, o.scoring = ParseEvalScoring(FLAGS_eval_scoring);
  if (FLAGS_ann) {
    if (FLAGS_export_dir.empty()) Fail("--ann needs --export ROOT (an export of this run with `shardrec index`)");
    o.ann_export = FLAGS_export_dir;
  }
  if (job.is_root()) o.progress = ProgressCallback("eval", "batches", "users");  // millions of items take minutes
  std::string histories;
  auto m = Evaluate(o, *job.comm, &histories);
  if (job.is_root()) {
    const std::string json = EvalReportJson(o, m, histories);
    std::string out = FLAGS_out;
    if (out.empty() && !FLAGS_run_dir.empty()) {
      out = RunDir(FLAGS_run_dir).eval(baseline ? o.baseline : "");
    }
    std::printf("%s\n", json.c_str());
    if (!out.empty()) WriteFileAtomically(out, json + "\n");
  }
  return 0;
}

Registrar train_cmd({
    .name = "train",
    .summary = "train the two-tower recall model (any number of ranks: mpirun/srun)",
    .usage = "[launch/mpirun.sh -np N] shardrec train --data D.h5 --run-dir RUN [--config configs/x.yaml] [flags]",
    .flags = TrainCommandFlags(),
    .positional = 0,
    .run = RunTrain,
});

// What eval reads: the run's model (from its config.yaml, which command-line model flags override),
// the data, the protocol, and the job; with `stream` also the training keys (eval --stream trains).
std::vector<std::string> EvalKeys(bool stream) {
  std::vector<std::string> k = {"data", "run_dir", "seed", "eval_batch_size", "cold_items", "cold_seed", "split",
                                "baseline", "out", "ann", "export_dir", "eval_users", "eval_scoring", "stream"};
  k.insert(k.end(), ModelFlags().begin(), ModelFlags().end());
  k.insert(k.end(), kJobFlags.begin(), kJobFlags.end());
  if (!stream) return k;
  for (const auto& t : WithConfig(TrainKeys())) {
    if (std::find(k.begin(), k.end(), t) == k.end()) k.push_back(t);
  }
  for (const char* t : {"stream_cut", "stream_modes", "stream_batch", "replay", "stream_lr", "nightly_epochs"}) k.push_back(t);
  return k;
}

Registrar eval_cmd({
    .name = "eval",
    .summary = "full-ranking metrics of a trained run (or a baseline) -> RUN/eval.json",
    .usage = "shardrec eval --run-dir RUN [--split test|valid]   |   shardrec eval --baseline pop|cooc --data D.h5 [--run-dir RUN]   |   "
             "shardrec eval --stream --data D.h5 --run-dir RUN [training flags] [--stream-modes ...]",
    .flags = EvalKeys(/*stream=*/true),
    .positional = 0,
    .run = RunEval,
});

}  // namespace
}  // namespace shardrec::cli
