// Learning from a stream of events (docs/training.md, "Learning from a stream"): every user's
// history in memory, and training steps on mini-batches of the events not learnt yet, each new event
// a target exactly once, mixed with a replay sample of older histories.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "distributed/communicator.h"
#include "io/dataset.h"
#include "model/losses.h"
#include "model/two_tower.h"
#include "train/step.h"

namespace shardrec {

// One event of a stream, in dense ids (the model's catalogue and the histories' users).
struct StreamEvent {
  int64_t user = 0, item = 0, ts = 0;
};

// Every user's events, oldest first, in memory. Not thread-safe.
class UserHistories {
 public:
  // The events of `ds` with timestamp < `until` (every event of a dataset without timestamps), user
  // by user; users keep their dense ids (a user without such events has an empty history).
  static UserHistories FromDataset(const Dataset& ds, int64_t until);
  explicit UserHistories(int64_t users = 0) : items_(static_cast<size_t>(users)), times_(static_cast<size_t>(users)) {}

  // Appends `e` to its user's history (the user must be < users()).
  void Append(const StreamEvent& e);
  // A new user with an empty history; returns its id (the old users()).
  int64_t AddUser() {
    items_.emplace_back(), times_.emplace_back();
    return users() - 1;
  }
  int64_t users() const { return static_cast<int64_t>(items_.size()); }
  int64_t length(int64_t user) const { return static_cast<int64_t>(items_[user].size()); }
  std::span<const int64_t> items(int64_t user) const { return items_[user]; }
  std::span<const int64_t> times(int64_t user) const { return times_[user]; }

 private:
  std::vector<std::vector<int64_t>> items_, times_;
};

struct StreamLearnerOptions {
  // A step is taken once this many events wait to be learnt (and at Flush).
  int64_t batch_events = 256;
  // Replay rows per fresh row: users drawn uniformly (from seed and step) among those with at least
  // two events and no new event in the step, each trained on the last max_len + 1 events of their
  // history (a draw that falls on a user of the step is not replaced). 0 = none.
  double replay = 1.0;
  uint64_t seed = 1;
  bool timestamps = true;  // the rows bring their events' times (the data has them)
  // The dense rate of a step is `lr` x min(1, its rows / full_rows): a step of a few users' events
  // moves the towers as little as its share of a full batch (the linear scaling rule); 0 = `lr`
  // whatever the size.
  double lr = 1e-3;
  int64_t full_rows = 0;
  // The loss's counts are refreshed this often (steps) besides whenever an item gets its first event.
  int64_t counts_every = 100;
};

// Trains `model` (in training mode) on events as they come. Every rank must make the same calls
// with the same events: the global batch of a step is the same everywhere, and rank r of N trains
// a contiguous piece of its rows (users in ascending order, then the replay rows), so N ranks train
// what one rank does. Holds references to everything it is given. Not thread-safe.
class StreamLearner {
 public:
  // item_counts: training events per item so far (the loss's counts; updated as events come).
  // `first_step`: the step number of the first step (AdamW's schedule and the sampled negatives).
  StreamLearner(TwoTowerModel& model, RetrievalLoss& loss, TrainStep& step, UserHistories& histories,
                std::vector<int64_t> item_counts, Communicator& comm, const StreamLearnerOptions& options,
                int64_t first_step = 1);

  // A UserError naming the flag of a value out of range (--stream-batch, --replay, --stream-lr).
  static void CheckOptions(const StreamLearnerOptions& options);
  // The most target positions one step of a learner with `options` can hold, over all ranks
  // (RetrievalLossOptions::max_positions_per_rank must be at least this under sampled softmax), with
  // Epoch's `batch_rows` rows at most.
  static int64_t MaxPositions(const StreamLearnerOptions& options, int64_t max_len, int64_t batch_rows);

  // COLLECTIVE. Appends `events` (in time order) to the histories; takes a step whenever
  // batch_events events wait to be learnt.
  void Add(std::span<const StreamEvent> events);
  // Appends `events` to the histories and the counts without learning them (a refresh that
  // retrains later, as a nightly job does, takes them through Epoch). Local; nothing may be
  // waiting to be learnt (Flush first).
  void Observe(std::span<const StreamEvent> events);
  // COLLECTIVE. A step on every event not learnt yet (nothing when there is none).
  void Flush();
  // Gives the loss the counts as they stand now (a checkpoint does, so that a run resumed from it
  // takes the steps the uninterrupted run takes).
  void SyncCounts() { RefreshCounts(true); }
  // COLLECTIVE. One pass over every history with at least two events (their last max_len + 1
  // events, every position a target) in a seeded shuffle, `batch_rows` rows a step, no replay: a
  // warm-started epoch, as a nightly retraining takes. Flushes first.
  void Epoch(int64_t batch_rows, uint64_t seed);

  int64_t steps() const { return steps_; }             // taken by this learner
  int64_t next_step() const { return next_step_; }
  int64_t events_learnt() const { return learnt_; }    // new events trained as targets
  int64_t replay_rows() const { return replay_rows_; }
  int64_t pending_events() const { return pending_events_; }
  double last_loss() const { return last_loss_; }      // mean loss of the last step (read there)
  const std::vector<int64_t>& item_counts() const { return counts_; }

 private:
  struct Row {
    int64_t user = 0, end = 0, length = 0, first_target = 1;
  };
  void Step(std::vector<Row> rows);
  void RefreshCounts(bool force);

  TwoTowerModel& model_;
  RetrievalLoss& loss_;
  TrainStep& step_;
  UserHistories& histories_;
  std::vector<int64_t> counts_;
  Communicator& comm_;
  const StreamLearnerOptions options_;
  void Append(const StreamEvent& e);
  std::map<int64_t, int64_t> pending_;  // user -> its newest events not learnt yet
  int64_t pending_events_ = 0;
  std::vector<int64_t> replayable_;     // users with at least two events
  std::vector<bool> is_replayable_;
  bool counts_dirty_ = false;
  int64_t next_step_ = 1, steps_ = 0, learnt_ = 0, replay_rows_ = 0, since_counts_ = 0;
  double last_loss_ = 0;
};

}  // namespace shardrec
