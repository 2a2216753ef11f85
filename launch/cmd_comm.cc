// shardrec comm check: verifies every collective across the job's ranks with known values and
// prints one bandwidth line per collective (nccl-tests bus bandwidth). The first thing to run on a
// new cluster: mpirun -np 8 shardrec comm check --device cuda
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>

#include <chrono>
#include <cstdio>

#include "common/error.h"
#include "launch/cli.h"
#include "launch/flags.h"
#include "launch/job.h"

namespace shardrec::cli {
namespace {

void Expect(bool ok, const char* what, int rank) {
  if (!ok) Fail("comm check: ", what, " returned wrong values on rank ", rank);
}

int RunCommCheck(const std::vector<std::string>&) {
  Job job = StartJob();
  Communicator& c = *job.comm;
  const int w = c.world_size(), me = c.rank();
  const auto opt = at::TensorOptions().dtype(at::kFloat).device(c.device());

  at::Tensor t = at::full({4}, me + 1.0, opt);
  c.AllReduce(t, ReduceOp::kSum);
  Expect(at::equal(t.cpu(), at::full({4}, w * (w + 1) / 2.0)), "AllReduce", me);

  at::Tensor b = at::full({3}, static_cast<double>(me), opt);
  c.Broadcast(b, w - 1);
  Expect(at::equal(b.cpu(), at::full({3}, w - 1.0)), "Broadcast", me);

  at::Tensor g = c.AllGather(at::full({1}, static_cast<double>(me), opt));
  Expect(at::equal(g.cpu(), at::arange(w, at::kFloat)), "AllGather", me);

  at::Tensor send = at::arange(w, at::kFloat).add(me * 1000.0).to(c.device());  // row d goes to d
  AllToAllResult a2a = c.AllToAll(send, std::vector<int64_t>(w, 1));
  Expect(at::equal(a2a.output.cpu(), at::arange(w, at::kFloat).mul(1000.0).add(me)), "AllToAll", me);

  at::Tensor rs = c.ReduceScatter(at::full({w * 2}, 1.0, opt), ReduceOp::kSum);
  Expect(at::equal(rs.cpu(), at::full({2}, static_cast<double>(w))), "ReduceScatter", me);
  c.Barrier();
  if (job.is_root()) std::printf("collectives: AllReduce Broadcast AllGather AllToAll ReduceScatter Barrier ok\n");

  // Bandwidth at one size (bench/comm_bench sweeps sizes).
  const int64_t n = std::max<int64_t>(w, FLAGS_bytes / 4 / w * w);
  at::Tensor big = at::full({n}, 1.0, opt);
  const int iters = 10;
  auto time_it = [&](auto&& fn) {
    fn();
    c.Barrier();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    c.Barrier();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
  };
  const double ar = time_it([&] { c.AllReduce(big, ReduceOp::kSum); });
  const double aa = time_it([&] { c.AllToAll(big, std::vector<int64_t>(w, n / w), std::vector<int64_t>(w, n / w)); });
  if (job.is_root()) {
    const double bytes = n * 4.0;
    std::printf("AllReduce %.1f MiB: %.3f ms, bus bandwidth %.2f GB/s\n", bytes / (1 << 20), ar * 1e3,
                bytes / ar * 2.0 * (w - 1) / w / 1e9);
    std::printf("AllToAll  %.1f MiB: %.3f ms, bus bandwidth %.2f GB/s\n", bytes / (1 << 20), aa * 1e3,
                bytes / aa * (w - 1) / w / 1e9);
  }
  return 0;
}

std::vector<std::string> CheckFlags() {
  std::vector<std::string> f = kJobFlags;
  f.push_back("bytes");
  return f;
}

Registrar comm_check_cmd({
    .name = "comm check",
    .summary = "verify every collective across the job's ranks and print their bandwidth",
    .usage = "launch/mpirun.sh -np N shardrec comm check [--device cuda --bytes B]",
    .flags = CheckFlags(),
    .positional = 0,
    .run = RunCommCheck,
});

}  // namespace
}  // namespace shardrec::cli
