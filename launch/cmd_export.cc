// shardrec export | index | publish | stream | recall | serve | query
#include <gflags/gflags.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/stop_signals.h"
#include "common/strings.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/flags.h"
#include "launch/job.h"
#include "serve/index_build.h"
#include "serve/export.h"
#include "serve/publish.h"
#include "serve/recall.h"
#include "model/catalogue.h"
#include "serve/recommender.h"
#include "serve/server.h"
#include "serve/stream_job.h"
#include "train/trainer.h"
#include "train/run_dir.h"

#include <torch/torch.h>

namespace shardrec::cli {

// The model flags (and data, seed) of a run, from RUN/config.yaml; flags given now still win.
void ApplyRunConfig(const std::string& run_dir) {
  const std::string cfg = RunDir(run_dir).config();
  if (!PathExists(cfg)) Fail(run_dir, ": no config.yaml; not a run directory of `shardrec train`");
  std::vector<std::string> only = ModelFlags();
  only.push_back("data");
  only.push_back("seed");
  ApplyRunConfigFile(cfg, TrainKeys(), only);
}

ModelConfig RunModelConfig(const std::string& model_dir) {
  ApplyRunConfig(Dirname(model_dir));
  return ModelConfigFromFlags();
}

namespace {

int RunExport(const std::vector<std::string>&) {
  if (FLAGS_run_dir.empty()) Fail("--run-dir is required");
  if (FLAGS_out.empty()) Fail("--out is required (the export root; versions go to ROOT/<version>)");
  ApplyRunConfig(FLAGS_run_dir);
  if (FLAGS_data.empty()) Fail("--data is required");
  Job job = StartJob();
  ExportOptions o{.run_dir = FLAGS_run_dir, .data = FLAGS_data, .add_items = FLAGS_add_items, .root = FLAGS_out,
                  .version = FLAGS_export_version, .model = ModelConfigFromFlags(), .seed = FLAGS_seed, .lock_wait = FLAGS_lock_wait};
  if (job.is_root()) {
    // Each pass's clock starts with the pass (its first chunk's time is not counted).
    auto meter = std::make_shared<std::pair<std::string, std::unique_ptr<ProgressMeter>>>();
    o.progress = [meter](const char* pass, int64_t done, int64_t chunks, int64_t rows) {
      if (meter->first != pass) meter->first = pass, meter->second = std::make_unique<ProgressMeter>(std::string("export ") + pass, "chunks", pass);
      meter->second->Update(done, chunks, rows);
    };
  }
  int64_t added = 0;
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = ExportEmbeddings(o, *job.comm, &added);
  if (job.is_root() && !o.add_items.empty()) {
    std::printf("catalogue %s: %lld items new since training, embedded from their content (%.1f s for the whole export)\n",
                o.add_items.c_str(), static_cast<long long>(added),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (job.is_root()) std::printf("published %s (LATEST -> %s)\n", dir.c_str(), Basename(dir).c_str());
  return 0;
}

IndexOptions IndexOptionsFromFlags() {
  IndexOptions o;
  o.factory = FLAGS_factory, o.queries = FLAGS_queries, o.train_vectors = FLAGS_train_vectors;
  o.knobs = {.ef_search = FLAGS_ef_search, .nprobe = FLAGS_nprobe, .refine = FLAGS_refine};
  CheckIndexOptions(o);
  return o;
}

int RunIndex(const std::vector<std::string>&) {
  if (FLAGS_export_dir.empty()) Fail("--export is required");
  std::string dir;
  const IndexReport r = IndexExport(FLAGS_export_dir, IndexOptionsFromFlags(), FLAGS_lock_wait, &dir);
  const std::string trained = r.train_vectors ? " (trained on " + std::to_string(r.train_vectors) + " vectors)" : "";
  std::printf("indexed %s with %s%s in %.2f s: recall@10 %.4f, recall@100 %.4f against exact search (%lld user "
              "queries); %.0f queries/s vs %.0f exact\n",
              dir.c_str(), r.factory.c_str(), trained.c_str(), r.build_seconds, r.recall10, r.recall100,
              static_cast<long long>(r.queries), r.index_qps, r.exact_qps);
  return 0;
}

// `shardrec publish`: the gate (serve/publish.h), or --rollback.
int RunPublish(const std::vector<std::string>& pos) {
  if (FLAGS_export_root.empty()) Fail("--export-root is required (the export root the serving tier reads)");
  if (FLAGS_rollback) {
    if (!FLAGS_run_dir.empty() || !FLAGS_export_version.empty()) Fail("--rollback takes a VERSION argument, not --run-dir or --export-version");
    const std::string to = Rollback(FLAGS_export_root, pos.empty() ? std::string() : pos[0], FLAGS_lock_wait);
    std::printf("rolled back: %s/LATEST -> %s\n", FLAGS_export_root.c_str(), to.c_str());
    return 0;
  }
  if (!pos.empty()) Fail("a VERSION argument goes with --rollback only");
  if (FLAGS_run_dir.empty()) Fail("--run-dir is required");
  ApplyRunConfig(FLAGS_run_dir);
  if (FLAGS_data.empty()) Fail("--data is required");
  PublishOptions o;
  o.export_options = {.run_dir = FLAGS_run_dir, .data = FLAGS_data, .root = FLAGS_export_root, .version = FLAGS_export_version,
                      .model = ModelConfigFromFlags(), .seed = FLAGS_seed};
  o.index = IndexOptionsFromFlags();
  o.tolerance = FLAGS_tolerance, o.min_recall = FLAGS_min_recall, o.force = FLAGS_force;
  o.keep = FLAGS_keep, o.lock_wait = FLAGS_lock_wait, o.eval_batch_size = FLAGS_eval_batch_size;
  Job job = StartJob();
  const PublishResult r = Publish(o, *job.comm);
  if (!job.is_root()) return r.decision == "refused" ? 1 : 0;
  std::printf("%s", PublishReportText(r, o).c_str());
  if (r.decision == "refused") {
    std::fprintf(stderr, "shardrec: refused: %s; %s/LATEST still names %s (--force serves it anyway)\n", r.reason.c_str(),
                 FLAGS_export_root.c_str(), r.parent.empty() ? "nothing" : r.parent.c_str());
    return 1;
  }
  return 0;
}

int RunStream(const std::vector<std::string>&) {
  if (FLAGS_run_dir.empty() || FLAGS_event_log.empty() || FLAGS_export_root.empty()) Fail("stream needs --run-dir, --event-log and --export-root");
  ApplyRunConfigFile(StreamConfigFile(FLAGS_run_dir, FLAGS_export_root), TrainKeys());
  StreamJobOptions o{.train = TrainOptionsFromFlags(), .event_log = FLAGS_event_log, .root = FLAGS_export_root};
  o.train.run_dir = FLAGS_run_dir, o.config_text = EffectiveConfig(TrainKeys());
  o.publish_every = FLAGS_publish_every, o.max_seconds = FLAGS_stream_seconds, o.idle_seconds = FLAGS_idle_seconds;
  o.learner.batch_events = FLAGS_stream_batch, o.learner.replay = FLAGS_replay, o.stream_lr = FLAGS_stream_lr, o.new_items = FLAGS_new_item_rows;
  o.index = IndexOptionsFromFlags(), o.min_recall = FLAGS_min_recall, o.keep = FLAGS_keep > 0 ? FLAGS_keep : o.keep, o.lock_wait = FLAGS_lock_wait;
  Job job = StartJob();
  InstallStopHandlers(job.is_root()), o.train.stop_signal = &StopSignal(), o.progress = job.is_root();
  const StreamJobReport r = RunStreamJob(o, *job.comm, nullptr);
  if (job.is_root()) std::printf("%s\n", StreamJobSummary(r).c_str());
  return r.stop_signal != 0 ? kExitStopped : 0;
}

// --history RAW_ID[@UNIX_SECONDS],... and --at into a request (the ids are the Recommender's to
// check).
RecommendRequest QueryRequestFromFlags() {
  RecommendRequest q;
  q.user = FLAGS_user;
  q.k = FLAGS_k;
  q.explain = FLAGS_explain;
  q.exclude_history = !FLAGS_include_history;
  ParseHistoryList(FLAGS_history, "--history", q);  // timestamps: the time gaps of training
  if (!FLAGS_at.empty()) {
    auto t = FLAGS_at == "now" ? std::optional<int64_t>(static_cast<int64_t>(std::time(nullptr))) : ParseInt64(FLAGS_at);
    if (!t) Fail("--at: expected unix seconds or 'now', got ", Quote(FLAGS_at));
    q.at = *t;
  }
  return q;
}

int RunQuery(const std::vector<std::string>&) {
  if (FLAGS_export_dir.empty()) Fail("--export is required");
  if (FLAGS_user.empty() == FLAGS_history.empty()) Fail("give exactly one of --user RAW_ID and --history RAW_ID,...");
  const RecommendRequest request = QueryRequestFromFlags();
  RecommenderOptions o{.export_dir = FLAGS_export_dir, .exact = FLAGS_exact, .model_config = RunModelConfig, .seed = FLAGS_seed};
  RecommendResponse r;  // on the version served now, read again if it is retired meanwhile
  ReadServedVersion(FLAGS_export_dir, [&](const std::string& dir) { o.export_dir = dir, r = Recommender::Open(o)->Recommend(request); });
  if (!r.warning.empty()) std::fprintf(stderr, "shardrec: warning: %s\n", r.warning.c_str());
  if (FLAGS_json) {
    std::printf("%s\n", RecommendResponseJson(r, /*with_user_vector=*/!FLAGS_history.empty()).c_str());
    return 0;
  }
  std::printf("%s", RecommendResponseText(r, FLAGS_k).c_str());
  if (FLAGS_explain) {
    std::printf("because: the history events whose removal lowers the item's score most (leave-one-out over the last "
                "%lld events, %.1f ms)\n", static_cast<long long>(r.explained_events), r.explain_ms);
  }
  return 0;
}

// `shardrec recall`: lists for many users (serve/recall.h); each rank a range of them.
int RunRecall(const std::vector<std::string>&) {
  if (FLAGS_export_dir.empty()) Fail("--export is required");
  if (FLAGS_out.empty()) Fail("--out is required (the directory the lists go to; it must not exist)");
  if (FLAGS_threads < 0 || FLAGS_threads > 4096) Fail("--threads: expected 0 (the cores divided by the ranks here) to 4096, got ", FLAGS_threads);
  RecallOptions o;
  o.export_dir = FLAGS_export_dir;
  o.users = FLAGS_users.empty() ? "all" : FLAGS_users;
  o.k = FLAGS_k, o.out = FLAGS_out, o.exact = FLAGS_exact;
  Job job = StartJob();
  o.threads = FLAGS_threads > 0 ? FLAGS_threads
                                : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, job.env.local_world_size));
  if (job.is_root()) o.progress = [p = ProgressCallback("recall", "users of rank 0", "users")](int64_t done, int64_t total, double) { p(done, total, done); };
  const RecallReport r = WriteRecallLists(o, *job.comm);
  if (job.is_root()) {
    std::printf("recall lists: %lld users x top %lld from export %s (%s search, %d rank%s x %d thread%s) -> %s in %.2f s: "
                "%.0f users/s\n",
                static_cast<long long>(r.users), static_cast<long long>(o.k), r.version.c_str(), r.search.c_str(),
                job.comm->world_size(), job.comm->world_size() > 1 ? "s" : "", o.threads, o.threads > 1 ? "s" : "",
                r.dir.c_str(), r.seconds, r.users / std::max(r.seconds, 1e-9));
  }
  return 0;
}

// `shardrec serve`: the HTTP server (serve/server.h) until SIGTERM or SIGINT, then a drain.
int RunServe(const std::vector<std::string>&) {
  InstallStopHandlers(/*announce=*/false);
  ServerOptions o{.export_root = FLAGS_export_root, .host = FLAGS_host, .port = FLAGS_port, .threads = FLAGS_threads > 0 ? FLAGS_threads : 32,
                  .max_queued = FLAGS_max_queued, .read_timeout_s = FLAGS_read_timeout, .limits = {.max_k = FLAGS_max_k, .max_history = FLAGS_max_history},
                  .batch_max = FLAGS_batch_max, .batch_delay_ms = FLAGS_batch_delay_ms, .standby = FLAGS_standby, .exact = FLAGS_exact,
                  .events_dir = FLAGS_event_log, .events_producer = FLAGS_event_producer, .events_roll_seconds = FLAGS_event_roll_seconds,
                  .seed = FLAGS_seed, .model_config = RunModelConfig};
  ParseServeTopology(FLAGS_shards, FLAGS_route, o);
  auto server = RecommendServer::Start(o);
  std::printf("serving %s/%s on http://%s:%d (console at /; POST /v1/recommend%s, GET /v1/items/ID, /healthz, /metrics)\n",
              FLAGS_export_root.c_str(), server->version().c_str(), FLAGS_host.c_str(), server->port(), FLAGS_event_log.empty() ? "" : ", /v1/events");
  std::fflush(stdout);
  while (StopSignal().load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server->Stop();  // requests in flight finish first
  return std::printf("stopped (signal %d): every request answered\n", StopSignal().load()) < 0;
}

std::vector<std::string> ExportFlags() {
  std::vector<std::string> k = {"run_dir", "data", "out", "export_version", "seed", "add_items", "lock_wait"};
  k.insert(k.end(), ModelFlags().begin(), ModelFlags().end());
  k.insert(k.end(), kJobFlags.begin(), kJobFlags.end());
  return k;
}

Registrar export_cmd({
    .name = "export",
    .summary = "item and user embeddings of a trained run -> ROOT/<version>/ (published atomically, then ROOT/LATEST)",
    .usage = "[launch/mpirun.sh -np N] shardrec export --run-dir RUN --out ROOT [--export-version V] [--add-items CATALOG.h5]",
    .flags = ExportFlags(),
    .positional = 0,
    .run = RunExport,
});
std::vector<std::string> PublishFlags() {
  std::vector<std::string> k = {"run_dir", "data", "export_root", "export_version", "seed", "tolerance", "min_recall",
                                "force", "keep", "lock_wait", "rollback", "eval_batch_size", "factory", "queries", "ef_search", "nprobe", "refine",
                                "train_vectors"};
  k.insert(k.end(), ModelFlags().begin(), ModelFlags().end());
  k.insert(k.end(), kJobFlags.begin(), kJobFlags.end());
  return k;
}

Registrar publish_cmd({
    .name = "publish",
    .summary = "export, index and verify a trained run, then serve it only if the gate passes; retention, rollback",
    .usage = "[launch/mpirun.sh -np N] shardrec publish --run-dir RUN --export-root ROOT [--tolerance 0.02 --min-recall 0.95 "
             "--force --keep N]\n       shardrec publish --rollback [VERSION] --export-root ROOT",
    .flags = PublishFlags(),
    .positional = 0,
    .optional_positional = 1,
    .run = RunPublish,
});
Registrar recall_cmd({
    .name = "recall",
    .summary = "top-K lists for every user (or a file of users) of an export, for a serving tier: HDF5 + manifest",
    .usage = "[launch/mpirun.sh -np N] shardrec recall --export ROOT[/VERSION] --users all|FILE --k K --out DIR "
             "[--exact --threads T]",
    .flags = {"export_dir", "users", "k", "out", "exact", "threads", "backend", "device", "comm_timeout"},
    .positional = 0,
    .run = RunRecall,
});
Registrar index_cmd({
    .name = "index",
    .summary = "FAISS index per item shard of an export + recall against exact search (stored in its manifest)",
    .usage = "shardrec index --export ROOT[/VERSION] [--factory Flat|HNSW32|IVF1024,Flat|IVF1024,PQ32 --nprobe 32 --queries N]",
    .flags = {"export_dir", "factory", "queries", "ef_search", "nprobe", "refine", "train_vectors", "lock_wait"},
    .positional = 0,
    .run = RunIndex,
});
Registrar stream_cmd({
    .name = "stream",
    .summary = "learn from an event log as it grows and publish the model every few seconds (docs/training.md)",
    .usage = "[launch/mpirun.sh -np N] shardrec stream --run-dir R --event-log DIR --export-root ROOT [--publish-every 30 "
             "--stream-seconds 0 --idle-seconds 0 --stream-batch 256 --replay 1 --new-item-rows 1024 --keep 0]",
    .flags = {"run_dir", "event_log", "export_root", "publish_every", "stream_seconds", "idle_seconds", "stream_batch", "replay", "stream_lr", "new_item_rows",
              "factory", "queries", "ef_search", "nprobe", "refine", "train_vectors", "min_recall", "keep", "lock_wait", "backend", "device",
              "comm_timeout"},
    .positional = 0,
    .run = RunStream,
});
Registrar serve_cmd({
    .name = "serve",
    .summary = "an HTTP/1.1 JSON recommendation server of an export root, swapping versions as LATEST moves",
    .usage = "shardrec serve --export-root ROOT [--port 8080 --host 127.0.0.1 --threads 32 --batch-max 64 --batch-delay-ms 0 --standby --exact] "
             "[--shards I,J | --route HOST:PORT,...] [--event-log DIR --event-producer serve --event-roll-seconds 2]",
    .flags = {"export_root", "port", "host", "threads", "exact", "seed", "max_queued", "read_timeout", "max_k", "max_history", "batch_max",
              "batch_delay_ms", "standby", "shards", "route", "event_log", "event_producer", "event_roll_seconds"},
    .positional = 0,
    .run = RunServe,
});
Registrar query_cmd({
    .name = "query",
    .summary = "top-K items for a known user or a history of items, with raw ids, titles and scores",
    .usage = "shardrec query --export ROOT[/VERSION] (--user RAW_ID | --history RAW_ID[@UNIX_SECONDS],...) [--at UNIX_SECONDS --k 10 --json "
             "--explain]",
    .flags = {"export_dir", "user", "history", "k", "json", "exact", "explain", "at", "seed", "include_history"},
    .positional = 0,
    .run = RunQuery,
});

}  // namespace
}  // namespace shardrec::cli
