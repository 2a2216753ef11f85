// Pieces shared between subcommands.
#pragma once

#include <string>

#include "io/synth.h"

namespace shardrec::cli {

// Prints `shardrec data stats` for a dataset file (human table or JSON).
void PrintStats(const std::string& path, bool json);
// SynthOptions from the --users/--items/... flags, with a progress line on stderr.
SynthOptions SynthOptionsFromFlags();
// One-line summary of a synthetic run's oracle.
std::string OracleLine(const SynthReport& r);

}  // namespace shardrec::cli
