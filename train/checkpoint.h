// Checkpoints (docs/formats.md): RUN/checkpoints/step-<S>/ holds one HDF5 file per rank with its
// embedding shards as (global row id, vector, optimizer state) -- so any world size can load them --
// and dense.h5 with the dense parameters, AdamW state, trainer state (step, epoch, reader position,
// early-stopping state) and the random generator state. manifest.json, with every file's size and
// CRC-32C, is written last (temp file + fsync + rename): a directory without it is never loaded.
// ids.h5 holds the id space of the rows (item raw ids, category names, the dataset's fingerprints).
// The same layout, without optimizer and trainer state, holds a trained model (RUN/model).
// Layouts are documented in docs/formats.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "model/two_tower.h"

namespace torch::optim {
class AdamW;
}

namespace shardrec {

struct TrainerState {
  int64_t step = 0;        // optimizer steps done
  int64_t epoch = 0;       // epoch in progress
  int64_t next_batch = 0;  // next global batch of that epoch
  double best_valid_ndcg10 = -1;
  int64_t best_epoch = -1;
  int64_t bad_validations = 0;
};

// Rows of items that a warm start found retired (saved, but not in the new dataset), kept
// (`--retired keep`) so that an item which comes back on a later day gets its row and optimizer
// state back instead of a fresh row. Saved as retired.h5 beside the tables (docs/formats.md).
struct RetiredRows {
  struct Table {
    int64_t width = 0, state1_width = 0, state2_width = 0;  // state widths: 0 = no such state
    std::vector<float> vectors, state1, state2;              // [n x width] ...
  };
  std::vector<std::string> raw_ids;
  std::map<std::string, Table> tables;  // the item tables ("item_id", "item_input_id")
  bool empty() const { return raw_ids.empty(); }
};

// COLLECTIVE. Writes `dir` (replacing an older one of that name only once the new one is complete).
// `adam` and `state` may be null (a model without training state); `retired` too (none kept).
// `step`: the training step recorded in the manifest when `state` is null (a model saved during
// training), so a warm start can find the checkpoint of the same step.
// ids.h5 (docs/formats.md): the raw item id of every row and the category names, and the dataset
// they came from. WriteIdsFile writes one as given (a stream names rows its dataset does not have
// yet, serve/stream_job.h); a checkpoint's own is written from its catalogue's dataset.
struct SavedIds {
  std::string data, item_ids_fingerprint, data_fingerprint;
  std::vector<std::string> raw_ids, category_names;
};
void WriteIdsFile(const std::string& path, const SavedIds& ids);
inline constexpr const char* kIdsFile = "ids.h5";

// `extra` (optional) runs on rank 0 with the staging directory: files of the caller's own (such as
// a stream's consumed offsets, serve/stream_job.h) committed with the model, atomically; its .h5
// files are listed and verified as the others are.
void SaveCheckpoint(const std::string& dir, TwoTowerModel& model, torch::optim::AdamW* adam,
                    const TrainerState* state, Communicator& comm, const RetiredRows* retired = nullptr,
                    int64_t step = 0, const std::function<void(const std::string& staging)>& extra = {});
// The training step a checkpoint or model directory's manifest records (0: unknown).
int64_t SavedStep(const std::string& dir);
// The history length (max-len) the model in a checkpoint or model directory was built with, from
// its position table. Throws UserError naming the file if it is unreadable or its width is not
// `dim` (a model of another --dim).
int64_t SavedMaxLen(const std::string& dir, int64_t dim);
// Whether the model saved in `dir` has context features (ModelConfig::context).
bool SavedHasContext(const std::string& dir);
// The fingerprint of the events `dir` was trained on (Dataset::DataFingerprint), and the dataset's
// path then; empty when the checkpoint predates them.
struct SavedData {
  std::string fingerprint, path;
};
SavedData SavedDataOf(const std::string& dir);
// What a load did to the rows (counts of ids; all zero unless the id space changed).
struct LoadReport {
  struct Counts {
    int64_t carried = 0;  // saved ids the model has: their rows (and optimizer state) loaded
    int64_t fresh = 0;    // the model's ids that were not saved: rows as initialised
    int64_t dropped = 0;  // saved ids the model does not have (retired)
  };
  bool remapped = false;
  Counts items, categories;
  // Items of the saved retired rows (retired.h5) that the model has again: their rows were restored.
  int64_t returned = 0;
  // Rank 0: the retired rows the run keeps. Without remapping, the saved ones as they are; with
  // remapping and `keep_retired`, the saved ids the model lacks plus the saved retired rows still
  // retired. Null when there are none to keep.
  std::shared_ptr<RetiredRows> retired;
  // A warm start (remap_by_raw_id) from a model saved without context features: the dense
  // parameters left as initialised.
  std::vector<std::string> fresh_dense;
  // When remapped: bool [C], true where the model's category was saved (its row carried over).
  at::Tensor categories_known;
  // When remapped: bool [I], true where the model's item was saved (its row carried over).
  at::Tensor items_known;
};

// How a load treats the saved directory (LoadCheckpoint, below).
struct LoadOptions {
  bool verified = false;         // the directory came from PickCheckpoint: its checksums were verified
  bool remap_by_raw_id = false;  // rows go to the model's row of the same raw id (another id space)
  bool keep_retired = false;     // with remapping: keep the rows of saved ids the model lacks
  bool fresh_context = false;    // a warm start: context rows the saved model lacks keep their initial values
};

// COLLECTIVE. Loads what `dir` holds into this rank's shards (re-bucketing rows saved by any world
// size), the dense parameters and, when given, the AdamW and trainer state. Unless `verified` (the
// directory came from PickCheckpoint), verifies checksums first; a missing manifest or a damaged file
// is a UserError naming the file and what failed.
// Rows belong to the id space of the dataset the checkpoint was trained on (RUN/.../ids.h5). If
// the model's catalogue has other item ids, loading is a UserError naming both datasets unless
// `remap_by_raw_id`: then every saved row goes to the model's row of the same raw item id (category
// name), ids the model lacks are dropped (kept as retired rows with `keep_retired`) and ids new to
// it keep their initial rows, except ids whose rows the directory kept as retired: those come back.
// `fresh_context` (a warm start): a saved model without context features loads into one with them,
// whose context rows keep their initial values (LoadReport::fresh_dense); otherwise that is an error.
LoadReport LoadCheckpoint(const std::string& dir, TwoTowerModel& model, torch::optim::AdamW* adam,
                          TrainerState* state, Communicator& comm, const LoadOptions& options = {});
// Throws UserError naming the checkpoint and file if the manifest is missing or a file's size or
// checksum does not match it. Checks the files whose position in name order is `part` modulo `parts`.
void VerifyCheckpoint(const std::string& dir, int part = 0, int parts = 1);
// COLLECTIVE. The files are split across the ranks; every rank throws the same UserError (that of
// the lowest rank which found damage).
void VerifyCheckpoint(const std::string& dir, Communicator& comm);
// Checkpoint directories of a run, oldest first (only those with a manifest).
std::vector<std::string> ListCheckpoints(const std::string& run_dir);
// RUN/checkpoints/step-NNNNNNNNN: the directory of a run's checkpoint at `step` (zero-padded, so
// names sort in step order).
std::string CheckpointDir(const std::string& run_dir, int64_t step);
// COLLECTIVE. "latest": the newest checkpoint, which must verify; "latest-valid": the newest one that
// verifies (damaged newer ones are skipped and returned with what was wrong, for the caller to
// report). Rank 0's listing decides, so every rank gets the same directory. Throws UserError (on
// every rank) if there is none.
struct PickedCheckpoint {
  std::string dir;
  std::vector<std::string> skipped;  // one message per damaged newer checkpoint
};
PickedCheckpoint PickCheckpoint(const std::string& run_dir, const std::string& policy, Communicator& comm);
// Removes all but the newest `keep` checkpoints (and half-written ones older than the newest).
void PruneCheckpoints(const std::string& run_dir, int64_t keep);

}  // namespace shardrec
