// Training and evaluation of the two-tower model (DESIGN sections 3 and 8). Options structs only;
// the CLI maps flags/config keys onto them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "model/two_tower.h"
#include "sharding/plan.h"
#include "train/checkpoint.h"
#include "train/eval_scoring.h"
#include "train/item_data.h"
#include "train/report.h"

namespace shardrec {

struct RetiredRows;  // train/checkpoint.h

struct TrainOptions {
  std::string data;      // dataset file
  std::string run_dir;   // outputs: config.yaml, metrics.jsonl, events.out.tfevents.*, model/
  // The cold-start protocol (io/cold_start.h, docs/training.md): this fraction of the items with
  // events is held out of training; the run trains and validates on RUN/cold-start.h5, derived from
  // `data` (written when the run starts; a resumed run reuses it). 0 = off.
  double cold_items = 0;
  uint64_t cold_seed = 1;
  int64_t epochs = 20;
  int64_t max_steps = 0;  // 0 = no limit
  // Wall seconds this process may train (validation included; 0 = no limit). Checked before each
  // epoch after the first: the run stops when the elapsed time plus the last epoch's would pass it,
  // so it ends at an epoch boundary, validated, and normally within the budget. A resumed run gets
  // the budget afresh. The cosine schedule still spans `epochs` (or max_steps).
  double time_budget_seconds = 0;
  int64_t batch_size = 256;  // global, whatever the world size
  uint64_t seed = 1;
  double lr = 1e-3;
  double weight_decay = 0.0;
  int64_t warmup_steps = 100;
  // After warm-up, the dense rate stays (constant) or follows a cosine from lr down to
  // lr x min_lr_ratio at the run's last step (epochs x batches per epoch, or max_steps).
  std::string lr_schedule = "constant";
  double min_lr_ratio = 0.0;
  double clip_norm = 1.0;  // on the dense gradient; 0 = off
  std::string loss = "auto";  // full | sampled | auto (full when items <= full_softmax_max_items)
  // Where full softmax stops being affordable (every item is encoded and scored at every position
  // of every step); sampled softmax, which scales to any catalogue, above it.
  int64_t full_softmax_max_items = 50000;
  int64_t negatives = 256;    // sampled: uniform negatives shared by the global batch
  double temperature = 0;  // 0: by the model's scores (0.05 for cosine, 1 for dot)
  bool logq = true;
  // float32 | bfloat16: the user tower's products in the training step run under bfloat16 autocast
  // (the loss, the item tower, evaluation and export stay float32).
  std::string precision = "float32";
  int64_t eval_every = 1;     // epochs between validations (0 = never)
  int64_t patience = 5;       // validations without a better NDCG@10 before stopping
  int64_t eval_batch_size = 256;
  double log_every_seconds = 10;
  // Steps between reads of the loss (one all-reduce and one host synchronisation per read; also
  // where a diverged loss is detected). Progress is reported at the first read after
  // log_every_seconds.
  int64_t loss_every_steps = 20;
  // Rows of a batch go through the user tower in this many groups of similar length, each padded
  // to its own longest row (train/step.h); the batches themselves are unchanged.
  int64_t length_groups = 8;
  // A position's softmax leaves out the items earlier in its own sequence, which evaluation
  // excludes too (train/step.h); off for data where users repeat items they had.
  bool exclude_history = false;
  // Weight of the content loss (train/step.h: each target also scored by its content-only vector
  // against the step's candidates); 0 = off. Needs categories or content.
  double content_loss = 0;
  // Length bucketing of training batches (io/reader.h): windows of this many global batches are
  // sorted by length, so a batch holds similar lengths; 0 = off (random batches).
  int64_t bucket_batches = 0;
  bool save_model = true;
  int64_t checkpoint_every = 0;  // steps between checkpoints (0: only at the end)
  int64_t keep_checkpoints = 3;  // newest checkpoints kept
  bool resume = false;           // continue from a checkpoint of run_dir
  // Warm start (ignored on resume): a previous run directory (its newest checkpoint that verifies,
  // else its model), a checkpoint or model directory, or an export root or version (the model it
  // was exported from). Rows and their sparse optimizer state carry over by raw id, dense
  // parameters and AdamW state as they are; ids new in `data` keep their initial rows, ids it no
  // longer has are dropped (or kept: keep_retired). The step count, schedule and early stopping
  // start afresh.
  std::string init_from;
  // Warm start: keep the rows (and optimizer state) of ids PREV had and `data` no longer has, saved
  // with the run's checkpoints and model (retired.h5), so that an id which comes back on a later day
  // gets its row back. Off: they are dropped. Rows kept by PREV itself always come back.
  bool keep_retired = false;
  std::string resume_from = "latest";  // latest | latest-valid
  // A run directory that holds a run (config.yaml, metrics.jsonl, model/ or checkpoints/) takes a
  // fresh run only with overwrite, which removes the old run's files once the new run has started.
  bool overwrite = false;
  // Written to RUN/config.yaml when the run starts (nothing when empty).
  std::string config_text;
  // Lines printed first with the plan (and in RUN/plan.txt): settings the command line derived.
  std::string derived;
  // Set (to a signal number) by a signal handler to stop the run at a safe point: the ranks agree
  // at their next loss read (every loss_every_steps steps, and after a validation), write a
  // checkpoint at the position after the last step, and Train returns with stop_signal set.
  const std::atomic<int>* stop_signal = nullptr;
  ModelConfig model;
  // Budget of the sharding plan (world_size and global_batch_size are filled in by Train).
  PlannerOptions planner;
};

struct TrainResult {
  int64_t steps = 0;
  int64_t epochs = 0;
  std::vector<double> losses;  // global loss per step (identical on every rank)
  double best_valid_ndcg10 = -1;
  int64_t best_epoch = -1;
  double seconds = 0;              // the training loop (validations included; final saves not)
  double examples_per_second = 0;  // sequences per second over all ranks
  int stop_signal = 0;             // the signal that stopped the run early (0: it ran to its end)
  bool out_of_time = false;        // stopped before an epoch that would have passed time_budget_seconds
  std::string last_checkpoint;     // the run's newest checkpoint directory ("" if none was written)
  // This rank's memory: the process's peak resident bytes at the end of the run (saves included)
  // and the memory model's estimate of it (model/footprint.h) made when the run was planned. On an
  // accelerator both are the host's share (the device's is printed with the plan).
  double peak_memory_bytes = 0, estimated_memory_bytes = 0;
};

// Throws UserError naming the option (as its flag) for a value out of range. Train calls it first.
void CheckTrainOptions(const TrainOptions& options);

// `--max-len 0` (auto): the history length a run keeps, from the data. A fresh run takes the 90th
// percentile of the training sequence lengths, rounded up to a multiple of 10, within [50, 200]
// (short-sequence data keeps 50, long histories get up to 200); a warm start (`init_from`) takes the
// length PREV was trained with, so nightly runs keep one model shape. `reason` is the line the run
// prints with its plan. Reads files only (no collective). Throws UserError if PREV's length cannot
// be read.
struct MaxLenChoice {
  int64_t max_len = 0;
  std::string reason;
};
MaxLenChoice ChooseMaxLen(const std::string& data, const std::string& init_from, int64_t dim);

// COLLECTIVE. Locks run_dir (a second run into it is an error naming the holder) and checks that a
// fresh run does not land on an old one. Plans the embedding tables (RUN/plan.txt, and reported to
// `sink`), trains, validates each `eval_every` epochs with early stopping on NDCG@10, and saves the
// best model to run_dir/model (when save_model). Nothing is written until the run has started
// (data opened, model built, checkpoint loaded): a run that fails before leaves no new file. Rank 0
// reports to `sink` (may be null) and writes RUN/metrics.jsonl and TensorBoard events. Throws
// UserError on bad data or options, including a NaN/Inf loss (naming the step).
TrainResult Train(const TrainOptions& options, Communicator& comm, TrainingSink* sink = nullptr);

// COLLECTIVE. Full-ranking metrics on `split` ("valid" or "test") of a model saved by Train, or of a
// baseline ("pop": most popular; "cooc": item-to-item transitions from the previous item).
struct EvalOptions {
  std::string data;
  std::string run_dir;   // model source (ignored by baselines)
  std::string split = "test";
  std::string baseline;  // "", "pop" or "cooc"
  int64_t batch_size = 256;
  ModelConfig model;
  uint64_t seed = 1;
  // Also rank through the ANN index of this export (ROOT or ROOT/<version>): "ann_" metrics,
  // computed from the index's top 200 (MRR is then MRR@200).
  std::string ann_export;
  // The cold-start protocol: warm / cold slices by the cold items of (data, cold_items, cold_seed).
  // The histories are the protocol's (RUN/cold-start.h5) when the run was trained under the same
  // protocol, else `data`'s own (a model trained on everything, sliced the same way). 0 = off.
  double cold_items = 0;
  uint64_t cold_seed = 1;
  // > 0: evaluate a uniform sample of this many of the split's users, drawn from a fixed seed (the
  // same users for every model of the data); 0 = all.
  int64_t sample_users = 0;
  EvalScoring scoring = EvalScoring::kAuto;  // --eval-scoring (train/evaluate.h)
  // After each batch, on every rank: batches done, batches in all, users ranked so far (all ranks').
  std::function<void(int64_t, int64_t, int64_t)> progress;
};
// Fills `histories` with the data it ranked: the protocol's file or `options.data`.
std::map<std::string, double> Evaluate(const EvalOptions& options, Communicator& comm, std::string* histories = nullptr);

// The protocol's dataset of a run (RUN/cold-start.h5).
std::string ColdStartDataPath(const std::string& run_dir);
// COLLECTIVE. Makes sure `path` holds the protocol's dataset of `data` for (fraction, seed): rank 0
// writes it unless it already does (atomically), and every rank learns whether that worked.
// Returns, on rank 0, a line saying what it did.
std::string PrepareColdStartData(const std::string& data, double fraction, uint64_t seed, const std::string& path,
                          Communicator& comm);

// Writes / reads a model (train/checkpoint.h layout without training state). LoadModel imputes the
// untrained id rows when the config says so (ModelConfig::impute_untrained).
void SaveModel(TwoTowerModel& model, const std::string& dir, Communicator& comm, const RetiredRows* retired = nullptr,
               int64_t step = 0);
void LoadModel(TwoTowerModel& model, const std::string& dir, Communicator& comm);
// COLLECTIVE. LoadModel for a catalogue that may have grown since training (`shardrec export
// --add-items`, and the queries of such an export): rows go to the model's items by raw id, and an
// item the model was not trained on gets zero id rows, so it is served from its content and
// categories alone (or, with ModelConfig::impute_untrained, from its nearest trained items). Returns the number of such items. A UserError if there are any and the model
// has no content path (nothing to embed them from).
int64_t LoadModelForCatalogue(TwoTowerModel& model, const std::string& dir, Communicator& comm);
// COLLECTIVE. What LoadModelForCatalogue does, without requiring a content path for new items (a
// caller that masks them, such as the publish gate ranking the served model): zero rows for
// items and categories the model lacks, rows by raw id, imputation per the config. Returns the
// load's report (LoadReport::items_known says which items the model has).
LoadReport LoadModelForServing(TwoTowerModel& model, const std::string& dir, Communicator& comm);

}  // namespace shardrec
