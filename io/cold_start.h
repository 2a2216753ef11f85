// The cold-start protocol (docs/training.md, "Cold start"): a seeded fraction of the items that
// have events becomes "cold". Training sees none of their events, so they are items nobody has
// interacted with; evaluation then asks whether the model recalls them from their content, for the
// users whose held-out target is one of them.
//
// The protocol's data is a dataset file of its own (io/dataset.h), derived from the source:
//   - the same items, rows, titles, categories and content (the same id space and fingerprint);
//   - every event on a cold item that precedes a user's held-out targets is removed, so training
//     sequences and validation histories never contain a cold item (a test history may: a cold
//     validation target stays);
//   - the validation and test targets (a user's last two events) are kept, cold or not;
//   - a user left with no training events (every one of them was cold) is dropped: there is
//     nothing to recall from, and with only the held-out events left the leave-one-out split would
//     turn them into training events.
// The choice depends only on the source file, the fraction and the seed: every rank and every
// world size derives the same cold items and the same file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace shardrec {

struct ColdItems {
  double fraction = 0;
  uint64_t seed = 0;
  std::vector<uint8_t> cold;          // [I] 1 = cold
  std::vector<int64_t> event_counts;  // [I] events per item in the whole source file (every split)
  int64_t num_cold = 0;
};

// Of the items with at least one event, the round(fraction x n) whose seeded hash is smallest
// (ties by id). Throws UserError unless 0 < fraction < 1.
ColdItems ChooseColdItems(const Dataset& source, double fraction, uint64_t seed);

struct ColdStartReport {
  int64_t users = 0;           // users written
  int64_t dropped_users = 0;   // users left without a training event
  int64_t removed_events = 0;  // events on cold items removed from histories
  int64_t cold_targets = 0;    // written users whose test target is cold
};

// Writes the protocol's dataset (see above) to `output`, atomically. Attributes under /cold_start
// record the fraction, the seed, the source's data fingerprint and the cold item count.
ColdStartReport WriteColdStartDataset(const Dataset& source, const ColdItems& cold, const std::string& output);

// True when `path` is a protocol dataset of `source` with this fraction and seed.
bool IsColdStartDatasetOf(const std::string& path, const Dataset& source, double fraction, uint64_t seed);

// Ranks of the cold items by their event count in the whole source (the popularity each will
// have), most popular first, ties by id: [I], -1 for items that are not cold. The cold slice's
// popularity baseline ranks only the cold items this way.
std::vector<int64_t> ColdPopularityRanks(const ColdItems& cold);

}  // namespace shardrec
