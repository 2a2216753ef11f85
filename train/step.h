// One training step (docs/architecture.md, "One batch"), start to end, in one object:
//   reader batch -> HistoryBatch (model/history.h)
//   -> RetrievalLoss::MakeCandidates (model/losses.h)
//   -> TwoTowerModel::EncodeItemVectors: the sharded lookup (input_dist -> lookup -> output_dist) as
//      an autograd function (sharding/lookup_function.h), then the item tower (output vectors of
//      the candidates, input vectors of the history items)
//   -> TwoTowerModel::EncodeHistory: the user tower at every position
//   -> RetrievalLoss::Sum -> backward: autograd carries the row gradients to their owners and the
//      fused sparse optimizer applies them
//   -> dense gradients all-reduced in buckets -> clipping -> AdamW.
// No .item() and no per-element tensor access inside; the step's loss comes back as a device tensor
// for the caller to read at its logging cadence. The host round trips that remain are those of
// data-dependent sizes: the all-to-all split counts and unique/nonzero over ids.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/communicator.h"
#include "io/reader.h"
#include "model/losses.h"
#include "model/two_tower.h"

namespace torch::optim {
class AdamW;
}

namespace shardrec {

struct StepOptions {
  double lr = 1e-3;            // AdamW's rate after warm-up
  int64_t warmup_steps = 100;  // linear warm-up of the dense rate
  // After warm-up: constant, or cosine decay from lr to lr x min_lr_ratio at total_steps.
  bool cosine = false;
  double min_lr_ratio = 0.0;
  int64_t total_steps = 0;
  double clip_norm = 1.0;      // on the all-reduced dense gradient; 0 = off
  uint64_t seed = 1;           // dropout masks of step s on rank r are a function of (seed, s, r)
  bool bfloat16 = false;       // the user tower's products under bfloat16 autocast
  // The batch's rows, sorted by length, run through the user tower in this many groups, each
  // padded to its own longest row: padding is hardly computed, and the batch (so the gradient) is
  // the one the reader gave. 1 = the whole batch at once.
  int64_t length_groups = 8;
  // A position's softmax leaves out the items earlier in its sequence (the evaluation protocol
  // never ranks them), except its own target where a user repeats an item.
  bool exclude_history = false;
  // Content loss (a weight; 0 = off; needs a content path): a second softmax over the same
  // candidates and vectors (id dropout included) in which each position's target is scored by
  // its content-only vector (no id row), as a cold item is served.
  double content_loss = 0;
  int64_t bucket_elements = 4 << 20;  // dense all-reduce bucket size (floats)
};

// Not thread-safe; one per rank. Holds references to the model, loss and optimizer it was given.
class TrainStep {
 public:
  TrainStep(TwoTowerModel& model, const RetrievalLoss& loss, torch::optim::AdamW& adam, Communicator& comm,
            const StepOptions& options);
  ~TrainStep();

  // COLLECTIVE. One optimisation step on this rank's piece of a global batch (possibly empty).
  // `step` (1-based) sets the warm-up rate and the sampled negatives. Returns this rank's sum of
  // per-position losses as a 0-dim float tensor on the device (the global mean is the sum over
  // ranks / batch.global_positions).
  at::Tensor Run(const Batch& batch, int64_t step);
  // The dense rate from the next step on (StepOptions::lr), as a stream scales it by its step's size.
  void SetLr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }

 private:
  struct Inputs;
  Inputs Prepare(const Batch& batch) const;
  at::Tensor LossSum(const Inputs& in, int64_t step);
  void Update(int64_t step);

  TwoTowerModel& model_;
  const RetrievalLoss& loss_;
  torch::optim::AdamW& adam_;
  Communicator& comm_;
  StepOptions options_;
  std::vector<at::Tensor> params_;
};

// AdamW's rate at `step` (1-based): linear warm-up to `lr` over `warmup_steps`, then the schedule.
double DenseLr(const StepOptions& o, int64_t step);

// COLLECTIVE. Sums the dense gradients of `params` over ranks in flat buckets of at most
// `bucket_elements` floats (a parameter without a gradient counts as zeros).
void AllReduceDenseGrads(std::vector<at::Tensor>& params, Communicator& comm, int64_t bucket_elements);

}  // namespace shardrec
