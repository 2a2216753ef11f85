#include "distributed/comm_check.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "common/error.h"

namespace shardrec {
namespace {

void Expect(bool ok, const char* what, int rank) {
  if (!ok) Fail("comm check: ", what, " returned wrong values on rank ", rank);
}

}  // namespace

void CheckCollectives(Communicator& c) {
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
}

CollectiveTiming TimeCollectives(Communicator& c, int64_t bytes) {
  if (bytes < 1 || bytes > (int64_t{1} << 34)) Fail("--bytes: expected 1 to 2^34 (16 GiB), got ", bytes);
  const int w = c.world_size();
  const int64_t n = std::max<int64_t>(w, bytes / 4 / w * w);
  at::Tensor big = at::full({n}, 1.0, at::TensorOptions().dtype(at::kFloat).device(c.device()));
  const int iters = 10;
  auto time_it = [&](auto&& fn) {
    fn();
    c.Barrier();
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) fn();
    c.Barrier();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
  };
  CollectiveTiming r;
  r.bytes = n * 4.0;
  r.allreduce_seconds = time_it([&] { c.AllReduce(big, ReduceOp::kSum); });
  r.alltoall_seconds = time_it([&] { c.AllToAll(big, std::vector<int64_t>(w, n / w), std::vector<int64_t>(w, n / w)); });
  r.allreduce_bus_gbps = r.bytes / r.allreduce_seconds * 2.0 * (w - 1) / w / 1e9;
  r.alltoall_bus_gbps = r.bytes / r.alltoall_seconds * (w - 1) / w / 1e9;
  return r;
}

}  // namespace shardrec
