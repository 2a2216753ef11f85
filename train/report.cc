#include "train/report.h"

#include <cstdio>

#include "common/error.h"
#include "common/json.h"
#include "train/run_dir.h"
#include "train/tensorboard.h"

namespace shardrec {

void SinkList::OnPlan(const std::string& p) {
  for (auto* s : sinks_) s->OnPlan(p);
}
void SinkList::OnResume(const std::string& c, int64_t st, int64_t e, int64_t b) {
  for (auto* s : sinks_) s->OnResume(c, st, e, b);
}
void SinkList::OnWarmStart(const std::string& f, const std::string& ids) {
  for (auto* s : sinks_) s->OnWarmStart(f, ids);
}
void SinkList::OnWarning(const std::string& m) {
  for (auto* s : sinks_) s->OnWarning(m);
}
void SinkList::OnProgress(const ProgressReport& r) {
  for (auto* s : sinks_) s->OnProgress(r);
}
void SinkList::OnValidation(int64_t st, int64_t e, const std::map<std::string, double>& m) {
  for (auto* s : sinks_) s->OnValidation(st, e, m);
}
void SinkList::OnEarlyStop(int64_t n) {
  for (auto* s : sinks_) s->OnEarlyStop(n);
}

void SinkList::OnTimeBudget(double used, double next, double budget) {
  for (auto* s : sinks_) s->OnTimeBudget(used, next, budget);
}

namespace {

class JsonlSink : public TrainingSink {
 public:
  explicit JsonlSink(const std::string& run_dir) : path_(RunDir(run_dir).metrics()) {
    file_ = std::fopen(path_.c_str(), "a");
    if (!file_) Fail(path_, ": cannot open for writing");
  }
  ~JsonlSink() override {
    if (file_) std::fclose(file_);
  }
  void OnProgress(const ProgressReport& r) override {
    JsonObject j;
    j.Add("step", r.step).Add("epoch", r.epoch).Add("split", "train").Add("loss", r.loss).Add("lr", r.lr)
        .Add("sequences_per_second", r.sequences_per_second).Add("seconds", r.seconds);
    Write(j);
  }
  void OnValidation(int64_t step, int64_t epoch, const std::map<std::string, double>& m) override {
    JsonObject j;
    j.Add("step", step).Add("epoch", epoch).Add("split", "valid");
    for (const auto& [k, v] : m) j.Add(k, v);
    Write(j);
  }

 private:
  void Write(const JsonObject& j) {
    const std::string line = j.str() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
      Fail(path_, ": write failed (disk full?)");
    }
  }
  std::string path_;
  FILE* file_ = nullptr;
};

class TensorBoardSink : public TrainingSink {
 public:
  explicit TensorBoardSink(const std::string& run_dir) : tb_(run_dir) {}
  void OnProgress(const ProgressReport& r) override {
    tb_.AddScalar("train/loss", r.loss, r.step);
    tb_.AddScalar("train/sequences_per_second", r.sequences_per_second, r.step);
    tb_.Flush();
  }
  void OnValidation(int64_t step, int64_t, const std::map<std::string, double>& m) override {
    for (const auto& [k, v] : m) tb_.AddScalar("valid/" + k, v, step);
    tb_.Flush();
  }

 private:
  TensorBoardWriter tb_;
};

}  // namespace

std::unique_ptr<TrainingSink> MakeJsonlSink(const std::string& run_dir) { return std::make_unique<JsonlSink>(run_dir); }
std::unique_ptr<TrainingSink> MakeTensorBoardSink(const std::string& run_dir) {
  return std::make_unique<TensorBoardSink>(run_dir);
}

}  // namespace shardrec
