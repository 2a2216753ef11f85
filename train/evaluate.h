// Full-ranking evaluation of a model (DESIGN section 8) and the user vectors it ranks with.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "io/reader.h"
#include "model/two_tower.h"
#include "train/eval_scoring.h"

namespace shardrec {

class ShardedIndex;
struct ColdItems;

// COLLECTIVE. Item-tower vectors of the whole catalogue (output and input, each [I x dim]), in
// chunks, without gradients.
ItemVectors EncodeCatalogue(TwoTowerModel& model, int64_t num_items);

// Called on every rank after each evaluation batch: batches done, batches in all, users ranked so far
// (every rank's).
using EvalProgress = std::function<void(int64_t batches_done, int64_t batches, int64_t users)>;

// COLLECTIVE. Metrics of `split` of `data`: every rank ranks its users' targets against the whole
// catalogue (their earlier items excluded). `ann`: also rank through this index (its top 200,
// history excluded; a target outside them is a miss), returned under "ann_" keys. `unknown`
// (bool [I], optional): items the model cannot recall (it was trained before they existed): they
// score -inf, so a target among them is a miss. `cold` (optional): the cold-start protocol's items,
// for the warm / cold slices (train/metrics.h). `sample_users` > 0: only a seeded uniform sample of
// that many of the split's users (io/reader.h).
std::map<std::string, double> EvaluateModel(TwoTowerModel& model, const std::string& data, Split split,
                                            int64_t batch_size, Communicator& comm,
                                            const std::vector<int64_t>& item_counts,
                                            const ShardedIndex* ann = nullptr, const at::Tensor& unknown = {},
                                            const ColdItems* cold = nullptr, int64_t sample_users = 0,
                                            EvalScoring scoring = EvalScoring::kAuto,
                                            const EvalProgress& progress = {});

// COLLECTIVE. The user vectors evaluation ranks with for `split`: this rank's users (dense ids)
// and their vectors [n x dim], in reader order. Exactly what EvaluateModel scores.
struct SplitUserVectors {
  std::vector<int64_t> users;
  at::Tensor vectors;
};
SplitUserVectors EvaluationUserVectors(TwoTowerModel& model, const std::string& data, Split split,
                                       int64_t batch_size, Communicator& comm);

}  // namespace shardrec
