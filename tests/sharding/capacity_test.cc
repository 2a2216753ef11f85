// The capacity model against independent counts: the expected number of distinct ids against a
// direct sum, and the all-to-all bytes per step against what the real ShardedEmbeddingCollection
// sends for simulated batches of Zipf ids (counted by a communicator that wraps the in-process one).
#include "sharding/capacity.h"
#include "sharding/planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

#include "distributed/inprocess.h"
#include "sharding/embedding_collection.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

// The oracle: the sum over ranks of 1 - (1 - p_i)^n (1 - 1/N)^u, term by term.
double DirectDistinct(double s, int64_t rows, double draws, double uniform, int64_t begin, int64_t end) {
  double norm = 0;
  for (int64_t i = 1; i <= rows; ++i) norm += std::pow(static_cast<double>(i), -s);
  const double keep_uniform = std::pow(1 - 1.0 / static_cast<double>(rows), uniform);
  double sum = 0;
  for (int64_t i = begin; i < end; ++i) {
    const double p = std::pow(static_cast<double>(i), -s) / norm;
    sum += 1 - std::pow(1 - p, draws) * keep_uniform;
  }
  return sum;
}

TEST(Capacity, ExpectedDistinctEqualsTheDirectSum) {
  // 2M ranks: the first 2^20 are summed exactly, the rest integrated.
  const int64_t n = 2000000;
  for (double s : {0.8, 1.2}) {
    const double want = DirectDistinct(s, n, 200000, 300, 1, n + 1);
    EXPECT_NEAR(ExpectedDistinct(s, n, 200000, 300, 1, n + 1), want, 1e-6 * want) << s;
    const double part = DirectDistinct(s, n, 200000, 300, 1200000, 1700000);
    EXPECT_NEAR(ExpectedDistinct(s, n, 200000, 300, 1200000, 1700000), part, 1e-5 * part) << s;
  }
  // Uniform ids: rows x (1 - (1 - 1/rows)^draws).
  EXPECT_NEAR(ExpectedDistinct(0, 1000, 500, 0, 1, 1001), 1000 * (1 - std::pow(1 - 1e-3, 500)), 1e-9);
  EXPECT_EQ(ExpectedDistinct(1.0, 100, 50, 0, 60, 60), 0);
}

// Forwards everything to `inner` and counts the bytes each all-to-all sends to other ranks.
class CountingCommunicator : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner), sent_to_(inner.world_size(), 0.0) {}
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  std::string backend() const override { return inner_.backend(); }
  std::string device() const override { return inner_.device(); }
  void AllReduce(at::Tensor& t, ReduceOp op) override { inner_.AllReduce(t, op); }
  void Broadcast(at::Tensor& t, int root) override { inner_.Broadcast(t, root); }
  at::Tensor AllGather(const at::Tensor& t) override { return inner_.AllGather(t); }
  at::Tensor ReduceScatter(const at::Tensor& t, ReduceOp op) override { return inner_.ReduceScatter(t, op); }
  void Barrier() override { inner_.Barrier(); }
  AllToAllResult AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                          std::optional<std::vector<int64_t>> recv_splits) override {
    const double row = input.dim() > 0 && input.size(0) > 0
                           ? static_cast<double>(input.numel() / input.size(0) * input.element_size())
                           : 0.0;
    for (int p = 0; p < world_size(); ++p) {
      if (p != rank()) sent_to_[p] += static_cast<double>(send_splits[p]) * row;
    }
    return inner_.AllToAll(input, send_splits, std::move(recv_splits));
  }
  const std::vector<double>& sent_to() const { return sent_to_; }

 private:
  Communicator& inner_;
  std::vector<double> sent_to_;
};

// Zipf(s) popularity ranks 1..n by inverse CDF; `row_of` maps a rank to its table row.
class ZipfIds {
 public:
  ZipfIds(double s, int64_t n, bool sorted, uint64_t seed) : cdf_(n), row_of_(n) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) cdf_[i] = acc += std::pow(static_cast<double>(i + 1), -s);
    for (auto& c : cdf_) c /= acc;
    std::iota(row_of_.begin(), row_of_.end(), 0);
    if (!sorted) std::shuffle(row_of_.begin(), row_of_.end(), std::mt19937_64(seed));
  }
  at::Tensor Draw(int64_t count, std::mt19937_64& gen) const {
    std::uniform_real_distribution<double> u(0, 1);
    at::Tensor t = at::empty({count}, at::kLong);
    int64_t* p = t.data_ptr<int64_t>();
    for (int64_t k = 0; k < count; ++k) {
      const int64_t i = std::min<int64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u(gen)) - cdf_.begin(),
                                          static_cast<int64_t>(cdf_.size()) - 1);
      p[k] = row_of_[i];
    }
    return t;
  }

 private:
  std::vector<double> cdf_;
  std::vector<int64_t> row_of_;
};

struct Case {
  ShardingType type;
  bool sorted;
  bool shared;  // every rank looks up the same ids (the two-tower model's global candidates)
};

