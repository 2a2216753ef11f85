// Catalogue-sharded scoring (eval/scoring.h, EvalScoring::kSharded), for catalogues whose vectors
// should not sit on every rank: rank r encodes only its items [I r / W, I (r + 1) / W) and scores
// every rank's users of a batch against them. For each user the ranks add up the target's rank among
// their items (all-reduce), and send their best kListLength back to the user's rank, which merges
// them by (score, id): the ranks and lists of scoring the whole catalogue in one place, from 1/W of
// its vectors per rank.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "distributed/communicator.h"
#include "eval/metrics.h"
#include "io/reader.h"
#include "model/two_tower.h"

namespace shardrec {

struct ColdItems;

// Training events of row i of an evaluation batch: its history, less the validation event when the
// target is the test one.
int64_t TrainingEvents(const Batch& b, int64_t i, Split split);

// Not thread-safe; one per evaluation, on every rank.
class ShardedScorer {
 public:
  // COLLECTIVE. Encodes this rank's items. `unknown` ([I] bool, optional): items scored -inf;
  // `cold` (optional, not owned): the cold-start protocol's items (UserResult::cold_rank).
  ShardedScorer(TwoTowerModel& model, int64_t num_items, Communicator& comm, const at::Tensor& unknown,
                const ColdItems* cold);

  // COLLECTIVE: on every rank for every batch, also one without rows. The results of this rank's
  // rows of `b`, whose user vectors are `users` [rows x dim].
  std::vector<UserResult> Rank(const Batch& b, Split split, const at::Tensor& users);

  // COLLECTIVE. The unit vectors [n x dim] (CPU) of any items, from the ranks that hold them (the
  // lists' vectors for diversity where the data has no categories).
  at::Tensor UnitVectors(const std::vector<int64_t>& ids);

 private:
  // Every rank's rows of one batch, as this rank sees them after the first exchange: gathered row g
  // of rank r's piece is first[r] + its row there.
  struct Gathered {
    std::vector<int64_t> from;   // rows sent by each rank
    std::vector<int64_t> first;  // [W + 1] offsets of each rank's rows
    at::Tensor users;            // [rows x dim] on the device
    at::Tensor targets;          // [rows] long, CPU
    std::vector<std::vector<int64_t>> excluded;  // per row: local columns excluded (history)
    int64_t rows() const { return first.back(); }
  };
  Gathered Gather(const Batch& b, const at::Tensor& users);
  // Scores of every gathered row against this rank's items (excluded and unknown at -inf, CPU), and
  // per row the items above its target over all ranks: [2 x rows] long, [0] all items, [1] cold ones.
  at::Tensor CountAbove(const Gathered& g, at::Tensor& scores);
  // This rank's best kListLength of every gathered row back to the row's rank, merged there with
  // every rank's: the result of this rank's rows.
  std::vector<UserResult> MergeLists(const Batch& b, Split split, const Gathered& g, const at::Tensor& scores,
                                     const at::Tensor& counts);

  Communicator& comm_;
  const ColdItems* cold_;
  int64_t num_items_;
  int64_t begin_ = 0, end_ = 0;
  at::Tensor items_;    // [end - begin x dim] output vectors of this rank's items, on the device
  at::Tensor unknown_;  // [end - begin] bool, CPU (undefined: none)
};

}  // namespace shardrec
