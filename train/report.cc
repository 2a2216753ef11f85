#include "train/report.h"

#include <cstdio>

#include "common/error.h"
#include "common/json.h"
#include "train/run_dir.h"
#include "train/tensorboard.h"

namespace shardrec {
namespace {

class ConsoleSink : public TrainingSink {
 public:
  void OnPlan(const std::string& plan) override { Print("%s", plan.c_str()); }
  void OnResume(const std::string& from, int64_t step, int64_t epoch, int64_t batch) override {
    Print("resumed from %s: step %lld, epoch %lld, batch %lld\n", from.c_str(), static_cast<long long>(step),
          static_cast<long long>(epoch), static_cast<long long>(batch));
  }
  void OnWarmStart(const std::string& from, const std::string& ids) override {
    Print("warm start from %s: %s\n", from.c_str(), ids.c_str());
  }
  void OnWarning(const std::string& message) override {
    std::fprintf(stderr, "shardrec: warning: %s\n", message.c_str());
    std::fflush(stderr);
  }
  void OnProgress(const ProgressReport& r) override {
    if (!r.console) return;
    Print("epoch %lld step %lld/%lld | loss %.4f | %.0f sequences/s | lr %.2e | ETA %.0f s\n",
          static_cast<long long>(r.epoch), static_cast<long long>(r.step), static_cast<long long>(r.total_steps), r.loss,
          r.sequences_per_second, r.lr, r.eta_seconds);
  }
  void OnValidation(int64_t, int64_t epoch, const std::map<std::string, double>& m) override {
    auto at = [&](const char* k) { auto it = m.find(k); return it == m.end() ? 0.0 : it->second; };
    Print("epoch %lld valid | HR@10 %.4f NDCG@10 %.4f HR@50 %.4f MRR %.4f\n", static_cast<long long>(epoch), at("hr@10"),
          at("ndcg@10"), at("hr@50"), at("mrr"));
  }
  void OnEarlyStop(int64_t n) override {
    Print("early stop: no better NDCG@10 for %lld validations\n", static_cast<long long>(n));
  }
  void OnTimeBudget(double used, double next, double budget) override {
    Print("time budget: %.0f s used, the next epoch (~%.0f s) would end past --time-budget %.0f s; stopping\n", used,
          next, budget);
  }

 private:
  template <typename... A>
  static void Print(const char* fmt, A... a) {
    std::printf(fmt, a...);
    std::fflush(stdout);
  }
};

}  // namespace

std::unique_ptr<TrainingSink> MakeConsoleSink() { return std::make_unique<ConsoleSink>(); }

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
