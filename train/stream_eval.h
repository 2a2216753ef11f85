// The test-then-train protocol (docs/training.md, "Test then train"): a model learnt from the
// events before a time cut, then the events after it replayed in time order, each first ranked by
// the model as the serving tier would have it at that moment (full ranking over the catalogue, the
// user's earlier items excluded) and then learnt from. Modes differ in when the served model is
// refreshed and from what:
//   frozen    the model of the cut, never refreshed (the histories still grow: requests bring them)
//   nightly   at each midnight (UTC) of event time, `nightly_epochs` warm-started epochs over every
//             history so far, then published
//   <N>s      streaming: every event learnt as it comes (StreamLearner), the served model
//             refreshed every N seconds of event time ("hourly" = 3600s, "5min" = 300s)
// Event time is the clock: a replay runs as fast as the machine allows.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "train/stream.h"
#include "train/trainer.h"

namespace shardrec {

struct StreamEvalOptions {
  // The run before the cut: train.data is the whole dataset; train.run_dir gets RUN/before-cut.h5
  // (the events before the cut) and, unless it already holds one trained on that file, a run on it
  // with these options. The stream's steps use train.step (constant rate, no warm-up) and the
  // run's model, loss and seed.
  TrainOptions train;
  int64_t cut = 0;  // event time; 0: io/time_cut.h ChooseTimeCut
  std::string modes = "frozen,nightly,hourly,5min";  // comma-separated
  StreamLearnerOptions learner;
  double stream_lr = 0;  // the stream's dense rate; 0: train.step.lr
  bool scale_lr = true;  // scaled by each step's rows / train.batch_size (StreamLearnerOptions::full_rows)
  int64_t nightly_epochs = 1;
  int64_t rank_batch = 256;  // events ranked together (never across a refresh)
  // A line of progress per replay mode (events replayed, events/s, ETA) on stderr every 10 s.
  bool progress = false;
};

struct StreamEvalMode {
  std::string mode;
  int64_t interval = 0;  // seconds of event time between refreshes (0: frozen)
  int64_t ranked = 0;    // events ranked (those whose user had an earlier event)
  double hr10 = 0, ndcg10 = 0;
  int64_t refreshes = 0, steps = 0, learnt = 0;  // learnt: new events trained as targets
  double seconds = 0, learn_seconds = 0;
};

struct StreamEvalReport {
  int64_t cut = 0;
  std::string cut_reason, before_data;
  int64_t events_before = 0, events_after = 0;
  bool trained = false;  // the run before the cut was trained by this call
  double batch_positions_per_second = 0;  // that training's target positions per second (when trained)
  std::vector<StreamEvalMode> modes;
};

// RUN/before-cut.h5: the events before the cut, which the run in RUN is trained on.
std::string StreamEvalBeforeCutData(const std::string& run_dir);

// Parses a mode name; a UserError naming --stream-modes for another. Returns the interval (0:
// frozen, -1: nightly).
int64_t StreamModeInterval(const std::string& mode);

// Runs the protocol (one process: a UserError at another world size). Rank 0 reports to `sink`
// and writes RUN/stream-eval.json (StreamEvalJson).
StreamEvalReport RunStreamEval(const StreamEvalOptions& options, Communicator& comm, TrainingSink* sink);
std::string StreamEvalJson(const StreamEvalReport& report);
// The report for people: the cut, then one line per mode.
std::string StreamEvalTable(const StreamEvalReport& report);

}  // namespace shardrec
