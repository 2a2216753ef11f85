// The `shardrec` command line: subcommands, per-subcommand help and flag checks. This folder is
// the only place that reads gflags; libraries receive Options structs.
#pragma once

#include <chrono>
#include <cstdint>

#include <functional>
#include <string>
#include <vector>

namespace shardrec::cli {

struct Command {
  std::string name;     // "data convert"
  std::string summary;  // one line
  std::string usage;    // "shardrec data convert --format F --input PATH --output FILE [flags]"
  std::vector<std::string> flags;  // gflags names (underscores) this command reads
  int positional = 0;              // number of positional arguments after the name
  int optional_positional = 0;     // how many more may follow
  std::function<int(const std::vector<std::string>& positional)> run;
};

// Registered by each cmd_*.cc through a static Registrar.
std::vector<Command>& Registry();
struct Registrar {
  explicit Registrar(Command c) { Registry().push_back(std::move(c)); }
};

// Parses flags (accepting --dashed-names), dispatches, prints errors. Returns the exit code.
int Main(int argc, char** argv);

// Progress line on stderr, rewritten in place when stderr is a terminal.
void Progress(const std::string& line);
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

}  // namespace shardrec::cli
