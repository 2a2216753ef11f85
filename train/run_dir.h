// Every path of a run directory, in one place (as leveldb's filename.h names a database's files):
//   RUN/config.yaml            the effective configuration (`shardrec train` writes it first)
//   RUN/plan.txt               the sharding plan and memory estimate
//   RUN/metrics.jsonl          one JSON object per progress report and validation
//   RUN/events.out.tfevents.*  TensorBoard
//   RUN/checkpoints/step-<S>/  checkpoints (train/checkpoint.h), S zero-padded to 9 digits
//   RUN/model/                 the best model (the checkpoint layout without training state)
//   RUN/cold-start.h5          the cold-start protocol's dataset (--cold-items)
//   RUN/eval.json, RUN/eval-<baseline>.json   `shardrec eval`'s metrics
#pragma once

#include <cstdint>
#include <string>

namespace shardrec {

class RunDir {
 public:
  explicit RunDir(std::string dir) : dir_(std::move(dir)) {}
  const std::string& path() const { return dir_; }
  std::string config() const { return dir_ + "/config.yaml"; }
  std::string plan() const { return dir_ + "/plan.txt"; }
  std::string metrics() const { return dir_ + "/metrics.jsonl"; }
  std::string checkpoints() const { return dir_ + "/checkpoints"; }
  std::string checkpoint(int64_t step) const;
  std::string model() const { return dir_ + "/model"; }
  std::string cold_start_data() const { return dir_ + "/cold-start.h5"; }
  // eval.json, or eval-<baseline>.json for a baseline's metrics.
  std::string eval(const std::string& baseline = "") const {
    return dir_ + (baseline.empty() ? "/eval.json" : "/eval-" + baseline + ".json");
  }
  // Whether `name` (an entry of a run directory) is one a training run writes: what a fresh run
  // must not find, and what --overwrite removes.
  static bool IsRunEntry(const std::string& name);

 private:
  std::string dir_;
};

}  // namespace shardrec
