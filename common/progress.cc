#include "common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace shardrec {

void Progress(const std::string& line) {
  static const bool tty = isatty(STDERR_FILENO);
  if (tty) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void ProgressDone() {
  if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
}

ProgressMeter::ProgressMeter(std::string what, std::string steps, std::string unit, double every_seconds)
    : what_(std::move(what)), steps_(std::move(steps)), unit_(std::move(unit)), every_(every_seconds),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void ProgressMeter::Update(int64_t done, int64_t total, int64_t count) {
  const auto now = std::chrono::steady_clock::now();
  if (done < total && std::chrono::duration<double>(now - last_).count() < every_) return;
  last_ = now;
  const double secs = std::max(1e-9, std::chrono::duration<double>(now - start_).count());
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s: %lld/%lld %s | %lld %s | %.0f %s/s | ETA %.0f s", what_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total), steps_.c_str(), static_cast<long long>(count),
                unit_.c_str(), static_cast<double>(count) / secs, unit_.c_str(),
                done > 0 ? secs * static_cast<double>(total - done) / static_cast<double>(done) : 0.0);
  Progress(buf);
  if (done >= total) ProgressDone();
}

std::function<void(int64_t, int64_t, int64_t)> ProgressCallback(std::string what, std::string steps, std::string unit) {
  auto meter = std::make_shared<std::unique_ptr<ProgressMeter>>();
  return [meter, what = std::move(what), steps = std::move(steps), unit = std::move(unit)](int64_t done, int64_t total,
                                                                                            int64_t count) {
    if (!*meter) *meter = std::make_unique<ProgressMeter>(what, steps, unit);
    (*meter)->Update(done, total, count);
  };
}

}  // namespace shardrec
