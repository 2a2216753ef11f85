#include "common/rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace shardrec {
namespace {

TEST(Rng, SameSeedSameStreamDifferentSeedsDiffer) {
  Rng a(1), b(1), c(2);
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.NextU64();
    EXPECT_EQ(x, b.NextU64());
    EXPECT_NE(x, c.NextU64());
  }
}

TEST(Rng, KnownFirstValuesArePinned) {
  // Pinned so that data generated from a seed never silently changes across releases.
  Rng r(42);
  EXPECT_EQ(r.NextU64(), 13696896915399030466ULL);
  EXPECT_EQ(r.NextU64(), 12641092763546669283ULL);
  EXPECT_EQ(HashKeys({1, 2}), 11219452103260847153ULL);
  EXPECT_NE(HashKeys({1, 2}), HashKeys({2, 1}));
}

TEST(Rng, MomentsOfDistributions) {
  Rng r(7);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0, se = 0, sg = 0;
  std::vector<int> below(10, 0);
  for (int i = 0; i < n; ++i) {
    su += r.Uniform();
    double z = r.Normal();
    sn += z;
    sn2 += z * z;
    se += r.Exponential(3.0);
    sg += r.Gamma(2.5);
    ++below[r.Below(10)];
  }
  EXPECT_NEAR(su / n, 0.5, 0.01);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
  EXPECT_NEAR(se / n, 3.0, 0.05);
  EXPECT_NEAR(sg / n, 2.5, 0.05);
  for (int c : below) EXPECT_NEAR(c, n / 10, n / 100);
}

}  // namespace
}  // namespace shardrec
