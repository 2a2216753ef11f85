// Full-ranking evaluation of a model (docs/training.md, "Evaluation") and the user vectors it ranks with.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "io/reader.h"
#include "model/two_tower.h"
#include "eval/scoring.h"

namespace shardrec {

class ShardedIndex;
struct ColdItems;

// COLLECTIVE. Item-tower vectors of the whole catalogue (output and input, each [I x dim]), in
// chunks, without gradients.
ItemVectors EncodeCatalogue(TwoTowerModel& model, int64_t num_items);

// Called on every rank after each evaluation batch: batches done, batches in all, users ranked so far
// (every rank's).
using EvalProgress = std::function<void(int64_t batches_done, int64_t batches, int64_t users)>;

// "auto", "replicated" or "sharded" (--eval-scoring); another name is a UserError.
EvalScoring ParseEvalScoring(const std::string& name);

// What one evaluation ranks, and how.
struct EvalRequest {
  std::string data;  // the dataset whose `split` is ranked (histories, targets, categories)
  Split split = Split::kTest;
  int64_t batch_size = 256;  // global; shrunk so that a rank's scores stay within 512 MiB
  // Training-split event count of every item (popularity metrics; model/catalogue.h TrainItemCounts).
  std::span<const int64_t> item_counts;
  // Also rank through this index (its top 200, history excluded; a target outside them is a miss),
  // returned under "ann_" keys. Not owned.
  const ShardedIndex* ann = nullptr;
  // bool [I], optional: items the model cannot recall (it was trained before they existed): they
  // score -inf, so a target among them is a miss.
  at::Tensor unknown;
  // The cold-start protocol's items, for the warm / cold slices (eval/metrics.h). Not owned.
  const ColdItems* cold = nullptr;
  // > 0: only a seeded uniform sample of that many of the split's users (io/reader.h).
  int64_t sample_users = 0;
  EvalScoring scoring = EvalScoring::kAuto;
  EvalProgress progress;
};

// COLLECTIVE. Metrics of the request's split: every rank ranks its users' targets against the whole
// catalogue (their earlier items excluded), or, under sharded scoring (eval/scoring.h), its items
// against every rank's users.
std::map<std::string, double> EvaluateModel(TwoTowerModel& model, const EvalRequest& request, Communicator& comm);

// COLLECTIVE. The same metrics for a baseline without a model: "pop" (most popular) or "cooc"
// (item-to-item transitions from the previous item, popularity breaking ties). `ann`, `unknown`
// and `scoring` of the request do not apply. Throws UserError for another name.
std::map<std::string, double> EvaluateBaseline(const std::string& baseline, const EvalRequest& request,
                                               Communicator& comm);

// COLLECTIVE. The user vectors evaluation ranks with for `split`: this rank's users (dense ids)
// and their vectors [n x dim], in reader order. Exactly what EvaluateModel scores.
struct SplitUserVectors {
  std::vector<int64_t> users;
  at::Tensor vectors;
};
SplitUserVectors EvaluationUserVectors(TwoTowerModel& model, const std::string& data, Split split,
                                       int64_t batch_size, Communicator& comm);

}  // namespace shardrec
