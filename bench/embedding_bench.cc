// Sharded embedding lookup + backward + fused update throughput on a Zipf id stream, against
// (a) a plain LibTorch embedding trained with a dense Adagrad (what a straightforward model does),
// measured in the same run, and (b) this machine's memcpy bandwidth. Shows the effect of dedup.
//   embedding_bench --world 1|2 [--rows 1000000 --dims 64,128 --ids 16384 --steps 10]
//   launch/mpirun.sh -np 2 embedding_bench --backend mpi
// "ids/s" counts looked-up ids over all ranks; "GB/s" is the embedding bytes a step must move at
// least (rows read for the lookup, gradient rows in, rows + state read and written by the update),
// over the step time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/rng.h"
#include "distributed/inprocess.h"
#include "distributed/factory.h"
#include "sharding/embedding_collection.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string backend = "inprocess";
  int world = 1;
  int64_t rows = 1000000;
  std::vector<int64_t> dims = {64, 128};
  int64_t ids = 16384;  // per rank per step
  int steps = 10;
  double zipf = 1.05;
};

// Zipf ids by inverse CDF over popularity ranks; rank -> id through a fixed permutation.
class ZipfStream {
 public:
  ZipfStream(int64_t rows, double s, uint64_t seed) : rng_(seed), perm_(rows) {
    cdf_.resize(rows);
    double acc = 0;
    for (int64_t r = 0; r < rows; ++r) cdf_[r] = acc += std::pow(r + 1.0, -s);
    for (auto& c : cdf_) c /= acc;
    for (int64_t i = 0; i < rows; ++i) perm_[i] = i;
    Rng p(seed + 1);
    for (int64_t i = rows - 1; i > 0; --i) std::swap(perm_[i], perm_[p.Below(i + 1)]);
  }
  at::Tensor Next(int64_t n) {
    at::Tensor out = at::empty({n}, at::kLong);
    int64_t* p = out.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      int64_t r = std::lower_bound(cdf_.begin(), cdf_.end(), rng_.Uniform()) - cdf_.begin();
      p[i] = perm_[std::min<int64_t>(r, static_cast<int64_t>(perm_.size()) - 1)];
    }
    return out;
  }

 private:
  Rng rng_;
  std::vector<double> cdf_;
  std::vector<int64_t> perm_;
};

double MemcpyGBs() {
  const size_t n = size_t{256} << 20;
  std::vector<char> a(n, 1), b(n, 0);
  std::memcpy(b.data(), a.data(), n);
  auto t = Clock::now();
  for (int i = 0; i < 3; ++i) std::memcpy(b.data(), a.data(), n);
  return 3.0 * n / std::chrono::duration<double>(Clock::now() - t).count() / 1e9;
}

// Minimal bytes per step for `ids` lookups with `unique` distinct rows of width dim (row-wise
// Adagrad: one float of state per row).
double StepBytes(int64_t ids, int64_t unique, int64_t dim) {
  return 4.0 * (ids * dim        // lookup output written
                + unique * dim   // rows read
                + ids * dim      // gradient read
                + 2.0 * unique * (dim + 1));  // rows + state read and written
}

struct Result {
  double seconds;   // per step
  double unique;    // distinct ids per rank per step
  double comm;      // bytes through all-to-all per rank per step
};

Result RunSharded(Communicator& c, const Args& a, int64_t dim, bool dedup) {
  TableSpec t{.name = "items", .rows = a.rows, .dim = dim, .features = {"ids"}};
  t.optimizer = {.type = OptimizerType::kRowWiseAdagrad, .lr = 0.01};
  ShardingPlan plan;
  plan.world_size = c.world_size();
  plan.tables.push_back({"items", ShardingType::kRowWise, MakeShards(t, ShardingType::kRowWise, c.world_size())});
  ShardedEmbeddingCollection coll({t}, plan, &c, {.seed = 1, .dedup = dedup});
  ZipfStream stream(a.rows, a.zipf, 100 + c.rank());
  std::vector<at::Tensor> batches;
  for (int s = 0; s < a.steps + 1; ++s) batches.push_back(stream.Next(a.ids));
  at::Tensor grad = at::randn({a.ids, dim});
  at::Tensor lengths = at::ones({a.ids}, at::kLong);
  double uniq = 0, comm = 0, secs = 0;
  for (int s = 0; s < a.steps + 1; ++s) {
    c.Barrier();
    auto start = Clock::now();
    FeatureOutputs out = coll.Forward({{"ids", {batches[s], lengths}}});
    coll.Backward({{"ids", grad}});
    c.Barrier();
    if (s == 0) continue;  // warm-up
    secs += std::chrono::duration<double>(Clock::now() - start).count();
    uniq += std::get<0>(at::_unique2(batches[s])).numel();
    comm += coll.last_comm_bytes();
  }
  return {secs / a.steps, uniq / a.steps, comm / a.steps};
}

