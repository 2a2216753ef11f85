#include "model/losses.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "distributed/inprocess.h"

namespace shardrec {
namespace {

// Direct reference: -log softmax(target) with logits = u.c / t - log_q, summed over positions.
double Reference(const at::Tensor& u, const at::Tensor& c, const at::Tensor& target, const at::Tensor& log_q, double t) {
  double total = 0;
  for (int64_t p = 0; p < u.size(0); ++p) {
    std::vector<double> logits;
    for (int64_t j = 0; j < c.size(0); ++j) {
      double dot = 0;
      for (int64_t k = 0; k < u.size(1); ++k) dot += u[p][k].item<double>() * c[j][k].item<double>();
      logits.push_back(dot / t - (log_q.defined() ? log_q[j].item<double>() : 0.0));
    }
    double mx = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (double l : logits) z += std::exp(l - mx);
    total += -(logits[target[p].item<int64_t>()] - mx - std::log(z));
  }
  return total;
}

at::Tensor Unit(at::Tensor x) { return x / x.norm(2, -1, true); }

TEST(Losses, FullSoftmaxMatchesDirectComputation) {
  at::manual_seed(3);
  at::Tensor u = Unit(at::randn({5, 4})), items = Unit(at::randn({7, 4}));
  at::Tensor targets = at::tensor({0, 3, 6, 3, 1}, at::kLong);
  EXPECT_NEAR(SoftmaxCrossEntropySum(u, items, targets, {}, 0.1).item<double>(), Reference(u, items, targets, {}, 0.1), 1e-3);
}

TEST(Losses, SampledSoftmaxWithLogQMatchesDirectComputation) {
  at::manual_seed(4);
  at::Tensor u = Unit(at::randn({6, 8})), cand = Unit(at::randn({9, 8}));
  at::Tensor idx = at::tensor({8, 0, 2, 2, 5, 7}, at::kLong);
  at::Tensor log_q = at::log(at::rand({9}) + 0.1);
  EXPECT_NEAR(SoftmaxCrossEntropySum(u, cand, idx, log_q, 0.05).item<double>(), Reference(u, cand, idx, log_q, 0.05), 1e-2);
  // The correction matters: without it the value differs.
  EXPECT_GT(std::abs(SoftmaxCrossEntropySum(u, cand, idx, {}, 0.05).item<double>() - Reference(u, cand, idx, log_q, 0.05)), 0.1);
  EXPECT_NEAR(SoftmaxCrossEntropySum(u, cand, idx, {}, 0.05).item<double>(), Reference(u, cand, idx, {}, 0.05), 1e-2);
}

TEST(Losses, HandComputedTwoItems) {
  // u = e1; items e1, e2; t = 1: loss = -log(e / (e + 1)).
  at::Tensor u = at::tensor({1.0f, 0.0f}).view({1, 2});
  at::Tensor items = at::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});
  EXPECT_NEAR(SoftmaxCrossEntropySum(u, items, at::tensor({int64_t{0}}), {}, 1.0).item<double>(), -std::log(std::exp(1.0) / (std::exp(1.0) + 1)), 1e-6);
  // logQ: subtracting log 2 from item 0's logit gives -log(e/2 / (e/2 + 1)).
  at::Tensor log_q = at::tensor({std::log(2.0f), 0.0f});
  EXPECT_NEAR(SoftmaxCrossEntropySum(u, items, at::tensor({int64_t{0}}), log_q, 1.0).item<double>(),
              -std::log((std::exp(1.0) / 2) / (std::exp(1.0) / 2 + 1)), 1e-6);
}

