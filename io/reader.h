// Sharded, streaming reader of user sequences with the leave-one-out split (docs/formats.md,
// "Splits"). Global batches are fixed by (seed, epoch) alone, and rank r of N receives a
// contiguous piece of every global batch, so the N pieces of batch b concatenated in rank order
// are exactly batch b of a single-process reader: training with N ranks sees the same global
// batches as with 1. Every rank yields the same number of batches per epoch (possibly empty ones),
// so collective calls stay matched. A rank reads only its own users' events.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace shardrec {

// Leave-one-out: for a user with n >= 3 events, test = event n-1, valid = event n-2,
// train = events [0, n-2). Users with n < 3 are train-only (all their events).
enum class Split { kTrain, kValid, kTest };
const char* SplitName(Split s);
// End of the training events of a user whose events are [begin, end): end - 2 when the user has
// valid/test events (n >= 3), else end.
inline int64_t TrainEventsEnd(int64_t begin, int64_t end) { return end - begin >= 3 ? end - 2 : end; }

struct ReaderOptions {
  Split split = Split::kTrain;
  int64_t global_batch_size = 256;  // users per global batch, over all ranks
  int64_t max_len = 50;             // history length kept (most recent events)
  uint64_t seed = 0;
  bool shuffle = true;              // false: users in dense-id order
  bool drop_last = false;           // drop a short final global batch
  int rank = 0;
  int world_size = 1;
  int64_t pad_id = -1;              // value of padding positions in `items`
  bool pad_to_max_len = false;      // width = max_len (+1 for train) instead of the batch maximum
  bool full_history = false;        // also return each row's untruncated input (for exclusion)
  // Length bucketing (training): after the shuffle, every window of `bucket_batches` global batches
  // is sorted by sequence length and cut into batches, and the full batches are then shuffled
  // again, so a batch holds sequences of similar length and padding is hardly computed. The
  // batches are still a function of (seed, epoch) alone, whatever the world size. 0 = off.
  int64_t bucket_batches = 0;
  // > 0: only a uniform sample of this many of the split's users (drawn from `seed`, kept in
  // dense-id order), e.g. to evaluate a large dataset on a subset. 0 = every user.
  int64_t sample_users = 0;
};

// One rank's piece of a global batch. Row-major [rows x width] arrays, left-aligned: row i holds
// lengths[i] real positions followed by padding.
//   Train: the last min(train_len, max_len + 1) training events; a model predicts position t+1
//          from positions <= t, so width is at most max_len + 1.
//   Valid/Test: `items` is the input history (last min(len, max_len) events before the target)
//          and `targets[i]` the held-out item.
struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;         // global batch number within the epoch
  int64_t global_rows = 0;   // rows of the whole global batch
  int64_t row_offset = 0;    // where this piece starts inside the global batch
  int64_t rows = 0;          // rows in this piece (may be 0)
  // Train: predicted positions (length - 1 per row) of the whole global batch, known on every
  // rank without communication (a loss averaged over the global batch divides by it).
  int64_t global_positions = 0;
  int64_t width = 0;
  std::vector<int64_t> users;       // [rows] dense user ids
  std::vector<int64_t> items;       // [rows x width]
  std::vector<int64_t> timestamps;  // [rows x width]; empty if the dataset has none (0 = padding)
  std::vector<int32_t> lengths;     // [rows]
  // Train, optional ([rows], empty = 1 everywhere): row i predicts only its positions
  // first_targets[i] .. lengths[i]-1 (the events before are input only), as a stream trains its new
  // events once; global_positions counts only those.
  std::vector<int32_t> first_targets;
  std::vector<int64_t> targets;     // [rows]; valid/test only
  std::vector<int64_t> target_timestamps;  // [rows]; valid/test with timestamps only
  // With ReaderOptions::full_history: row i's whole input (not cut to max_len) is
  // history_items[history_offsets[i] .. history_offsets[i+1]).
  std::vector<int64_t> history_offsets;
  std::vector<int64_t> history_items;
};

// Not thread-safe; one reader per rank (or thread).
class SequenceReader {
 public:
  // Opens its own Dataset handle. Throws UserError on a bad file or bad options.
  SequenceReader(const std::string& path, const ReaderOptions& options);

  const DatasetInfo& info() const { return dataset_->info(); }
  // Users that take part in this split (same on every rank).
  int64_t num_users() const { return static_cast<int64_t>(eligible_.size()); }
  // Global batches per epoch (same on every rank).
  int64_t num_batches() const;
  // Starts (or restarts) an epoch: the global user order is a function of (seed, epoch).
  void StartEpoch(int64_t epoch);
  // Continue the current epoch at global batch `index` (resuming from a checkpoint).
  void Seek(int64_t index);
  // This rank's piece of the next global batch, or nullopt at the end of the epoch.
  std::optional<Batch> Next();
  // Dense user ids of global batch `index` in the current epoch (all ranks' rows).
  std::vector<int64_t> GlobalBatchUsers(int64_t index) const;

 private:
  void BucketByLength();

  ReaderOptions options_;
  std::unique_ptr<Dataset> dataset_;
  std::vector<int64_t> eligible_;  // users of this split, dense-id order
  std::vector<int32_t> row_length_;  // [users] positions a batch row of that user holds (0: not eligible)
  std::vector<int64_t> order_;     // current epoch's order (indices into eligible_ values)
  int64_t epoch_ = -1;
  int64_t next_batch_ = 0;
};

// One epoch of `path` read by `world` readers (ranks 0..world-1 of `options`) against one reader of
// the whole batch: whether the ranks' pieces, concatenated, are the single reader's batches.
struct ShardedReadCheck {
  int64_t batches = 0, rows = 0, positions = 0;  // positions: events the ranks' pieces hold
  bool equal = true;
};
ShardedReadCheck CheckShardedReading(const std::string& path, ReaderOptions options, int world);

}  // namespace shardrec
