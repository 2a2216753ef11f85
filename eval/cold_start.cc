#include "eval/cold_start.h"

#include <cstdio>

#include "common/error.h"
#include "io/cold_start.h"
#include "io/dataset.h"

namespace shardrec {

std::string PrepareColdStartData(const std::string& data, double fraction, uint64_t seed, const std::string& path,
                                 Communicator& comm) {
  std::string line;
  RunAgreed(comm, [&] {
    if (comm.rank() != 0) return;
    auto src = Dataset::Open(data);
    char f[32];
    std::snprintf(f, sizeof(f), "%g", fraction);
    const std::string head = " of the items with events are cold (--cold-items " + std::string(f) + " --cold-seed " +
                             std::to_string(seed) + "); ";
    // A resumed run's file is reused as it is (its count read back), without a pass over the events.
    if (IsColdStartDatasetOf(path, *src, fraction, seed)) {
      const double n = Dataset::Open(path)->NumericAttributes("/cold_start").at("cold_items");
      line = "cold start: " + std::to_string(static_cast<int64_t>(n)) + head + "the run's " + path + " already holds them\n";
      return;
    }
    const ColdItems cold = ChooseColdItems(*src, fraction, seed);
    line = "cold start: " + std::to_string(cold.num_cold) + head;
    const ColdStartReport r = WriteColdStartDataset(*src, cold, path);
    line += std::to_string(r.removed_events) + " of their events removed from histories; " + std::to_string(r.users) +
            " users (" + std::to_string(r.cold_targets) + " with a cold test target), " + std::to_string(r.dropped_users) +
            " dropped with no training event left; data " + path + "\n";
  });
  return line;
}

}  // namespace shardrec