// The fused loss against autograd through the plain formula (logits -> cross_entropy): the value
// and both gradients, with and without logQ, over several position chunks.
TEST(Losses, FusedGradientsEqualAutogradOfThePlainFormula) {
  at::manual_seed(5);
  for (bool logq : {false, true}) {
    SCOPED_TRACE(logq ? "logQ" : "no logQ");
    const int64_t p = 300, c = 40000;  // several chunks of positions
    at::Tensor u = Unit(at::randn({p, 16})).requires_grad_(true);
    at::Tensor v = Unit(at::randn({c, 16})).requires_grad_(true);
    at::Tensor t = at::randint(0, c, {p}, at::kLong);
    at::Tensor lq = logq ? at::log(at::rand({c}) + 0.1) : at::Tensor();
    at::Tensor fused = SoftmaxCrossEntropySum(u, v, t, lq, 0.05);
    (fused * 0.5).backward();
    const at::Tensor gu = u.grad().clone(), gv = v.grad().clone();
    u.mutable_grad() = at::Tensor();
    v.mutable_grad() = at::Tensor();
    at::Tensor logits = at::matmul(u, v.t()) / 0.05;
    if (logq) logits = logits - lq.unsqueeze(0);
    at::Tensor plain = at::cross_entropy_loss(logits, t, {}, at::Reduction::Sum);
    (plain * 0.5).backward();
    EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-4 * plain.item<double>());
    // Float sums in another order: equal to 1e-5 of the largest gradient entry.
    EXPECT_LT((gu - u.grad()).abs().max().item<float>(), 1e-5 * u.grad().abs().max().item<float>());
    EXPECT_LT((gv - v.grad()).abs().max().item<float>(), 1e-5 * v.grad().abs().max().item<float>());
    EXPECT_GT(u.grad().abs().max().item<float>(), 0.1);
  }
}


// Masked logits: the fused loss with a mask equals autograd through the plain formula with those
// logits set to -inf (value and both gradients), over several chunks; pairs not kept and repeated
// pairs change nothing.
TEST(Losses, MaskedLogitsEqualThePlainFormulaWithoutThem) {
  at::manual_seed(6);
  const int64_t p = 300, c = 5000, d = 8;  // 52 positions per chunk: several chunks
  at::Tensor u = Unit(at::randn({p, d})).requires_grad_(true);
  at::Tensor v = Unit(at::randn({c, d})).requires_grad_(true);
  at::Tensor t = at::randint(0, c, {p}, at::kLong);
  std::vector<int64_t> pos, rows;
  std::vector<uint8_t> keep;
  at::Tensor dense_mask = at::zeros({p, c}, at::kBool);
  // Each position's best-scoring items (so masking them moves the loss), one of them twice.
  const at::Tensor best = std::get<1>(at::matmul(u, v.t()).detach().topk(4, 1));
  for (int64_t i = 0; i < p; ++i) {
    for (int64_t r : {best[i][0].item<int64_t>(), best[i][1].item<int64_t>(), best[i][0].item<int64_t>(),
                      best[i][3].item<int64_t>(), (i * 31 + 5) % c}) {
      if (r == t[i].item<int64_t>()) continue;
      const bool k = (i + r) % 5 != 0;  // some pairs are not kept
      pos.push_back(i);
      rows.push_back(r);
      keep.push_back(k);
      if (k) dense_mask[i][r] = true;
    }
  }
  const LogitMask mask{at::tensor(pos, at::kLong), at::tensor(rows, at::kLong), at::tensor(keep, at::kByte).to(at::kBool)};
  ASSERT_GT(dense_mask.sum().item<int64_t>(), p);
  at::Tensor fused = SoftmaxCrossEntropySum(u, v, t, {}, 0.1, mask);
  fused.backward();
  const at::Tensor gu = u.grad().clone(), gv = v.grad().clone();
  u.mutable_grad() = at::Tensor();
  v.mutable_grad() = at::Tensor();
  at::Tensor logits = (at::matmul(u, v.t()) / 0.1).masked_fill(dense_mask, -std::numeric_limits<float>::infinity());
  at::Tensor plain = at::cross_entropy_loss(logits, t, {}, at::Reduction::Sum);
  plain.backward();
  EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-6 * plain.item<double>());
  EXPECT_LT((gu - u.grad()).abs().max().item<float>(), 1e-5 * u.grad().abs().max().item<float>());
  EXPECT_LT((gv - v.grad()).abs().max().item<float>(), 1e-5 * v.grad().abs().max().item<float>());
  // The mask matters: without it the loss is larger (the masked items took probability).
  EXPECT_GT(SoftmaxCrossEntropySum(u, v, t, {}, 0.1).item<double>(), fused.item<double>() + 10.0);
}

