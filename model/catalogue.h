// What training, evaluation and export read about items from a dataset: the catalogue the item
// tower needs and the training-split popularity.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "distributed/communicator.h"
#include "io/dataset.h"
#include "model/two_tower.h"

namespace shardrec {

// Categories (CSR) and content vectors of every item.
ItemCatalog LoadItemCatalog(const Dataset& ds);

// COLLECTIVE. Training-split event count of every item, summed over ranks (each rank counts its
// user range).
std::vector<int64_t> TrainItemCounts(const Dataset& ds, Communicator& comm);

// Calls fn(training events) for users [begin, end), reading the events in blocks of about a
// million rather than one small read per user.
void ForEachTrainSequence(const Dataset& ds, int64_t begin, int64_t end,
                          const std::function<void(std::span<const int32_t>)>& fn);

}  // namespace shardrec
