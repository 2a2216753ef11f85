// `shardrec demo`'s data checks (steps 2 and 3), as the report lines it prints: each throws a
// UserError when the check fails (a bug to report).
#pragma once

#include <cstdint>
#include <string>

namespace shardrec {

// 2. The synthetic data's events through the CSV converter and back (files in `dir`): the same
// users, items and event order.
std::string CsvRoundTripCheck(const std::string& dir, const std::string& synth_path);
// 3. The sharded reader: `world` ranks' pieces of each train batch are the single reader's batch.
std::string ShardedReaderCheck(const std::string& synth_path, int world, int64_t batch_size, int64_t max_len, uint64_t seed);

}  // namespace shardrec
