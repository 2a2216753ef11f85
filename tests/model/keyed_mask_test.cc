#include "model/keyed_mask.h"

#include <ATen/core/PhiloxRNGEngine.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/rng.h"

namespace shardrec {
namespace {

// The element's keep flag computed from its definition, one fresh generator per element: the 32-bit
// output number (index % 4) of Philox block index / 4 on subsequence `key`.
float Expected(uint64_t seed, uint64_t site, int64_t key, int64_t index, double p) {
  at::philox_engine gen(HashKeys({seed, site}), static_cast<uint64_t>(key), static_cast<uint64_t>(index) / 4);
  uint32_t x = 0;
  for (int64_t i = 0; i <= index % 4; ++i) x = gen();
  const double u = static_cast<double>(x >> 8) / static_cast<double>(1u << 24);
  return u < 1.0 - p ? 1.0f : 0.0f;
}

TEST(KeyedMask, EachElementFollowsItsDefinition) {
  const at::Tensor keys = torch::tensor(std::vector<int64_t>{7, 0, 123456789012LL}, torch::kLong);
  // [3 rows x 2 x 5] inside a full layout of [4 x 6] per row.
  const at::Tensor m = KeyedKeepMask({3, 2, 5}, {4, 6}, keys, /*seed=*/99, /*site=*/4, 0.3);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{3, 2, 5}));
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 5; ++j) {
        ASSERT_EQ(m[r][i][j].item<float>(), Expected(99, 4, keys[r].item<int64_t>(), i * 6 + j, 0.3)) << r << " " << i << " " << j;
      }
    }
  }
}

TEST(KeyedMask, ARowsMaskDependsOnItsKeyNotOnTheBatchOrTheWidth) {
  // The same rows in another batch, in another order, padded to a wider layout.
  const at::Tensor a = KeyedKeepMask({2, 3, 8}, {10, 8}, torch::tensor({5, 9}, torch::kLong), 1, 2, 0.5);
  const at::Tensor b = KeyedKeepMask({3, 7, 8}, {10, 8}, torch::tensor({9, 1, 5}, torch::kLong), 1, 2, 0.5);
  EXPECT_TRUE(at::equal(a[0], b[2].narrow(0, 0, 3)));
  EXPECT_TRUE(at::equal(a[1], b[0].narrow(0, 0, 3)));
  // Attention weights [rows x heads x W x W] in a [heads x L x L] layout.
  const at::Tensor w4 = KeyedKeepMask({1, 2, 4, 4}, {2, 6, 6}, torch::tensor({3}, torch::kLong), 1, 5, 0.5);
  const at::Tensor w6 = KeyedKeepMask({1, 2, 6, 6}, {2, 6, 6}, torch::tensor({3}, torch::kLong), 1, 5, 0.5);
  EXPECT_TRUE(at::equal(w4, w6.narrow(2, 0, 4).narrow(3, 0, 4)));
  // Another key, site or seed: another mask.
  const at::Tensor k = torch::tensor({5}, torch::kLong);
  const at::Tensor base = KeyedKeepMask({1, 10, 8}, {10, 8}, k, 1, 2, 0.5);
  EXPECT_FALSE(at::equal(base, KeyedKeepMask({1, 10, 8}, {10, 8}, torch::tensor({6}, torch::kLong), 1, 2, 0.5)));
  EXPECT_FALSE(at::equal(base, KeyedKeepMask({1, 10, 8}, {10, 8}, k, 1, 3, 0.5)));
  EXPECT_FALSE(at::equal(base, KeyedKeepMask({1, 10, 8}, {10, 8}, k, 2, 2, 0.5)));
}

TEST(KeyedMask, DropsTheRequestedShare) {
  for (double p : {0.1, 0.5, 0.9}) {
    const at::Tensor m = KeyedKeepMask({64, 50, 64}, {50, 64}, torch::arange(64, torch::kLong), 3, 0, p);
    const double dropped = m.eq(0).to(at::kDouble).mean().item<double>();
    EXPECT_NEAR(dropped, p, 0.01) << p;  // 204,800 draws: the standard error is below 0.0011
    EXPECT_TRUE(m.eq(0).logical_or(m.eq(1)).all().item<bool>());
  }
  const at::Tensor none = KeyedKeepMask({4, 5, 6}, {5, 6}, torch::arange(4, torch::kLong), 3, 0, 0.0);
  EXPECT_TRUE(at::equal(none, at::ones({4, 5, 6})));
}

TEST(KeyedMask, IdDecisionsDependOnTheIdAlone) {
  const at::Tensor ids = torch::arange(20000, torch::kLong);
  const at::Tensor keep = KeyedKeep(ids, 8, 1, 0.25);
  EXPECT_NEAR(keep.to(at::kDouble).mean().item<double>(), 0.75, 0.015);
  const at::Tensor some = torch::tensor({19999, 3, 512}, torch::kLong);
  const at::Tensor again = KeyedKeep(some, 8, 1, 0.25);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(again[i].item<bool>(), keep[some[i].item<int64_t>()].item<bool>());
  EXPECT_FALSE(at::equal(keep, KeyedKeep(ids, 9, 1, 0.25)));
}

}  // namespace
}  // namespace shardrec
