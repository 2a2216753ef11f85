// Pieces shared between subcommands.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/synth.h"
#include "model/two_tower.h"
#include "serve/recommender.h"
#include "train/report.h"
#include "train/trainer.h"

namespace shardrec::cli {

// Prints `shardrec data stats` for a dataset file (human table or JSON).
void PrintStats(const std::string& path, bool json);
// SynthOptions from the --users/--items/... flags, with a progress line on stderr.
SynthOptions SynthOptionsFromFlags();
// One-line summary of a synthetic run's oracle.
std::string OracleLine(const SynthReport& r);
// Flags that define the model, and the ModelConfig they describe (validated).
const std::vector<std::string>& ModelFlags();
ModelConfig ModelConfigFromFlags();
ModelConfig RunModelConfig(const std::string& model_dir);  // of the run holding it: its config.yaml over the flags
// Every key of a run's config.yaml (what `shardrec train` reads from flags or config files).
std::vector<std::string> TrainKeys();
// TrainOptions from the flags of TrainKeys() (after any config file), validated only by Train.
TrainOptions TrainOptionsFromFlags();
// The sharding planner's budget from --memory-per-rank, --memory-bandwidth, --link-bandwidth.
PlannerOptions PlannerOptionsFromFlags();

}  // namespace shardrec::cli
