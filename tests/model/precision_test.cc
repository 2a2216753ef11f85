#include "model/precision.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace shardrec {
namespace {

TEST(Precision, AutocastScopeRunsProductsInBfloat16AndRestores) {
  at::Tensor a = at::randn({8, 16}), b = at::randn({16, 4});
  EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kFloat);
  {
    AutocastScope off(false, c10::DeviceType::CPU);
    EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kFloat);
  }
  {
    AutocastScope on(true, c10::DeviceType::CPU);
    at::Tensor c = at::matmul(a, b);
    EXPECT_EQ(c.scalar_type(), at::kBFloat16);
    // The bfloat16 product is the float32 one up to bfloat16 rounding (8 bits of mantissa).
    at::Tensor exact = at::matmul(a.to(at::kDouble), b.to(at::kDouble));
    EXPECT_LT((c.to(at::kDouble) - exact).abs().max().item<double>(), 0.05 * exact.abs().max().item<double>());
    EXPECT_GT((c.to(at::kDouble) - exact).abs().max().item<double>(), 0.0);
    {
      AutocastScope nested(true, c10::DeviceType::CPU);
      EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kBFloat16);
    }
    EXPECT_TRUE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU)) << "the inner scope restores the outer";
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kFloat);
}

TEST(Precision, NamesAreCheckedAgainstTheFlag) {
  EXPECT_FALSE(IsBfloat16("float32"));
  EXPECT_TRUE(IsBfloat16("bfloat16"));
  testing::ExpectUserError([] { IsBfloat16("fp16"); }, {"--precision: expected float32 or bfloat16, got 'fp16'"});
}

}  // namespace
}  // namespace shardrec
