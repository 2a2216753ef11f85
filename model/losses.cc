#include "model/losses.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <glog/logging.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "common/error.h"
#include "common/rng.h"
#include "common/strings.h"

namespace shardrec {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Softmax cross-entropy over `candidates` for every position, fused with its own gradient: rows of
// positions are taken a chunk at a time, so the [P x C] logits never exist whole (a chunk stays in
// cache through logits -> log-sum-exp -> softmax -> gradient), and the gradients w.r.t. the users
// and the candidates are computed in the forward pass (the loss is a scalar: backward only scales
// them). Three products per chunk, as autograd's, but no pass over a [P x C] tensor in memory.
struct FusedSoftmaxCrossEntropy : torch::autograd::Function<FusedSoftmaxCrossEntropy> {
  // target_vectors: [P x d] (the target's logit of position i is taken against row i instead of the
  // target's candidate row, which then gets no gradient from that position), or [0 x d] for none.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& users, const at::Tensor& candidates,
                            const at::Tensor& target_vectors, const at::Tensor& targets, const at::Tensor* log_q_or_null,
                            double temperature, const LogitMask* mask) {
    // (log_q and the mask come by pointer: an undefined tensor cannot be an autograd input.)
    const at::Tensor log_q = log_q_or_null ? *log_q_or_null : at::Tensor();
    const int64_t p = users.size(0), c = candidates.size(0);
    const at::Tensor u = users.detach().contiguous(), v = candidates.detach().contiguous();
    const bool override = target_vectors.size(0) > 0;
    CHECK(!override || target_vectors.size(0) == p) << "one target vector per position";
    const at::Tensor w = target_vectors.detach().contiguous();
    at::Tensor grad_u = at::empty_like(u), grad_v = at::zeros_like(v), grad_w = override ? at::empty_like(w) : at::Tensor();
    at::Tensor total = at::zeros({}, u.options().dtype(at::kDouble));
    // About 1 MB of logits per chunk: it stays in a core's L2 cache through the softmax and both products.
    const int64_t chunk = std::max<int64_t>(16, (int64_t{1} << 18) / std::max<int64_t>(1, c));
    // A temperature so small that 1/t overflows float makes the loss non-finite (the trainer then
    // names the step) rather than failing inside a product.
    const double inv_t = 1.0 / temperature > std::numeric_limits<float>::max() ? std::numeric_limits<double>::infinity()
                                                                              : 1.0 / temperature;
    const at::Tensor neg_log_q = log_q.defined() ? log_q.neg().unsqueeze(0) : at::Tensor();
    for (int64_t b = 0; b < p; b += chunk) {
      const int64_t n = std::min(chunk, p - b);
      const at::Tensor uc = u.narrow(0, b, n), tc = targets.narrow(0, b, n).unsqueeze(1);
      at::Tensor logits = neg_log_q.defined() ? at::addmm(neg_log_q, uc, v.t(), 1.0, inv_t)
                                              : at::mm(uc, v.t()).mul_(inv_t);
      at::Tensor wc;
      if (override) {
        // The target's logit against its own vector; the candidate's log_q still applies.
        wc = w.narrow(0, b, n);
        at::Tensor t = (uc * wc).sum(1, true).mul_(inv_t).to(logits.scalar_type());
        if (neg_log_q.defined()) t.add_(neg_log_q.squeeze(0).index_select(0, tc.view({-1})).unsqueeze(1));
        logits.scatter_(1, tc, t);
      }
      if (mask != nullptr) MaskChunk(*mask, b, n, logits);
      // One fused pass (ATen's softmax) gives the probabilities; the loss needs only the
      // target's: -log p_t, floored at the smallest normal float (a loss of 87.3, far beyond the
      // logits of a model that trains).
      at::Tensor g = at::softmax(logits, 1);
      total.add_(g.gather(1, tc).clamp_min(std::numeric_limits<float>::min()).log().sum().neg());
      // d loss / d logits = softmax - onehot(target); the 1/temperature scale goes into the products.
      g.scatter_add_(1, tc, at::full({n, 1}, -1.0, g.options()));
      if (override) {
        // The target's entry belongs to its own vector: taken out of the candidate products.
        const at::Tensor gt = g.gather(1, tc);
        g.scatter_(1, tc, 0.0);
        grad_u.narrow(0, b, n).copy_(at::mm(g, v).add_(gt * wc).mul_(inv_t));
        grad_w.narrow(0, b, n).copy_(uc * gt).mul_(inv_t);
      } else {
        grad_u.narrow(0, b, n).copy_(at::mm(g, v).mul_(inv_t));
      }
      grad_v.addmm_(g.t(), uc, 1.0, inv_t);
    }
    ctx->save_for_backward({grad_u, grad_v, override ? grad_w : at::zeros_like(w)});
    return total.to(users.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor g = grad_out[0];
    return {saved[0] * g, saved[1] * g, saved[2] * g, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

  // Sets the masked logits of positions [b, b + n) to -inf (accumulated, so repeated pairs and
  // pairs not kept are harmless).
  static void MaskChunk(const LogitMask& m, int64_t b, int64_t n, at::Tensor& logits) {
    const int64_t* pos = m.positions.const_data_ptr<int64_t>();
    const int64_t total = m.positions.numel();
    const int64_t lo = std::lower_bound(pos, pos + total, b) - pos, hi = std::lower_bound(pos, pos + total, b + n) - pos;
    if (lo == hi) return;
    const at::Tensor p = m.positions.narrow(0, lo, hi - lo).to(logits.device()) - b;
    const at::Tensor add = at::where(m.keep.narrow(0, lo, hi - lo), -std::numeric_limits<float>::infinity(), 0.0f)
                               .to(logits.scalar_type());
    logits.index_put_({p, m.rows.narrow(0, lo, hi - lo)}, add, /*accumulate=*/true);
  }
};

// The one entry to the fused loss: target_vectors undefined (none) or [P x d] like the users;
// mask optional.
at::Tensor FusedSum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& target_vectors,
                    const at::Tensor& targets, const at::Tensor& log_q, double temperature, const LogitMask* mask) {
  at::Tensor own = at::empty({0, users.size(1)}, users.options());
  if (target_vectors.defined()) {
    CHECK(target_vectors.dim() == 2 && target_vectors.size(0) == users.size(0) && target_vectors.size(1) == users.size(1) &&
          target_vectors.scalar_type() == users.scalar_type() && target_vectors.device() == users.device())
        << "target vectors: one per position, [P x d] like the users";
    own = target_vectors;
  }
  const at::Tensor* lq = log_q.defined() ? &log_q : nullptr;
  if (mask == nullptr) {
    return FusedSoftmaxCrossEntropy::apply(users, candidates, own, targets, lq, temperature, static_cast<const LogitMask*>(nullptr));
  }
  CHECK(mask->positions.device().is_cpu() && mask->positions.scalar_type() == at::kLong) << "mask positions: int64 on the host";
  CHECK(mask->rows.numel() == mask->positions.numel() && mask->keep.numel() == mask->positions.numel());
  const LogitMask m{mask->positions.contiguous(), mask->rows, mask->keep};
  return FusedSoftmaxCrossEntropy::apply(users, candidates, own, targets, lq, temperature, &m);
}

}  // namespace

at::Tensor SoftmaxCrossEntropySum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& targets,
                                  const at::Tensor& log_q, double temperature) {
  return FusedSum(users, candidates, at::Tensor(), targets, log_q, temperature, nullptr);
}

