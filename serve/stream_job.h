// `shardrec stream` (docs/training.md, "Streaming job"): learns from an event log as its segments
// appear and publishes the model to an export root every few seconds, so today's events reach the
// served model within minutes instead of at the next nightly run.
//
//   - It starts from the model behind ROOT/LATEST (the checkpoint its run wrote at the same step,
//     with the optimizer state, when there is one) and that version's dataset (the base): its item
//     catalogue and every user's history.
//   - Segments (io/event_log.h) are taken in name order; one segment is one unit of work: its events
//     (raw ids mapped to the base's ids; a user the base does not know gets a new id, in order of
//     arrival; an item it does not know gets one of the rows held for new items, new_items) join
//     the histories and are learnt by a StreamLearner (train/stream.h), the segment's last step
//     flushed, before the next segment is read.
//   - Every `publish_every` seconds: a checkpoint in RUN/checkpoints/ whose stream.h5 commits, with
//     the model and optimizer, the newest segment consumed per producer (the offsets) and what was
//     learnt; then a version of the export root (the base's items and the new ones, every base
//     user's vector from the histories so far, the index; its dataset is the base's with the new
//     items in its catalogue), served only through a light gate: every vector finite (export)
//     and the index's recall@10 against exact search at least `min_recall`.
//   - Exactly once: a restart (after kill -9 at any moment) loads the newest checkpoint that
//     verifies, re-reads the histories from the base and the segments up to its offsets, and goes on
//     with the first segment after them. Batches never span segments, so the model it ends with is
//     the uninterrupted run's, bitwise.
//   - Ranks: every rank reads every segment (rank 0 lists them), and a step's rows split across the
//     ranks by user (StreamLearner).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "serve/index_build.h"
#include "train/stream.h"
#include "train/trainer.h"

namespace shardrec {

struct StreamJobOptions {
  // run_dir: the stream's own run directory (checkpoints/, published/, config.yaml, metrics.jsonl);
  // model, loss, step, seed, keep_checkpoints: the served run's. data is ignored (the base is the
  // served version's dataset).
  TrainOptions train;
  std::string event_log;          // the log directory (segments)
  std::string root;               // the export root: its LATEST is the start, its versions the output
  double publish_every = 30;      // wall seconds between checkpoint + publish (0: only at the end)
  double max_seconds = 0;         // stop (after a last publish) after this long; 0: until a stop signal
  double idle_seconds = 0;        // stop once no new segment came for this long; 0: never
  double poll_seconds = 0.2;      // how often the log is listed while it has nothing new
  StreamLearnerOptions learner;   // batch_events, replay, seed; lr and full_rows are set from these:
  double stream_lr = 0;           // the dense rate of stream steps (0: train.step.lr)
  bool scale_lr = true;           // scaled by a step's rows / train.batch_size
  // Rows held for items the base catalogue lacks (RUN/catalogue.h5: the base's items, then this
  // many placeholders): an item's first event gives it the next one, from a zero id row (its
  // vector starts where an item added without training starts), trained from then on. Once they
  // are used up, such events are counted and not learnt. 0: none held.
  int64_t new_items = 1024;
  IndexOptions index;
  double min_recall = 0.95;       // the gate's floor on the index's recall@10
  int64_t keep = 10;              // this stream's versions kept under the root (the served one and its parent always)
  double lock_wait = 60;          // seconds to wait for the root's lock (a nightly publish holds it)
  bool progress = false;          // a line per publish on stderr
  // The run's configuration (config.yaml text), written to RUN/config.yaml and beside the published
  // models (RUN/published/config.yaml, where a reader of one of its versions looks) at the start.
  std::string config_text;
};

// The configuration a stream applies: RUN/config.yaml once it has started, else that of the run
// behind ROOT/LATEST (the run directory of the served model).
std::string StreamConfigFile(const std::string& run_dir, const std::string& root);

// What a stream has consumed and learnt, committed with each checkpoint (stream.h5).
struct StreamState {
  std::string base_version, base_data;   // the version it started from and its dataset
  std::string catalogue;                 // the model's catalogue: RUN/catalogue.h5, or base_data without new_items
  std::map<std::string, std::string> offsets;  // producer -> newest segment consumed
  std::vector<std::string> consumed;     // every segment consumed, in the order it was (histories)
  int64_t segments = 0, events = 0;      // consumed
  int64_t unknown_items = 0;             // events of items without a row (not learnt)
  int64_t new_items = 0;                 // items given a held row
  // Events before `since` are the base's (its data was cut there) and are skipped: the base's
  // newest event + 1, or, for a base published by a stream, that stream's watermark + 1.
  int64_t since = 0, before_base = 0;
  int64_t watermark = 0;                 // the newest event learnt
  // The publish this checkpoint was taken for: the version it is published as, and what LATEST
  // named before (this stream's previous version, or its base). A restart finding LATEST at neither
  // knows that someone else moved it.
  std::string publishing, expected;
  int64_t new_users = 0;                 // users the base does not know
  int64_t publishes = 0;
  std::vector<int64_t> item_events;      // [catalogue items] consumed events per item (learnt or input)
};
void WriteStreamState(const std::string& path, const StreamState& state);
StreamState ReadStreamState(const std::string& path);
inline constexpr const char* kStreamStateFile = "stream.h5";

// The segments of `segments` (ListSegments' names, in name order) not yet consumed under `offsets`.
std::vector<std::string> SegmentsAfter(const std::vector<std::string>& segments, const std::map<std::string, std::string>& offsets);

struct StreamJobReport {
  StreamState state;
  bool resumed = false;
  int stop_signal = 0;  // the signal that stopped it (0: stream-seconds or idle-seconds)
  std::vector<std::string> versions;  // published by this call
  int64_t steps = 0;
  double seconds = 0, learn_seconds = 0, publish_seconds = 0;
};

// COLLECTIVE. Runs until max_seconds, idle_seconds or a stop signal (train.stop_signal); a UserError
// on a bad option, an unreadable segment, a refused gate (the version is removed, LATEST stays).
StreamJobReport RunStreamJob(const StreamJobOptions& options, Communicator& comm, TrainingSink* sink);
// One line for people: segments, events, steps, versions.
std::string StreamJobSummary(const StreamJobReport& report);

}  // namespace shardrec
