// Retrieval losses over item and user vectors (L2-normalised or raw) with a temperature
// (docs/architecture.md, "One batch", step 6).
// Each returns the SUM of per-position losses (callers divide by the global position count so
// that N ranks compute the same gradient as one rank).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace shardrec {

// Sum over positions of -log softmax(users[i] . candidates / temperature - log_q)[targets[i]], with
// its gradients (w.r.t. users and candidates) computed in the same pass over position chunks, so
// the [P x C] logits are never materialised whole. users [P x d] and candidates [C x d] float32;
// targets int64 [P] rows of candidates; log_q [C] or undefined. Differentiable once.
at::Tensor SoftmaxCrossEntropySum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& targets,
                                  const at::Tensor& log_q, double temperature);

// Logits a softmax leaves out: position positions[j] does not score candidate row rows[j] where
// keep[j] is true (its logit becomes -inf; false entries change nothing). positions: int64 on the
// host, sorted ascending (the chunk bounds come from it without a device round trip); rows int64
// and keep bool on the device, the same length. A row masked at a position must not be its target.
struct LogitMask {
  at::Tensor positions;
  at::Tensor rows;
  at::Tensor keep;
};

// The same, with the masked logits left out of every position's softmax.
at::Tensor SoftmaxCrossEntropySum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& targets,
                                  const at::Tensor& log_q, double temperature, const LogitMask& mask);

// The same, with position i's target logit taken against target_vectors[i] ([P x d]) instead of
// against the target's candidate row (which gets no gradient from that position), and the target's
// log_q kept: how a vector that is not in the set scores against the set (for example an item's
// content-only vector against the other candidates). mask optional.
at::Tensor SoftmaxCrossEntropySum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& target_vectors,
                                  const at::Tensor& targets, const at::Tensor& log_q, double temperature,
                                  const LogitMask* mask);

// The `--loss` rule: "full" (softmax over every item), "sampled", or "auto" (full up to
// `full_softmax_max_items` items, where every step can afford to encode and score the catalogue;
// sampled above). Throws UserError for another name. Training and `shardrec plan` both ask it.
bool UsesFullSoftmax(const std::string& loss, int64_t num_items, int64_t full_softmax_max_items);

struct RetrievalLossOptions {
  bool full = true;             // full softmax over the catalogue; false: sampled softmax
  int64_t negatives = 256;      // sampled: uniform negatives shared by the global batch
  double temperature = 0.05;
  bool logq = true;             // sampled: logQ correction of every candidate
  uint64_t seed = 1;            // sampled: negatives of step s are a function of (seed, s)
  int64_t max_positions_per_rank = 0;  // sampled: bound on one rank's positions in a step
  // Items without training events (count 0) are never candidates: their logits are -inf, so they
  // get no gradient as negatives and stay what their content makes them (cold start).
  bool mask_unseen = false;
};

// Items a position's softmax leaves out: the items earlier in its own sequence (see
// `exclude_history`). positions: int64 on the host, sorted ascending; items: int64 ids on the device.
struct ExcludedItems {
  at::Tensor positions;
  at::Tensor items;
};

// Another vector of every candidate item (row c for candidate c: for example its content-only
// vector), against which RetrievalLoss::Sum scores each position's target in a second softmax
// over the same candidates, added with `weight`.
struct TargetVariant {
  at::Tensor vectors;  // [C x d]
  double weight = 0;
};

// The items a step scores every position against.
struct Candidates {
  at::Tensor ids;    // int64 [C], sorted and distinct (full softmax: 0 .. I-1)
  at::Tensor log_q;  // float [C] (sampled with logQ) or undefined
};

// Next-item retrieval loss of a training step (docs/architecture.md, "One batch", step 6): owns the candidate set
// (the catalogue, or the global batch's targets + shared uniform negatives), its logQ correction
// and the softmax over it. The loss of N ranks' pieces summed equals the loss of the global batch.
class RetrievalLoss {
 public:
  // item_counts: training events per item (the sampling popularity of in-batch candidates), the
  // same on every rank. Throws UserError on a bad temperature or negative count.
  RetrievalLoss(const RetrievalLossOptions& options, const std::vector<int64_t>& item_counts,
                const c10::Device& device);

  // Replaces the counts (a stream's items gain events, new items their first): popularity and,
  // under mask_unseen, the items masked. Not thread-safe against a step.
  void SetItemCounts(const std::vector<int64_t>& item_counts);
  bool full() const { return options_.full; }
  int64_t num_items() const { return num_items_; }
  // COLLECTIVE when sampled (every rank's targets join the candidates; no host round trip).
  // targets: this rank's target ids int64 [P]; global_positions: P summed over ranks.
  Candidates MakeCandidates(const at::Tensor& targets, int64_t global_positions, int64_t step, Communicator& comm) const;
  // Sum over positions of -log softmax(target). users [P x d]; candidate_vectors [C x d], row c
  // the item candidates.ids[c]; targets int64 [P] item ids (every one among the candidates).
  // excluded (optional): items left out of a position's softmax; an excluded item that is not a
  // candidate is ignored, and one that is the position's target must not be given.
  // variant (optional): plus variant->weight x the same softmax with each target's logit taken
  // against its row of variant->vectors (SoftmaxCrossEntropySum with target vectors); the rows and
  // the mask are built once for both.
  at::Tensor Sum(const at::Tensor& users, const at::Tensor& candidate_vectors, const at::Tensor& targets,
                 const Candidates& candidates, const ExcludedItems* excluded = nullptr,
                 const TargetVariant* variant = nullptr) const;

 private:
  RetrievalLossOptions options_;
  int64_t num_items_;
  at::Tensor popularity_;  // [I] share of training events
  at::Tensor unseen_;      // [I] bool: items masked out of every softmax (mask_unseen), or undefined
  c10::Device device_ = c10::Device(c10::kCPU);
};

}  // namespace shardrec
