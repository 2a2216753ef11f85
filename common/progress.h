// Progress lines of long jobs on standard error (docs/errors.md: rank 0 reports): rewritten in place
// on a terminal, one per line otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace shardrec {

void Progress(const std::string& line);
// Ends a line Progress rewrote in place (nothing when standard error is not a terminal).
void ProgressDone();

// Throttled progress of a long loop: "<what>: <done>/<total> <steps> | <count> <unit> | <rate>
// <unit>/s | ETA <s> s" at most every `every_seconds`, and once at the end.
class ProgressMeter {
 public:
  ProgressMeter(std::string what, std::string steps, std::string unit, double every_seconds = 10);
  void Update(int64_t done, int64_t total, int64_t count);

 private:
  std::string what_, steps_, unit_;
  double every_;
  std::chrono::steady_clock::time_point start_, last_;
};

// A progress callback (done, total, count) over a ProgressMeter whose clock starts at the first call
// (not when the callback is made: the work before the loop is not counted).
std::function<void(int64_t done, int64_t total, int64_t count)> ProgressCallback(std::string what, std::string steps,
                                                                                 std::string unit);

}  // namespace shardrec
