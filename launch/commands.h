// Pieces shared between subcommands.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "io/synth.h"
#include "model/two_tower.h"
#include "retrieval/index.h"
#include "train/report.h"

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
// Every key of a run's config.yaml (what `shardrec train` reads from flags or config files).
std::vector<std::string> TrainKeys();
// The sharding planner's budget from --memory-per-rank, --memory-bandwidth, --link-bandwidth.
PlannerOptions PlannerOptionsFromFlags();
// Training progress, the plan and validations on standard output (rank 0's sink).
std::unique_ptr<TrainingSink> MakeStdoutSink();

// A known user of an export: their exported vector, the items of their events (excluded from
// recommendations) and how many events they have.
struct UserQuery {
  std::vector<float> vector;
  std::unordered_set<int64_t> seen;
  int64_t events = 0;
  std::vector<int64_t> items, timestamps;  // the user's events in order (timestamps: empty if none)
};
// `raw_user` in the export opened as `index` from `dir`; nullopt when the export does not know it.
std::optional<UserQuery> FindExportedUser(const ShardedIndex& index, const std::string& dir, const std::string& raw_user);
// The ranked list as `shardrec query` prints it.
// `because` (may be empty): per hit, the history events that drove it and their contributions.
using Reasons = std::vector<std::vector<std::pair<int64_t, float>>>;
void PrintHits(const ShardedIndex& index, const std::string& who, int64_t events, int64_t k, const std::vector<Hit>& hits,
               const Reasons& because = {});

}  // namespace shardrec::cli
