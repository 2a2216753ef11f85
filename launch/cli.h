// The `shardrec` command line: subcommands, per-subcommand help and flag checks. This folder is
// the only place that reads gflags; libraries receive Options structs.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/progress.h"

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

// Flags given on the command line that `c` does not read are a mistake, not a no-op: a UserError.
void RejectForeignFlags(const Command& c);

// Registered by each cmd_*.cc through a static Registrar.
std::vector<Command>& Registry();
struct Registrar {
  explicit Registrar(Command c) { Registry().push_back(std::move(c)); }
};

// Parses flags (accepting --dashed-names), dispatches, prints errors. Returns the exit code.
int Main(int argc, char** argv);

}  // namespace shardrec::cli