// Target vectors: position i's target logit taken against its own vector w[i] (the target's
// candidate row stays out of that position's softmax): the fused loss equals autograd through the
// plain formula with the target column replaced, value and all three gradients, with logQ and a
// mask, over several chunks. The target's candidate row gets no gradient from its own position.
TEST(Losses, TargetVectorsReplaceTheTargetsLogit) {
  at::manual_seed(8);
  const int64_t p = 300, c = 5000, d = 8;
  at::Tensor u = Unit(at::randn({p, d})).requires_grad_(true);
  at::Tensor v = Unit(at::randn({c, d})).requires_grad_(true);
  at::Tensor w = (at::randn({p, d}) * 0.5).requires_grad_(true);
  at::Tensor t = at::randint(0, c, {p}, at::kLong);
  at::Tensor lq = at::log(at::rand({c}) + 0.1);
  std::vector<int64_t> pos, rows;
  at::Tensor dense_mask = at::zeros({p, c}, at::kBool);
  for (int64_t i = 0; i < p; ++i) {
    const int64_t r = (i * 37 + 11) % c;
    if (r == t[i].item<int64_t>()) continue;
    pos.push_back(i);
    rows.push_back(r);
    dense_mask[i][r] = true;
  }
  const LogitMask mask{at::tensor(pos, at::kLong), at::tensor(rows, at::kLong),
                       at::ones({static_cast<int64_t>(pos.size())}, at::kBool)};
  at::Tensor fused = SoftmaxCrossEntropySum(u, v, w, t, lq, 0.1, &mask);
  fused.backward();
  const at::Tensor gu = u.grad().clone(), gv = v.grad().clone(), gw = w.grad().clone();
  for (at::Tensor* x : {&u, &v, &w}) x->mutable_grad() = at::Tensor();
  // The plain formula: the full logits, the target's column replaced by u[i].w[i] / t - log_q[t].
  at::Tensor logits = at::matmul(u, v.t()) / 0.1 - lq.unsqueeze(0);
  const at::Tensor own = (u * w).sum(1, true) / 0.1 - lq.index_select(0, t).unsqueeze(1);
  logits = logits.scatter(1, t.unsqueeze(1), own).masked_fill(dense_mask, -std::numeric_limits<float>::infinity());
  at::Tensor plain = at::cross_entropy_loss(logits, t, {}, at::Reduction::Sum);
  plain.backward();
  EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-5 * plain.item<double>());
  EXPECT_LT((gu - u.grad()).abs().max().item<float>(), 1e-5 * u.grad().abs().max().item<float>());
  EXPECT_LT((gv - v.grad()).abs().max().item<float>(), 1e-5 * v.grad().abs().max().item<float>());
  EXPECT_LT((gw - w.grad()).abs().max().item<float>(), 1e-5 * w.grad().abs().max().item<float>());
  EXPECT_GT(w.grad().abs().max().item<float>(), 0.1);
  // It differs from the loss against the candidates' own rows.
  EXPECT_GT(std::abs(SoftmaxCrossEntropySum(u, v, t, lq, 0.1, mask).item<double>() - fused.item<double>()), 10.0);
  // One position, hand-computed: u = e1, candidates e1 and e2, target 0 scored against w = 2 e1
  // (t = 1): -log(e^2 / (e^2 + e^0)); candidate 0 gets no gradient, candidate 1 gets p1 * u.
  at::Tensor u1 = at::tensor({1.0f, 0.0f}).view({1, 2}), v1 = at::eye(2).requires_grad_(true);
  at::Tensor w1 = at::tensor({2.0f, 0.0f}).view({1, 2});
  at::Tensor one = SoftmaxCrossEntropySum(u1, v1, w1, at::tensor({int64_t{0}}), at::Tensor(), 1.0, nullptr);
  EXPECT_NEAR(one.item<double>(), -std::log(std::exp(2.0) / (std::exp(2.0) + 1.0)), 1e-6);
  one.backward();
  EXPECT_TRUE(at::equal(v1.grad()[0], at::zeros({2})));
  EXPECT_NEAR(v1.grad()[1][0].item<double>(), 1.0 / (std::exp(2.0) + 1.0), 1e-6);
}