// LibTorch's plain embedding, autograd's dense gradient and a dense Adagrad over the whole table.
double RunBaseline(const Args& a, int64_t dim) {
  at::Tensor w = at::rand({a.rows, dim}).sub_(0.5).mul_(0.1);
  w.set_requires_grad(true);
  at::Tensor state = at::zeros({a.rows, dim});
  ZipfStream stream(a.rows, a.zipf, 100);
  at::Tensor grad = at::randn({a.ids, dim});
  double secs = 0;
  for (int s = 0; s < a.steps + 1; ++s) {
    at::Tensor ids = stream.Next(a.ids);
    auto start = Clock::now();
    at::Tensor out = at::embedding(w, ids);
    out.backward(grad);
    {
      c10::AutoGradMode no_grad(false);
      at::Tensor g = w.grad();
      state.addcmul_(g, g);
      w.addcdiv_(g, state.sqrt().add_(1e-8), -0.01);
      g.zero_();
    }
    if (s > 0) secs += std::chrono::duration<double>(Clock::now() - start).count();
  }
  return secs / a.steps;
}

void Run(Communicator& c, const Args& a, double memcpy_gbs) {
  const int w = c.world_size();
  for (int64_t dim : a.dims) {
    const double base = c.rank() == 0 && w == 1 ? RunBaseline(a, dim) : 0;
    for (bool dedup : {true, false}) {
      Result r = RunSharded(c, a, dim, dedup);
      if (c.rank() != 0) continue;
      const double ids_s = a.ids * w / r.seconds;
      const double gbs = StepBytes(a.ids, static_cast<int64_t>(r.unique), dim) * w / r.seconds / 1e9;
      std::printf("| %s | %d | %lld | %s | %.1f | %.2f M | %.2f | %.3f | %.1f MiB |", c.backend().c_str(), w,
                  static_cast<long long>(dim), dedup ? "on" : "off", r.seconds * 1e3, ids_s / 1e6, gbs,
                  gbs / memcpy_gbs, r.comm / (1 << 20));
      if (w == 1) {
        std::printf(" %.1f ms: %.1fx |\n", base * 1e3, base / r.seconds);
      } else {
        std::printf(" (1-rank table) |\n");
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) {
  shardrec::Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--backend") a.backend = v;
    if (k == "--world") a.world = std::stoi(v);
    if (k == "--rows") a.rows = std::stoll(v);
    if (k == "--ids") a.ids = std::stoll(v);
    if (k == "--steps") a.steps = std::stoi(v);
    if (k == "--dims") {
      a.dims.clear();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        a.dims.push_back(std::stoll(v.substr(p, q - p)));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    }
  }
  at::set_num_threads(a.backend == "inprocess" ? std::max(1, 2 / a.world) : 1);
  const double mc = shardrec::MemcpyGBs();
  auto header = [&] {
    std::printf("memcpy: %.1f GB/s (one thread, 256 MiB)\n\n", mc);
    std::printf("| backend | ranks | dim | dedup | ms/step | ids/s | GB/s | of memcpy | all-to-all per rank | plain embedding + dense Adagrad (1 rank): ms/step, our speed-up |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  };
  if (a.backend == "inprocess") {
    header();
    shardrec::RunRanks(a.world, [&](shardrec::Communicator& c) { shardrec::Run(c, a, mc); });
  } else {
    auto env = shardrec::DetectLaunchEnv();
    auto comm = shardrec::CreateCommunicator(a.backend, "cpu", env, {});
    if (comm->rank() == 0) header();
    shardrec::Run(*comm, a, mc);
  }
  return 0;
}
