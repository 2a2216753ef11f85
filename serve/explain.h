// Why the model recalls an item for a history: leave-one-out contributions of the history's events.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "model/two_tower.h"

namespace shardrec {

// COLLECTIVE (the item lookups). The user tower reads the last max_len events of `items` (with
// `timestamps`, or none: empty) and the request time after them (`request`, kUnknownTime: none). Row j of the result, for event j of those kept (oldest first), holds
// for every candidate the drop in its score when that event is left out of the history (the others
// kept in order, time gaps recomputed): score(history) - score(history without event j).
// [kept events x candidates], float on the CPU. A history of one event gives that event the whole
// score. Scores are the model's (the inner product the export's index ranks by). One batched pass:
// about the cost of encoding max_len histories.
at::Tensor HistoryContributions(TwoTowerModel& model, const std::vector<int64_t>& items,
                                const std::vector<int64_t>& timestamps, const std::vector<int64_t>& candidates,
                                int64_t request = kUnknownTime);

}  // namespace shardrec
