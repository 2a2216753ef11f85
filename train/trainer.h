// The training loop of the two-tower model (docs/architecture.md, "One batch"): options, the run's
// start (plan, warm start, resume), epochs with validation through eval/, checkpoints and the model.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "model/two_tower.h"
#include "sharding/planner.h"
#include "train/checkpoint.h"
#include "model/catalogue.h"
#include "train/report.h"
#include "train/step.h"

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
  double weight_decay = 0.0;
  std::string loss = "auto";  // full | sampled | auto (full when items <= full_softmax_max_items)
  // Where full softmax stops being affordable (every item is encoded and scored at every position
  // of every step); sampled softmax, which scales to any catalogue, above it.
  int64_t full_softmax_max_items = 50000;
  int64_t negatives = 256;    // sampled: uniform negatives shared by the global batch
  double temperature = 0;  // 0: by the model's scores (0.05 for cosine, 1 for dot)
  bool logq = true;
  int64_t eval_every = 1;     // epochs between validations (0 = never)
  int64_t patience = 5;       // validations without a better NDCG@10 before stopping
  int64_t eval_batch_size = 256;
  double log_every_seconds = 10;
  // Steps between reads of the loss (one all-reduce and one host synchronisation per read; also
  // where a diverged loss is detected). Progress is reported at the first read after
  // log_every_seconds.
  int64_t loss_every_steps = 20;
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
  // The step: the dense rate and its schedule (after warm-up constant, or a cosine from lr down to
  // lr x min_lr_ratio at the run's last step), clipping, precision, length groups, history
  // exclusion, the content loss (train/step.h). total_steps and seed are filled in by Train (from
  // epochs or max_steps, and from `seed`).
  StepOptions step;
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
  double positions_per_second = 0;  // predicted positions (events learnt as targets) per second
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

// The loss a run with `options` trains with on `num_items` items at `world_size` ranks (--loss,
// --negatives, --temperature, --logq, the seed; mask_unseen is the caller's).
RetrievalLossOptions TrainLossOptions(const TrainOptions& options, int64_t num_items, int world_size);

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

}  // namespace shardrec
