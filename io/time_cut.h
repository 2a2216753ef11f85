// Time cuts of a dataset, for the test-then-train protocol (docs/training.md, "Test then train"):
// what happened before a moment, learnt as a batch, and the rest replayed in time order.
#pragma once

#include <cstdint>
#include <string>

#include "io/dataset.h"

namespace shardrec {

struct TimeCut {
  int64_t time = 0;    // events at or after it are after the cut
  std::string reason;  // how it was chosen, for people
};
// The cut of `ds` (which needs timestamps; a UserError naming the file otherwise): `given` when it
// is not 0; else the data's /drift/time (`data synth --drift`: the moment users start to move); else
// the time 80% of the way from the first event to the last.
TimeCut ChooseTimeCut(const Dataset& ds, int64_t given = 0);

struct CutReport {
  int64_t users = 0;          // users with an event before the cut (written)
  int64_t events_before = 0;  // written
  int64_t events_after = 0;   // left out
};
// Writes the events of `source` before `cut` to `output` (atomically): the same catalogue (id space
// and fingerprint), users without such events left out. A UserError when no user has one.
CutReport WriteEventsBefore(const Dataset& source, int64_t cut, const std::string& output);

}  // namespace shardrec
