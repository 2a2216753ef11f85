#include "train/trainer.h"

#include <torch/optim/adamw.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/process_memory.h"
#include "common/file_util.h"
#include "io/cold_start.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "io/h5.h"
#include "io/reader.h"
#include "model/footprint.h"
#include "model/losses.h"
#include "model/precision.h"
#include "train/checkpoint.h"
#include "eval/evaluate.h"
#include "train/run_dir.h"
#include "train/step.h"
#include "train/model_files.h"
#include "eval/cold_start.h"
#include "model/catalogue.h"

namespace shardrec {

// ---- training ----------------------------------------------------------------------------------

void CheckTrainOptions(const TrainOptions& o) {
  if (o.data.empty()) Fail("--data is required (a file from `shardrec data convert` or `data synth`)");
  if (o.run_dir.empty()) Fail("--run-dir is required");
  if (PathExists(o.run_dir) && !IsDirectory(o.run_dir)) Fail("--run-dir ", o.run_dir, ": exists and is not a directory");
  if (o.resume && o.overwrite) Fail("--resume and --overwrite contradict each other: continue the run or replace it");
  RequireFlag(o.epochs >= 1, "epochs", "at least 1", o.epochs);
  RequireFlag(o.max_steps >= 0, "max-steps", "0 (no limit) or more", o.max_steps);
  RequireFlag(o.time_budget_seconds >= 0 && std::isfinite(o.time_budget_seconds), "time-budget",
              "0 (no limit) or more seconds", o.time_budget_seconds);
  RequireFlag(o.batch_size >= 1 && o.batch_size <= (int64_t{1} << 30), "batch-size", "1 to 2^30", o.batch_size);
  RequireFlag(std::isfinite(o.step.lr) && o.step.lr > 0, "lr", "a finite rate > 0", o.step.lr);
  RequireFlag(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "weight-decay", "a finite value >= 0", o.weight_decay);
  RequireFlag(o.step.warmup_steps >= 0, "warmup-steps", "0 or more", o.step.warmup_steps);
  RequireFlag(std::isfinite(o.step.min_lr_ratio) && o.step.min_lr_ratio >= 0 && o.step.min_lr_ratio <= 1, "min-lr-ratio",
              "a ratio in [0, 1]", o.step.min_lr_ratio);
  RequireFlag(std::isfinite(o.step.clip_norm) && o.step.clip_norm >= 0, "clip-norm", "a finite norm >= 0 (0 = off)",
              o.step.clip_norm);
  RequireFlag(std::isfinite(o.step.content_loss) && o.step.content_loss >= 0, "content-loss", "a finite weight >= 0 (0 = off)",
              o.step.content_loss);
  if (o.loss != "full" && o.loss != "sampled" && o.loss != "auto") {
    Fail("--loss: expected full, sampled or auto, got '", o.loss, "'");
  }
  RequireFlag(o.negatives >= 0 && o.negatives <= (int64_t{1} << 24), "negatives", "0 to 2^24", o.negatives);
  RequireFlag(o.full_softmax_max_items >= 0, "full-softmax-max-items", "0 (always sampled under auto) or more", o.full_softmax_max_items);
  RequireFlag(std::isfinite(o.temperature) && o.temperature >= 0, "temperature", "a finite value > 0 (0 = by --score)",
          o.temperature);
  RequireFlag(o.eval_every >= 0, "eval-every", "0 (never) or more", o.eval_every);
  RequireFlag(o.patience >= 1, "patience", "at least 1", o.patience);
  RequireFlag(o.eval_batch_size >= 1 && o.eval_batch_size <= (int64_t{1} << 30), "eval-batch-size", "1 to 2^30", o.eval_batch_size);
  RequireFlag(std::isfinite(o.log_every_seconds) && o.log_every_seconds >= 0, "log-every", "seconds >= 0", o.log_every_seconds);
  RequireFlag(o.loss_every_steps >= 1, "loss_every_steps", "at least 1", o.loss_every_steps);
  RequireFlag(o.step.length_groups >= 1, "length-groups", "at least 1", o.step.length_groups);
  RequireFlag(o.bucket_batches >= 0 && o.bucket_batches <= 65536, "bucket-batches", "0 (off) to 65536", o.bucket_batches);
  RequireFlag(o.checkpoint_every >= 0, "checkpoint-every", "0 (only at the end) or more steps", o.checkpoint_every);
  RequireFlag(o.keep_checkpoints >= 1, "keep-checkpoints", "at least 1", o.keep_checkpoints);
  RequireFlag(std::isfinite(o.cold_items) && o.cold_items >= 0 && o.cold_items < 1, "cold-items",
              "a fraction in [0, 1) (0 = off)", o.cold_items);
  CheckModelConfig(o.model);
}

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

RetrievalLossOptions LossOptions(const TrainOptions& o, const DatasetInfo& info, int world_size) {
  return TrainLossOptions(o, info.num_items, world_size);
}

// One line on the loss the run uses and, under `auto`, why (printed with the plan, in plan.txt).
std::string DescribeLoss(const TrainOptions& o, const DatasetInfo& info) {
  const RetrievalLossOptions l = LossOptions(o, info, 1);
  std::string what = l.full ? "full softmax over all " + std::to_string(info.num_items) + " items"
                            : "sampled softmax over the batch's targets and " + std::to_string(l.negatives) +
                                  " shared uniform negatives" + (l.logq ? ", logQ-corrected" : "");
  if (o.loss == "auto") {
    what += " (--loss auto: full up to " + std::to_string(o.full_softmax_max_items) + " items, this data has " +
            std::to_string(info.num_items) + ")";
  }
  return "loss: " + what + "\n";
}

// Rank 0's checks of the run directory, taken under its lock: a fresh run does not land on an old one.
void CheckRunDirectory(const TrainOptions& o) {
  if (o.resume || o.overwrite) return;
  for (const char* what : {"config.yaml", "metrics.jsonl", "model", "checkpoints"}) {
    if (PathExists(o.run_dir + "/" + what)) {
      Fail("--run-dir ", o.run_dir, " holds a run (", what, "); continue it with --resume latest, or replace it with ",
           "--overwrite");
    }
  }
}

ReaderOptions TrainReaderOptions(const TrainOptions& o, const Communicator& comm) {
  ReaderOptions ro;
  ro.split = Split::kTrain;
  ro.global_batch_size = o.batch_size;
  ro.max_len = o.model.max_len;
  ro.seed = o.seed;
  ro.rank = comm.rank();
  ro.world_size = comm.world_size();
  ro.bucket_batches = o.bucket_batches;
  return ro;
}

// One training run: the loop and what it keeps between steps. Every rank runs the same sequence
// of collective calls; only rank 0 reports.
class TrainingRun {
 public:
  TrainingRun(const TrainOptions& o, Communicator& comm, TrainingSink* sink);
  TrainResult Run();

