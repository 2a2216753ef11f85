// Collective bandwidth, nccl-tests style, against this machine's memcpy bandwidth measured in the
// same run. AllReduce bus bandwidth = bytes/time * 2(n-1)/n; AllToAll = bytes/time * (n-1)/n,
// where bytes is each rank's buffer. Usage:
//   comm_bench --backend inprocess --world 2          # threads of one process
//   launch/mpirun.sh -np 2 comm_bench --backend mpi   # processes
#include <ATen/ops/full.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "distributed/inprocess.h"
#include "distributed/factory.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds per call of fn, repeated until ~0.2 s have passed (at least 3 calls), after a warm-up.
template <typename Fn>
double TimePerCall(Communicator* c, Fn&& fn) {
  fn();
  int iters = 0;
  double elapsed = 0;
  auto start = Clock::now();
  while (true) {
    fn();
    ++iters;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    bool more = iters < 3 || elapsed < 0.2;
    if (c) {  // every rank must run the same number of iterations: rank 0 decides
      at::Tensor go = at::full({1}, more ? 1 : 0, at::kInt);
      c->Broadcast(go, 0);
      more = go.item<int>() != 0;
    }
    if (!more) break;
  }
  return elapsed / iters;
}

double MemcpyGBs(int64_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 0);
  double t = TimePerCall(nullptr, [&] { std::memcpy(b.data(), a.data(), bytes); });
  return bytes / t / 1e9;
}

void Run(Communicator& c) {
  const int w = c.world_size();
  if (c.rank() == 0) {
    std::printf("| backend | ranks | size | AllReduce ms | AllReduce busbw GB/s | AllToAll ms | AllToAll busbw GB/s | memcpy GB/s | AllReduce/memcpy | AllToAll/memcpy |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  }
  for (int64_t bytes = 1 << 10; bytes <= (int64_t{64} << 20); bytes *= 4) {
    const int64_t n = bytes / 4 / w * w;
    at::Tensor buf = at::full({n}, 1.0f);
    const double ar = TimePerCall(&c, [&] { c.AllReduce(buf, ReduceOp::kSum); });
    const std::vector<int64_t> splits(w, n / w);
    const double aa = TimePerCall(&c, [&] { c.AllToAll(buf, splits, splits); });
    if (c.rank() == 0) {
      const double mc = MemcpyGBs(bytes);
      const double ar_bw = bytes / ar * 2.0 * (w - 1) / w / 1e9;
      const double aa_bw = bytes / aa * (w - 1.0) / w / 1e9;
      const std::string size = bytes < (1 << 20) ? std::to_string(bytes >> 10) + " KiB"
                                                 : std::to_string(bytes >> 20) + " MiB";
      std::printf("| %s | %d | %s | %.3f | %.2f | %.3f | %.2f | %.2f | %.2f | %.2f |\n", c.backend().c_str(), w,
                  size.c_str(), ar * 1e3, ar_bw, aa * 1e3, aa_bw, mc, ar_bw / mc, aa_bw / mc);
      std::fflush(stdout);
    }
  }
}

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) {
  std::string backend = "inprocess";
  int world = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--backend") == 0) backend = argv[i + 1];
    if (std::strcmp(argv[i], "--world") == 0) world = std::atoi(argv[i + 1]);
  }
  if (backend == "inprocess") {
    shardrec::RunRanks(world, [](shardrec::Communicator& c) { shardrec::Run(c); });
  } else {
    auto env = shardrec::DetectLaunchEnv();
    auto comm = shardrec::CreateCommunicator(backend, "cpu", env, {});
    shardrec::Run(*comm);
  }
  return 0;
}
