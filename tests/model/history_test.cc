#include "model/history.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

namespace shardrec {
namespace {

std::vector<int64_t> Values(const at::Tensor& t) {
  const at::Tensor c = t.to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// The builder keeps each history's last max_len events, left-aligned, and gives exactly what
// MakeHistoryBatch gives for that layout written by hand.
TEST(HistoryBuilder, KeepsTheLastEventsOfEachHistoryAsLaidOutByHand) {
  const HistoryFeatures features{.time_buckets = 8, .context = true};
  HistoryBuilder b(/*max_len=*/3, /*timestamps=*/true);
  const std::vector<int64_t> a = {5, 6, 7, 8, 9}, a_ts = {100, 200, 4000, 9000, 90000};
  const std::vector<int32_t> c = {11}, empty;
  const std::vector<int64_t> c_ts = {50}, empty_ts;
  EXPECT_EQ(b.Add(a, a_ts, /*request=*/100000), 3);
  EXPECT_EQ(b.Add(std::span<const int32_t>(c), c_ts), 1);
  EXPECT_EQ(b.Add(std::span<const int32_t>(empty), empty_ts), 0);
  EXPECT_EQ(b.rows(), 3);
  const HistoryBatch got = b.Build(features, torch::kCPU);
  const std::vector<int64_t> items = {7, 8, 9, 11, -1, -1, -1, -1, -1};
  const std::vector<int64_t> stamps = {4000, 9000, 90000, 50, 0, 0, 0, 0, 0};
  const std::vector<int64_t> lengths = {3, 1, 0}, requests = {100000, kUnknownTime, kUnknownTime};
  const HistoryBatch want = MakeHistoryBatch(3, 3, items, stamps, lengths, requests, features, torch::kCPU);
  EXPECT_EQ(got.width, 3);
  EXPECT_EQ(Values(got.items), items);
  EXPECT_EQ(Values(got.lengths), lengths);
  EXPECT_EQ(Values(got.gaps), Values(want.gaps));
  EXPECT_EQ(Values(got.context), Values(want.context));
  // The request time enters the last position's context: without it the first row differs.
  HistoryBuilder unknown(3, true);
  unknown.Add(a, a_ts);
  const std::vector<int64_t> with = Values(got.context);
  const std::vector<int64_t> first_row(with.begin(), with.begin() + 3 * ContextRows::kPerPosition);
  EXPECT_NE(Values(unknown.Build(features, torch::kCPU).context), first_row);
}

TEST(HistoryBuilder, WithoutTimestampsHasNoTimeFeatures) {
  HistoryBuilder b(10, /*timestamps=*/false);
  const std::vector<int64_t> a = {1, 2};
  b.Add(a, {});
  const HistoryBatch h = b.Build({.time_buckets = 8, .context = true}, torch::kCPU);
  EXPECT_EQ(Values(h.items), a);
  EXPECT_FALSE(h.gaps.defined());
  EXPECT_FALSE(h.context.defined());
  // A builder of no histories still builds (a rank without users makes the collective call too).
  HistoryBuilder none(10, true);
  const HistoryBatch z = none.Build({}, torch::kCPU);
  EXPECT_EQ(z.rows, 0);
  EXPECT_EQ(z.width, 1);
}

}  // namespace
}  // namespace shardrec
