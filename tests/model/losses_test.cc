#include "model/losses.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace shardrec