 private:
  void Plan();
  void Resume();
  void WarmStart();
  void Build(TrainingSink* sink);  // everything after the lock
  void Start(TrainingSink* sink);  // rank 0: the run's files, once everything before has succeeded
  bool RunEpoch();  // false: stop training
  void ReadLosses(bool force);
  int LocalStopSignal() const;  // this rank's signal, 0 if none
  void AgreeOnStop();
  void Report(bool console);  // `console`: a line for people is due
  bool Validate();  // false: early stop
  bool OutOfTime();  // before an epoch: would it end past --time-budget? (agreed by every rank)
  void Checkpoint(int64_t next_batch);

  const TrainOptions& o_;
  Communicator& comm_;
  const bool root_;
  std::unique_ptr<DirectoryLock> lock_;  // rank 0, for the whole run
  std::string plan_table_;
  PickedCheckpoint resumed_;
  std::string warm_from_, warm_ids_;  // the directory a warm start loaded, and its id summary
  std::shared_ptr<RetiredRows> retired_;  // rank 0: rows of retired items the run keeps (saved with it)
  SinkList sinks_;
  std::unique_ptr<TrainingSink> jsonl_, tb_;
  std::string cold_line_;  // rank 0: what the cold-start protocol did (printed with the plan)
  std::string data_;  // what the run trains on: o_.data, or the cold-start protocol's file
  double runtime_bytes_ = static_cast<double>(ReadProcessMemory().resident_bytes);  // the program before the run
  std::vector<MemoryEstimate> memory_;  // the memory model's per-rank estimate
  std::unique_ptr<Dataset> ds_;
  ItemCatalog catalog_;
  std::vector<int64_t> counts_;
  ShardingPlan plan_;
  std::unique_ptr<TwoTowerModel> model_;
  std::unique_ptr<torch::optim::AdamW> adam_;
  std::unique_ptr<RetrievalLoss> loss_;
  StepOptions step_options_;
  std::unique_ptr<TrainStep> step_fn_;
  std::unique_ptr<SequenceReader> reader_;
  TrainerState state_;
  TrainResult res_;
  int64_t total_ = 0, steps_before_ = 0, last_checkpoint_ = -1;
  bool stopped_mid_epoch_ = false;
  int stop_signal_ = 0;  // agreed by every rank
  double last_epoch_seconds_ = -1;  // the last epoch this process ran (validation included); -1: none yet
  // Loss sums of the steps not read yet (device tensors) and their global position counts.
  std::vector<at::Tensor> pending_;
  std::vector<int64_t> pending_positions_;
  // Progress window (rank 0).
  Clock::time_point start_ = Clock::now(), window_start_ = Clock::now(), line_start_ = Clock::now();
  double window_loss_ = 0;
  int64_t window_steps_ = 0, window_sequences_ = 0, sequences_ = 0, positions_ = 0;
};

TrainingRun::TrainingRun(const TrainOptions& o, Communicator& comm, TrainingSink* sink)
    : o_(o), comm_(comm), root_(comm.rank() == 0) {
  CheckTrainOptions(o);
  if (o.batch_size < comm.world_size()) Fail("--batch-size ", o.batch_size, " is smaller than the world size ", comm.world_size());
  bool created = false;  // rank 0 made the run directory (for this run): removed again if it fails to start
  RunAgreed(comm, [&] {
    if (!root_) return;
    created = !PathExists(o.run_dir);
    lock_ = std::make_unique<DirectoryLock>(o.run_dir, "a training run");
    CheckRunDirectory(o);
  });
  try {
    Build(sink);
  } catch (...) {
    if (created) RemoveAll(o.run_dir);  // under the lock, nothing of this run's is worth keeping
    throw;
  }
}

void TrainingRun::Build(TrainingSink* sink) {
  const TrainOptions& o = o_;
  Communicator& comm = comm_;
  data_ = o.data;
  if (o.cold_items > 0) {
    data_ = RunDir(o.run_dir).cold_start_data();
    cold_line_ = PrepareColdStartData(o.data, o.cold_items, o.cold_seed, data_, comm);
  }
  ds_ = Dataset::Open(data_);
  catalog_ = LoadItemCatalog(*ds_);
  counts_ = TrainItemCounts(*ds_, comm);
  Plan();
  model_ = std::make_unique<TwoTowerModel>(o.model, catalog_, plan_, &comm, o.seed);
  model_->train(true);
  // An item without training events is served from its content (a warm start then loads the rows
  // of the ids PREV trained; a resumed run loads its own).
  if (model_->has_content_path()) model_->ZeroIdRows(counts_);
  adam_ = std::make_unique<torch::optim::AdamW>(model_->dense_parameters(),
                                                torch::optim::AdamWOptions(o.step.lr).weight_decay(o.weight_decay));
  RetrievalLossOptions lo = LossOptions(o, ds_->info(), comm.world_size());
  lo.mask_unseen = model_->has_content_path();
  loss_ = std::make_unique<RetrievalLoss>(lo, counts_, c10::Device(comm.device()));
  reader_ = std::make_unique<SequenceReader>(data_, TrainReaderOptions(o, comm));
  const int64_t per_epoch = reader_->num_batches();
  total_ = o.max_steps > 0 ? std::min(o.max_steps, per_epoch * o.epochs) : per_epoch * o.epochs;
  step_options_ = o.step;
  step_options_.total_steps = total_;
  step_options_.seed = o.seed;
  step_fn_ = std::make_unique<TrainStep>(*model_, *loss_, *adam_, comm, step_options_);
  if (o.resume) {
    Resume();
  } else if (!o.init_from.empty()) {
    WarmStart();
  }
  // Rank 0 writes the run's files; every rank learns whether that worked.
  RunAgreed(comm, [&] {
    if (root_) Start(sink);
  });
}

void TrainingRun::Start(TrainingSink* sink) {
  if (o_.overwrite) {
    for (const auto& name : ListDirectory(o_.run_dir)) {
      if (RunDir::IsRunEntry(name)) RemoveAll(o_.run_dir + "/" + name);
    }
  }
  if (!o_.config_text.empty()) WriteFileAtomically(RunDir(o_.run_dir).config(), o_.config_text);
  jsonl_ = MakeJsonlSink(o_.run_dir);
  tb_ = MakeTensorBoardSink(o_.run_dir);
  sinks_.Add(sink);
  sinks_.Add(jsonl_.get());
  sinks_.Add(tb_.get());
  sinks_.OnPlan(plan_table_);
  WritePlanFile(RunDir(o_.run_dir).plan(), plan_, plan_table_);
  if (!warm_from_.empty()) sinks_.OnWarmStart(warm_from_, warm_ids_);
  // Options that only act through the item tower's content path, on a tower without one; the
  // content loss without id dropout.
  if (!model_->has_content_path()) {
    if (o_.model.id_dropout > 0) sinks_.OnWarning("--id-dropout has no effect: the item tower has no categories or content");
    if (o_.step.content_loss > 0) sinks_.OnWarning("--content-loss has no effect: the item tower has no categories or content");
    if (o_.model.impute_untrained) {
      sinks_.OnWarning("--untrained-items neighbours has no effect: the item tower has no categories or content to find neighbours by");
    }
  } else if (o_.step.content_loss > 0 && o_.model.id_dropout == 0) {
    sinks_.OnWarning("--content-loss without --id-dropout: content-only targets then compete against a catalogue that always "
                     "has its id rows, which made training collapse in measurements (docs/training.md)");
  }
  if (!o_.resume) return;
  for (const auto& w : resumed_.skipped) sinks_.OnWarning(w);
  // The same item ids (checked by the load) but other events: the run goes on, on what it is given
  // now, and is no longer the run it would have been.
  const SavedData saved = SavedDataOf(resumed_.dir);
  if (!saved.fingerprint.empty() && saved.fingerprint != ds_->DataFingerprint()) {
    sinks_.OnWarning("resuming on other events: " + resumed_.dir + " was trained on " + saved.path + " (events " +
                     saved.fingerprint + "), --data " + o_.data + " has the same item ids but other events (" +
                     ds_->DataFingerprint() + "); the run continues on them, so its model is not the uninterrupted run's");
  }
  sinks_.OnResume(resumed_.dir, state_.step, state_.epoch, state_.next_batch);
}

// The plan is made here, outside the model, from the run's budget; it is reported and saved.
void TrainingRun::Plan() {
  PlannerOptions po = o_.planner;
  po.global_batch_size = o_.batch_size;
  // The memory model for this run, on this machine: the program as loaded so far is the runtime.
  TrainingShape shape;
  shape.num_items = catalog_.num_items;
  shape.num_categories = catalog_.num_categories;
  shape.category_values = static_cast<int64_t>(catalog_.category_values.size());
  shape.content_dim = catalog_.content.defined() ? catalog_.content.size(1) : 0;
  shape.num_users = ds_->info().num_users;
  shape.num_events = ds_->info().num_events;
  shape.validation = o_.eval_every > 0;
  shape.global_batch = o_.batch_size;
  shape.world_size = comm_.world_size();
  const RetrievalLossOptions lo = LossOptions(o_, ds_->info(), comm_.world_size());
  shape.full_softmax = lo.full;
  shape.timestamps = ds_->info().has_timestamps;
  shape.event_cache_bytes = static_cast<double>(Dataset::kEventCacheBytes);
  shape.negatives = lo.negatives;
  shape.content_loss = o_.step.content_loss > 0;
  if (std::any_of(counts_.begin(), counts_.end(), [](int64_t c) { return c > 0; })) shape.ids.counts = &counts_;
  ClusterSpec here{.name = "this job", .nodes = 1, .gpus_per_node = comm_.world_size(), .reserved_bytes = runtime_bytes_,
                   .memory_bandwidth = po.memory_bandwidth, .intra_node_bandwidth = po.link_bandwidth,
                   .inter_node_bandwidth = po.link_bandwidth};
  // The planner scores placements with the estimate printed below (one cost model).
  po.cluster = here;
  po.workloads = ItemTowerWorkloads(o_.model, ItemTowerTables(o_.model, catalog_), shape);
  plan_ = PlanItemTables(o_.model, catalog_, comm_, po);
  memory_ = EstimateTrainingMemory(o_.model, plan_, shape, here);
  if (!root_) return;
  char head[256];
  std::snprintf(head, sizeof(head), "sharding plan: %d rank(s); budget %.1f GiB/rank, memory %.0f GB/s, link %.1f GB/s\n",
                comm_.world_size(), po.memory_budget_bytes / (1 << 30), po.memory_bandwidth / 1e9, po.link_bandwidth / 1e9);
  plan_table_ = o_.derived + cold_line_ + DescribeLoss(o_, ds_->info()) + head + plan_.ToTable() +
                "memory estimate per rank, MiB (docs/sharding.md, \"The memory model\"; runtime: this process before the run)\n" +
                MemoryTable(memory_, /*gib=*/false, /*device=*/false);
}

void TrainingRun::Resume() {
  resumed_ = PickCheckpoint(o_.run_dir, o_.resume_from, comm_);
  retired_ = LoadCheckpoint(resumed_.dir, *model_, adam_.get(), &state_, comm_, {.verified = true}).retired;
  res_.best_valid_ndcg10 = state_.best_valid_ndcg10;
  res_.best_epoch = state_.best_epoch;
}

void TrainingRun::WarmStart() {
  const PreviousModel from = ResolvePreviousModel(o_.init_from, &comm_);
  warm_from_ = from.dir;
  const Clock::time_point load_start = Clock::now();
  const LoadReport r = LoadCheckpoint(warm_from_, *model_, adam_.get(), nullptr, comm_,
                                      {.verified = from.verified, .remap_by_raw_id = true, .keep_retired = o_.keep_retired,
                                       .fresh_context = true});
  retired_ = r.retired;
  auto counts = [](const char* what, const LoadReport::Counts& c, const char* gone) {
    return std::string(what) + " " + std::to_string(c.carried) + " carried over, " + std::to_string(c.fresh) + " new, " +
           std::to_string(c.dropped) + " " + gone;
  };
  const std::string back = r.returned > 0 ? " (" + std::to_string(r.returned) + " of them back from retirement)" : "";
  const std::string kept = retired_ ? ", " + std::to_string(retired_->raw_ids.size()) + " retired rows kept" : "";
  warm_ids_ = r.remapped ? counts("items", r.items, o_.keep_retired ? "retired" : "dropped") + back + kept + "; " +
                               counts("categories", r.categories, "dropped")
                         : "the same item ids (" + std::to_string(catalog_.num_items) + " items)" + kept;
  if (!r.fresh_dense.empty()) warm_ids_ += "; context rows start fresh (" + warm_from_ + " was trained without context)";
  char took[64];
  std::snprintf(took, sizeof(took), "; loaded in %.1f s", Since(load_start));
  warm_ids_ += took;
}

int TrainingRun::LocalStopSignal() const { return o_.stop_signal != nullptr ? o_.stop_signal->load() : 0; }

// Reads the pending losses: one all-reduce for all of them, then the host. Every rank calls it at
// the same steps. The stop request travels in the same all-reduce: every rank learns of a signal
// that reached any of them at the same step.
void TrainingRun::ReadLosses(bool force) {
  // At multiples of loss_every_steps (and where forced: epoch ends, validations, stops), so that the
  // windows are the same steps in a resumed run as in the uninterrupted one.
  if (pending_.empty() || (!force && res_.steps % o_.loss_every_steps != 0)) return;
  const float stop = static_cast<float>(LocalStopSignal());
  pending_.push_back(at::full({}, stop, pending_.front().options().dtype(at::kFloat)));
  at::Tensor sums = at::stack(pending_).to(at::kFloat);
  pending_.pop_back();
  comm_.AllReduce(sums, ReduceOp::kSum);
  sums = sums.cpu();
  if (sums.data_ptr<float>()[pending_.size()] > 0 && stop_signal_ == 0) {
    // Every rank is here (the sum is the same everywhere): agree on which signal to name.
    at::Tensor which = at::full({1}, stop, at::TensorOptions().device(comm_.device()));
    comm_.AllReduce(which, ReduceOp::kMax);
    stop_signal_ = static_cast<int>(which.cpu().item<float>());
  }
  const int64_t first = res_.steps - static_cast<int64_t>(pending_.size()) + 1;
  for (size_t i = 0; i < pending_.size(); ++i) {
    const double loss = static_cast<double>(sums.data_ptr<float>()[i]) / static_cast<double>(pending_positions_[i]);
    if (!std::isfinite(loss)) {
      Fail("training diverged: the loss is ", loss, " at step ", first + static_cast<int64_t>(i), " (epoch ",
           state_.epoch, "); lower --lr, raise --warmup-steps or --temperature");
    }
    res_.losses.push_back(loss);
    window_loss_ += loss;
    ++window_steps_;
  }
  pending_.clear();
  pending_positions_.clear();
  // Every read is recorded (metrics file, TensorBoard): its steps, so a resumed run logs what the
  // uninterrupted one does; the console shows one every log_every_seconds.
  if (root_) Report(Since(line_start_) >= o_.log_every_seconds || res_.steps == total_);
}

// Outside the step loop (after a validation): one small all-reduce of the stop request.
void TrainingRun::AgreeOnStop() {
  if (stop_signal_ != 0) return;
  at::Tensor flag = at::full({1}, static_cast<float>(LocalStopSignal()), at::TensorOptions().device(comm_.device()));
  comm_.AllReduce(flag, ReduceOp::kMax);
  stop_signal_ = static_cast<int>(flag.cpu().item<float>());
}

void TrainingRun::Report(bool console) {
  ProgressReport r;
  r.console = console;
  if (console) line_start_ = Clock::now();
  r.step = res_.steps;
  r.total_steps = total_;
  r.epoch = state_.epoch;
  r.loss = window_loss_ / std::max<int64_t>(1, window_steps_);
  r.lr = DenseLr(step_options_, r.step);
  r.sequences_per_second = window_sequences_ / std::max(1e-9, Since(window_start_));
  r.seconds = Since(start_);
  r.eta_seconds = (total_ - r.step) * r.seconds / std::max<int64_t>(1, r.step - steps_before_);
  sinks_.OnProgress(r);
  window_start_ = Clock::now();
  window_loss_ = 0;
  window_steps_ = window_sequences_ = 0;
}

bool TrainingRun::RunEpoch() {
  reader_->StartEpoch(state_.epoch);
  reader_->Seek(state_.next_batch);
  bool at_max_steps = false;
  while (true) {
    if (o_.max_steps > 0 && res_.steps >= o_.max_steps) {
      at_max_steps = true;
      stopped_mid_epoch_ = state_.next_batch < reader_->num_batches();
      break;
    }
    auto batch = reader_->Next();
    if (!batch) break;
    state_.next_batch = batch->index + 1;
    pending_.push_back(step_fn_->Run(*batch, ++res_.steps));
    pending_positions_.push_back(std::max<int64_t>(1, batch->global_positions));
    sequences_ += batch->global_rows;
    positions_ += batch->global_positions;
    window_sequences_ += batch->global_rows;
    const bool checkpoint = o_.checkpoint_every > 0 && res_.steps % o_.checkpoint_every == 0;
    ReadLosses(/*force=*/checkpoint || res_.steps == total_);
    if (checkpoint) Checkpoint(state_.next_batch);
    if (stop_signal_ != 0) break;
  }
  ReadLosses(/*force=*/true);
  res_.epochs = state_.epoch + 1;
  // Stopped by a signal (even after the epoch's last batch, whose validation then runs on resume).
  if (stop_signal_ != 0) stopped_mid_epoch_ = true;
  if (stopped_mid_epoch_) return false;  // --max-steps inside an epoch: no validation of a partial epoch
  const bool go = o_.eval_every <= 0 || (state_.epoch + 1) % o_.eval_every != 0 || Validate();
  if (go) AgreeOnStop();
  if (stop_signal_ != 0) {  // after this epoch's validation: resume at the next epoch
    ++state_.epoch;
    state_.next_batch = 0;
    stopped_mid_epoch_ = true;
    return false;
  }
  return go && !at_max_steps;
}

bool TrainingRun::Validate() {
  auto m = EvaluateModel(*model_, {.data = data_, .split = Split::kValid, .batch_size = o_.eval_batch_size, .item_counts = counts_},
                         comm_);
  if (root_) sinks_.OnValidation(res_.steps, state_.epoch, m);
  if (m["ndcg@10"] > res_.best_valid_ndcg10) {
    res_.best_valid_ndcg10 = m["ndcg@10"];
    res_.best_epoch = state_.epoch;
    state_.bad_validations = 0;
    if (o_.save_model) SaveModel(*model_, RunDir(o_.run_dir).model(), comm_, retired_.get(), res_.steps);
    return true;
  }
  if (++state_.bad_validations < o_.patience) return true;
  if (root_) sinks_.OnEarlyStop(o_.patience);
  return false;
}

bool TrainingRun::OutOfTime() {
  if (o_.time_budget_seconds <= 0 || last_epoch_seconds_ < 0) return false;
  const double used = Since(start_);
  // Clocks differ a little between ranks: the decision is one all-reduce, so every rank takes it.
  at::Tensor over = at::full({1}, used + last_epoch_seconds_ > o_.time_budget_seconds ? 1.f : 0.f,
                             at::TensorOptions().device(comm_.device()));
  comm_.AllReduce(over, ReduceOp::kMax);
  if (over.cpu().item<float>() == 0) return false;
  res_.out_of_time = true;
  if (root_) sinks_.OnTimeBudget(used, last_epoch_seconds_, o_.time_budget_seconds);
  return true;
}

void TrainingRun::Checkpoint(int64_t next_batch) {
  TrainerState s = state_;
  s.step = res_.steps;
  s.next_batch = next_batch;
  s.best_valid_ndcg10 = res_.best_valid_ndcg10;
  s.best_epoch = res_.best_epoch;
  const std::string dir = CheckpointDir(o_.run_dir, res_.steps);
  SaveCheckpoint(dir, *model_, adam_.get(), &s, comm_, retired_.get());
  if (root_) PruneCheckpoints(o_.run_dir, std::max<int64_t>(1, o_.keep_checkpoints));
  last_checkpoint_ = res_.steps;
  res_.last_checkpoint = dir;
}

TrainResult TrainingRun::Run() {
  res_.steps = steps_before_ = state_.step;
  start_ = window_start_ = line_start_ = Clock::now();
  bool go = true;
  for (; state_.epoch < o_.epochs && go; ++state_.epoch, state_.next_batch = 0) {
    if (OutOfTime()) break;  // resumes at this epoch
    const Clock::time_point epoch_start = Clock::now();
    go = RunEpoch();
    last_epoch_seconds_ = Since(epoch_start);
    if (stopped_mid_epoch_) break;  // resumes inside this epoch
  }
  ReadLosses(/*force=*/true);
  res_.seconds = Since(start_);
  res_.examples_per_second = sequences_ / std::max(1e-9, res_.seconds);
  res_.positions_per_second = static_cast<double>(positions_) / std::max(1e-9, res_.seconds);
  res_.stop_signal = stop_signal_;
  // A run stopped by a signal saves only its checkpoint (the model follows when it is resumed).
  if (o_.save_model && stop_signal_ == 0 && (o_.eval_every == 0 || res_.best_epoch < 0)) {
    SaveModel(*model_, RunDir(o_.run_dir).model(), comm_, retired_.get(), res_.steps);
  }
  // Final checkpoint: where a stopped run resumes (the position after the last step taken).
  if (last_checkpoint_ != res_.steps && res_.steps > steps_before_) {
    Checkpoint(stopped_mid_epoch_ ? state_.next_batch : 0);
  }
  // Not collective: a rank that failed after the agreed saves must not leave the others waiting.
  const MemoryEstimate& m = memory_[comm_.rank()];
  res_.peak_memory_bytes = static_cast<double>(ReadProcessMemory().peak_bytes);
  res_.estimated_memory_bytes = comm_.device() == "cpu" ? m.total() : m.host() + m.runtime;
  return res_;
}

}  // namespace

