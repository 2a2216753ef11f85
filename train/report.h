// Where a training run reports: progress, validation, the sharding plan. The training loop never
// prints; it calls a TrainingSink. The run's files (RUN/metrics.jsonl for plotting, TensorBoard
// events) are sinks of this library, and so is the console a front door chooses to print to.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace shardrec {

struct ProgressReport {
  int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0;                   // mean over the steps since the previous report (one read of the loss)
  double lr = 0;
  double sequences_per_second = 0;   // over all ranks, since the previous report
  double seconds = 0;                // since training started
  double eta_seconds = 0;
  bool console = true;  // a line for people is due (every report goes to the metrics file)
};

// Called on rank 0 only. Not thread-safe.
class TrainingSink {
 public:
  virtual ~TrainingSink() = default;
  // The plan of the embedding tables (a per-rank table) before the first step.
  virtual void OnPlan(const std::string& plan_table) {}
  virtual void OnResume(const std::string& checkpoint, int64_t step, int64_t epoch, int64_t next_batch) {}
  // A warm start (--init-from): where the state came from, and what happened to the ids, e.g.
  // "items 4800 carried over, 200 new, 150 dropped; categories 18 carried over, 0 new, 0 dropped".
  virtual void OnWarmStart(const std::string& from, const std::string& ids) {}
  // Something the user should know that does not stop the run (e.g. a damaged checkpoint skipped).
  virtual void OnWarning(const std::string& message) {}
  virtual void OnProgress(const ProgressReport& report) {}
  virtual void OnValidation(int64_t step, int64_t epoch, const std::map<std::string, double>& metrics) {}
  virtual void OnEarlyStop(int64_t validations_without_gain) {}
  // --time-budget: the next epoch (estimated at the last one's seconds) would end past the budget.
  virtual void OnTimeBudget(double seconds_used, double next_epoch_seconds, double budget_seconds) {}
};

// Forwards every call to each sink in order (null entries are skipped).
class SinkList : public TrainingSink {
 public:
  void Add(TrainingSink* sink) { if (sink) sinks_.push_back(sink); }
  void OnPlan(const std::string& p) override;
  void OnResume(const std::string& c, int64_t s, int64_t e, int64_t b) override;
  void OnWarmStart(const std::string& f, const std::string& ids) override;
  void OnWarning(const std::string& m) override;
  void OnProgress(const ProgressReport& r) override;
  void OnValidation(int64_t s, int64_t e, const std::map<std::string, double>& m) override;
  void OnEarlyStop(int64_t n) override;
  void OnTimeBudget(double used, double next, double budget) override;

 private:
  std::vector<TrainingSink*> sinks_;
};

// Progress lines on standard output (the plan, resumes, one line per report, validations, stops)
// and warnings on standard error, each flushed: what rank 0 of `shardrec train` prints.
std::unique_ptr<TrainingSink> MakeConsoleSink();

// RUN/metrics.jsonl: one JSON object per progress report ("split": "train") and validation
// ("split": "valid"), flushed after each line. Throws UserError if the file cannot be written.
std::unique_ptr<TrainingSink> MakeJsonlSink(const std::string& run_dir);
// TensorBoard scalars train/loss, train/sequences_per_second and valid/<metric> (train/tensorboard.h).
std::unique_ptr<TrainingSink> MakeTensorBoardSink(const std::string& run_dir);

}  // namespace shardrec