// RetrievalLoss with excluded items, against the hand-built mask: under full softmax an item is its
// own row; under sampled softmax an excluded item that is not a candidate is ignored.
TEST(Losses, ExcludedItemsLeaveTheirCandidatesOut) {
  at::manual_seed(7);
  const int64_t items = 50, d = 8;
  at::Tensor u = Unit(at::randn({3, d}));
  at::Tensor v = Unit(at::randn({items, d}));
  at::Tensor targets = at::tensor({4, 9, 20}, at::kLong);
  const ExcludedItems excluded{at::tensor({0, 0, 2, 2}, at::kLong), at::tensor({7, 11, 3, 40}, at::kLong)};
  auto plain = [&](const at::Tensor& cand_ids, const std::vector<std::pair<int64_t, int64_t>>& masked) {
    at::Tensor logits = at::matmul(u, v.index_select(0, cand_ids).t());
    for (auto [p, row] : masked) logits[p][row] = -std::numeric_limits<float>::infinity();
    return at::cross_entropy_loss(logits, at::searchsorted(cand_ids, targets), {}, at::Reduction::Sum).item<double>();
  };
  RetrievalLossOptions full{.full = true, .temperature = 1.0};
  RetrievalLoss full_loss(full, std::vector<int64_t>(items, 1), at::kCPU);
  Candidates all{at::arange(items, at::kLong), {}};
  EXPECT_NEAR(full_loss.Sum(u, v, targets, all, &excluded).item<double>(),
              plain(all.ids, {{0, 7}, {0, 11}, {2, 3}, {2, 40}}), 1e-4);
  // Sampled: candidates 3, 4, 7, 9, 20, 33 (11 and 40 are not among them).
  RetrievalLossOptions sampled{.full = false, .temperature = 1.0, .logq = false};
  RetrievalLoss sampled_loss(sampled, std::vector<int64_t>(items, 1), at::kCPU);
  Candidates some{at::tensor({3, 4, 7, 9, 20, 33}, at::kLong), {}};
  EXPECT_NEAR(sampled_loss.Sum(u, v.index_select(0, some.ids), targets, some, &excluded).item<double>(),
              plain(some.ids, {{0, 2}, {2, 0}}), 1e-4);
  EXPECT_GT(std::abs(sampled_loss.Sum(u, v.index_select(0, some.ids), targets, some).item<double>() -
                     plain(some.ids, {{0, 2}, {2, 0}})), 1e-3);
}

// mask_unseen: items without training events are no candidates, in full and sampled softmax alike.
TEST(Losses, UnseenItemsAreLeftOutOfEverySoftmax) {
  at::manual_seed(9);
  const int64_t items = 6, d = 4;
  at::Tensor u = Unit(at::randn({3, d}));
  at::Tensor v = Unit(at::randn({items, d}));
  at::Tensor targets = at::tensor({0, 2, 5}, at::kLong);
  const std::vector<int64_t> counts = {3, 0, 1, 2, 0, 1};  // items 1 and 4 unseen
  auto plain = [&](const std::vector<int64_t>& cand) {
    const at::Tensor ids = at::tensor(cand, at::kLong);
    at::Tensor logits = at::matmul(u, v.index_select(0, ids).t());
    return at::cross_entropy_loss(logits, at::searchsorted(ids, targets), {}, at::Reduction::Sum).item<double>();
  };
  RetrievalLoss full({.full = true, .temperature = 1.0, .mask_unseen = true}, counts, at::kCPU);
  RetrievalLoss unmasked({.full = true, .temperature = 1.0}, counts, at::kCPU);
  // Sampled, without logQ: 40 uniform negatives over 6 items draw every item (the step's seed fixes them).
  RetrievalLoss sampled({.full = false, .negatives = 40, .temperature = 1.0, .logq = false, .max_positions_per_rank = 3,
                         .mask_unseen = true},
                        counts, at::kCPU);
  Candidates all, some;
  RunRanks(1, [&](Communicator& comm) {
    all = full.MakeCandidates(targets, 3, 1, comm);
    EXPECT_NEAR(unmasked.Sum(u, v, targets, unmasked.MakeCandidates(targets, 3, 1, comm)).item<double>(),
                plain({0, 1, 2, 3, 4, 5}), 1e-4);
    some = sampled.MakeCandidates(targets, 3, 1, comm);
  });
  EXPECT_NEAR(full.Sum(u, v, targets, all).item<double>(), plain({0, 2, 3, 5}), 1e-4);
  ASSERT_TRUE(at::equal(some.ids, at::arange(items, at::kLong)));
  EXPECT_NEAR(sampled.Sum(u, v, targets, some).item<double>(), plain({0, 2, 3, 5}), 1e-4);
  // The gradient of an unseen item's vector is zero.
  at::Tensor vg = v.clone().requires_grad_(true);
  full.Sum(u, vg, targets, all).backward();
  EXPECT_TRUE(at::equal(vg.grad()[1], at::zeros({d})));
  EXPECT_TRUE(at::equal(vg.grad()[4], at::zeros({d})));
  EXPECT_FALSE(at::equal(vg.grad()[3], at::zeros({d})));
}

}  // namespace
}  // namespace shardrec