at::Tensor SoftmaxCrossEntropySum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& targets,
                                  const at::Tensor& log_q, double temperature, const LogitMask& mask) {
  return FusedSum(users, candidates, at::Tensor(), targets, log_q, temperature, &mask);
}

at::Tensor SoftmaxCrossEntropySum(const at::Tensor& users, const at::Tensor& candidates, const at::Tensor& target_vectors,
                                  const at::Tensor& targets, const at::Tensor& log_q, double temperature,
                                  const LogitMask* mask) {
  CHECK(target_vectors.defined()) << "target vectors: one per position";
  return FusedSum(users, candidates, target_vectors, targets, log_q, temperature, mask);
}

RetrievalLoss::RetrievalLoss(const RetrievalLossOptions& options, const std::vector<int64_t>& item_counts,
                             const c10::Device& device)
    : options_(options), num_items_(static_cast<int64_t>(item_counts.size())) {
  if (!(options_.temperature > 0)) Fail("--temperature must be > 0, got ", options_.temperature);
  if (!options_.full && options_.negatives < 0) Fail("--negatives must be >= 0, got ", options_.negatives);
  CHECK_GE(num_items_, 1) << "an empty catalogue (the model rejects it first)";
  device_ = device;
  SetItemCounts(item_counts);
}

void RetrievalLoss::SetItemCounts(const std::vector<int64_t>& item_counts) {
  CHECK_EQ(static_cast<int64_t>(item_counts.size()), num_items_) << "one count per item";
  at::Tensor c = at::tensor(item_counts, at::kLong).to(at::kFloat);
  popularity_ = (c / c.sum().clamp_min(1)).to(device_);
  unseen_ = options_.mask_unseen && c.eq(0).any().item<bool>() ? c.eq(0).to(device_) : at::Tensor();
}