// Bytes each rank sends to ranks on its node and to other nodes, averaged over `steps` forward +
// backward passes of the real collection, next to the estimate for the same plan and workload.
void CompareWithTheCollection(const Case& c) {
  const int world = 4, gpus_per_node = 2, steps = 4;
  const int64_t rows = 200000, dim = 16, draws = 20000;
  const double zipf = 1.05;
  TableSpec spec{.name = "items", .rows = rows, .dim = dim, .features = {"item"}};
  spec.pinned = c.type;
  PlannerOptions po;
  po.world_size = world;
  const ShardingPlan plan = PlanSharding({spec}, po);
  ASSERT_EQ(plan.tables[0].type, c.type);
  ClusterSpec cluster;
  cluster.name = "test";
  cluster.nodes = world / gpus_per_node;
  cluster.gpus_per_node = gpus_per_node;
  TableWorkload wl;
  wl.ids = {.zipf = zipf, .sorted = c.sorted};
  (c.shared ? wl.shared_draws : wl.local_draws) = static_cast<double>(draws);
  wl.outputs = static_cast<double>(draws);
  const CapacityEstimate e = EstimateCapacity({spec}, plan, {wl}, cluster);

  const ZipfIds ids(zipf, rows, c.sorted, /*seed=*/11);
  std::mutex mu;
  std::vector<std::vector<double>> measured(world);
  RunRanks(world, [&](Communicator& inner) {
    CountingCommunicator comm(inner);
    ShardedEmbeddingCollection coll({spec}, plan, &comm, {.seed = 3});
    std::mt19937_64 gen(c.shared ? 99 : 100 + comm.rank());
    for (int s = 0; s < steps; ++s) {
      FeatureBatch b;
      b["item"] = {ids.Draw(draws, gen), at::ones({draws}, at::kLong)};
      FeatureOutputs out = coll.Forward(b);
      coll.Backward({{"item", at::ones_like(out["item"])}});
    }
    std::lock_guard<std::mutex> lock(mu);
    measured[comm.rank()] = comm.sent_to();
  });
  double total = 0;
  for (int r = 0; r < world; ++r) {
    double intra = 0, inter = 0;
    for (int p = 0; p < world; ++p) (p / gpus_per_node == r / gpus_per_node ? intra : inter) += measured[r][p] / steps;
    total += intra + inter;
    const RankTraffic& t = e.ranks[r];
    EXPECT_NEAR(intra, t.sent_intra, 0.03 * t.sent_intra + 64) << "rank " << r;
    EXPECT_NEAR(inter, t.sent_inter, 0.03 * t.sent_inter + 64) << "rank " << r;
  }
  EXPECT_NEAR(total, e.total_bytes, 0.02 * e.total_bytes);
  EXPECT_GT(e.step_seconds, 0);
}

TEST(Capacity, AllToAllBytesMatchTheCollectionRowWiseShuffled) { CompareWithTheCollection({ShardingType::kRowWise, false, false}); }
// Row 0 the most popular: rank 0 serves most of every batch (the skew the plan shows).
TEST(Capacity, AllToAllBytesMatchTheCollectionRowWiseSorted) { CompareWithTheCollection({ShardingType::kRowWise, true, false}); }
TEST(Capacity, AllToAllBytesMatchTheCollectionSharedIds) { CompareWithTheCollection({ShardingType::kRowWise, false, true}); }
TEST(Capacity, AllToAllBytesMatchTheCollectionColumnWise) { CompareWithTheCollection({ShardingType::kColumnWise, false, false}); }
TEST(Capacity, AllToAllBytesMatchTheCollectionTableWise) { CompareWithTheCollection({ShardingType::kTableWise, true, false}); }

TEST(Capacity, SortedPopularityLoadsTheFirstRowBlock) {
  TableSpec spec{.name = "items", .rows = 1000000, .dim = 64, .features = {"item"}};
  spec.pinned = ShardingType::kRowWise;
  PlannerOptions po;
  po.world_size = 8;
  const ShardingPlan plan = PlanSharding({spec}, po);
  ClusterSpec cluster{.name = "one node", .nodes = 1, .gpus_per_node = 8};
  TableWorkload shuffled{.ids = {.zipf = 1.05, .sorted = false}, .local_draws = 50000};
  TableWorkload sorted = shuffled;
  sorted.ids.sorted = true;
  const CapacityEstimate a = EstimateCapacity({spec}, plan, {shuffled}, cluster);
  const CapacityEstimate b = EstimateCapacity({spec}, plan, {sorted}, cluster);
  // The same bytes leave each rank (the same distinct ids), but rank 0 receives far more.
  EXPECT_NEAR(a.ranks[3].distinct, b.ranks[3].distinct, 1e-6 * a.ranks[3].distinct);
  EXPECT_GT(b.ranks[0].received_intra, 3 * a.ranks[0].received_intra);
  EXPECT_GT(b.step_seconds, 2 * a.step_seconds);
  // Memory: the tables' rows x dim x 4 bytes plus one float per row (row-wise Adagrad).
  EXPECT_DOUBLE_EQ(a.ranks[0].tables, 125000.0 * 64 * 4);
  EXPECT_DOUBLE_EQ(a.ranks[0].optimizer, 125000.0 * 4);
}

TEST(Capacity, PlanOfWrongWorldSizeIsAUserError) {
  TableSpec spec{.name = "items", .rows = 100, .dim = 8, .features = {"item"}};
  PlannerOptions po;
  po.world_size = 2;
  const ShardingPlan plan = PlanSharding({spec}, po);
  ClusterSpec cluster{.name = "big", .nodes = 2, .gpus_per_node = 2};
  testing::ExpectUserError([&] { EstimateCapacity({spec}, plan, {TableWorkload{}}, cluster); }, {"2 ranks", "'big' has 4"});
}

}  // namespace
}  // namespace shardrec