RetrievalLossOptions TrainLossOptions(const TrainOptions& o, int64_t num_items, int world_size) {
  RetrievalLossOptions l;
  l.full = UsesFullSoftmax(o.loss, num_items, o.full_softmax_max_items);
  l.negatives = o.negatives;
  l.temperature = o.temperature != 0 ? o.temperature : (o.model.cosine ? 0.05 : 1.0);
  l.logq = o.logq;
  l.seed = o.seed;
  // A rank's piece holds at most ceil(batch / world) rows of at most max_len positions.
  l.max_positions_per_rank = (o.batch_size + world_size - 1) / world_size * o.model.max_len;
  return l;
}

MaxLenChoice ChooseMaxLen(const std::string& data, const std::string& init_from, int64_t dim) {
  if (!init_from.empty()) {
    int64_t n = 0;
    try {
      n = SavedMaxLen(ResolvePreviousModel(init_from, nullptr).dir, dim);
    } catch (const UserError& e) {
      Fail("--max-len 0 (auto) reads the max-len of the model --init-from names: ", e.what(), "; pass --max-len N");
    }
    return {n, "max-len: " + std::to_string(n) + " (--max-len 0: as " + init_from + " was trained)\n"};
  }
  auto ds = Dataset::Open(data);
  const std::vector<int64_t>& off = ds->user_offsets();
  std::vector<int64_t> lengths;
  lengths.reserve(off.size());
  for (size_t u = 0; u + 1 < off.size(); ++u) lengths.push_back(TrainEventsEnd(off[u], off[u + 1]) - off[u]);
  if (lengths.empty()) Fail(data, ": no users");
  const size_t at = (lengths.size() * 9 + 9) / 10 - 1;  // the 90th percentile: the smallest length >= 90% of users'
  std::nth_element(lengths.begin(), lengths.begin() + static_cast<std::ptrdiff_t>(at), lengths.end());
  const int64_t p90 = lengths[at];
  const int64_t chosen = std::clamp<int64_t>((p90 + 9) / 10 * 10, 50, 200);
  return {chosen, "max-len: " + std::to_string(chosen) + " (--max-len 0: 90% of the " + std::to_string(lengths.size()) +
                      " users have at most " + std::to_string(p90) + " training events; kept within [50, 200])\n"};
}

TrainResult Train(const TrainOptions& o, Communicator& comm, TrainingSink* sink) {
  TrainingRun run(o, comm, sink);
  return run.Run();
}

}  // namespace shardrec