Candidates RetrievalLoss::MakeCandidates(const at::Tensor& targets, int64_t global_positions, int64_t step,
                                         Communicator& comm) const {
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(popularity_.device());
  Candidates c;
  // log_q = +inf leaves an unseen item out of the softmax.
  const auto mask_unseen = [&](Candidates& c) {
    if (!unseen_.defined()) return;
    const at::Tensor out = unseen_.index_select(0, c.ids);
    if (!c.log_q.defined()) c.log_q = at::zeros({c.ids.numel()}, popularity_.options());
    c.log_q.masked_fill_(out, std::numeric_limits<float>::infinity());
  };
  if (options_.full) {
    c.ids = at::arange(num_items_, longs);
    mask_unseen(c);
    return c;
  }
  // Every rank's targets, padded to a bound every rank knows (no exchange of sizes first).
  const int64_t n = targets.numel(), bound = std::max<int64_t>(1, options_.max_positions_per_rank);
  CHECK_LE(n, bound) << "a rank has more positions than max_positions_per_rank";
  at::Tensor padded = at::full({bound}, -1, longs);
  if (n > 0) padded.narrow(0, 0, n).copy_(targets);
  at::Tensor all = comm.AllGather(padded);
  // The step's negatives: a function of (seed, step) alone, the same on every rank.
  Rng rng(HashKeys({options_.seed, 0x4E4547ULL, static_cast<uint64_t>(step)}));
  std::vector<int64_t> neg(static_cast<size_t>(options_.negatives));
  for (auto& x : neg) x = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(num_items_)));
  at::Tensor pool = at::cat({all.masked_select(all >= 0), at::tensor(neg, at::kLong).to(longs.device())});
  c.ids = std::get<0>(at::_unique2(pool, /*sorted=*/true, false, false));
  if (options_.logq) {
    // Expected count of each candidate in the pool: in-batch by popularity, plus uniform.
    c.log_q = (popularity_.index_select(0, c.ids) * static_cast<double>(global_positions) +
               static_cast<double>(options_.negatives) / static_cast<double>(num_items_))
                  .log();
  }
  mask_unseen(c);
  return c;
}

at::Tensor RetrievalLoss::Sum(const at::Tensor& users, const at::Tensor& candidate_vectors, const at::Tensor& targets,
                              const Candidates& candidates, const ExcludedItems* excluded,
                              const TargetVariant* variant) const {
  // Full softmax: candidate c is item c. Sampled: targets become rows of the sorted candidates.
  const at::Tensor rows = options_.full ? targets : at::searchsorted(candidates.ids, targets);
  std::optional<LogitMask> mask;
  if (excluded != nullptr && excluded->items.numel() > 0) {
    mask = LogitMask{excluded->positions, excluded->items, {}};
    if (options_.full) {
      mask->keep = at::ones_like(excluded->items, excluded->items.options().dtype(at::kBool));
    } else {
      // The candidate row an item would have, kept where the item is really there (no host round trip).
      const int64_t c = candidates.ids.numel();
      mask->rows = at::searchsorted(candidates.ids, excluded->items).clamp_max(c - 1);
      mask->keep = candidates.ids.index_select(0, mask->rows).eq(excluded->items);
    }
  }
  const LogitMask* m = mask ? &*mask : nullptr;
  at::Tensor sum = FusedSum(users, candidate_vectors, at::Tensor(), rows, candidates.log_q, options_.temperature, m);
  if (variant == nullptr || variant->weight == 0) return sum;
  const at::Tensor own = variant->vectors.index_select(0, rows).to(users.scalar_type());
  return sum + variant->weight * FusedSum(users, candidate_vectors, own, rows, candidates.log_q, options_.temperature, m);
}

bool UsesFullSoftmax(const std::string& loss, int64_t num_items, int64_t full_softmax_max_items) {
  if (loss != "full" && loss != "sampled" && loss != "auto") Fail("--loss: expected full, sampled or auto, got ", Quote(loss));
  return loss == "full" || (loss == "auto" && num_items <= full_softmax_max_items);
}

}  // namespace shardrec
