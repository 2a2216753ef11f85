// Test bodies for every collective, shared by the in-process tests (RunRanks) and the MPI tests
// (the same bodies under mpiexec). Per-rank inputs and expected outputs are written by hand as
// functions of (rank, world size); every value is a small integer, exact in every dtype.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "distributed/communicator.h"

namespace shardrec::testing {

inline at::Tensor T(const std::vector<float>& v, std::vector<int64_t> shape, at::ScalarType dtype,
                    const std::string& device = "cpu") {
  return at::tensor(v, at::TensorOptions().dtype(at::kFloat)).reshape(shape).to(dtype).to(device);
}

inline void ExpectEqual(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << what;
  EXPECT_EQ(got.sizes(), want.sizes()) << what;
  if (got.sizes() == want.sizes()) {
    EXPECT_TRUE(at::equal(got.cpu(), want.cpu())) << what << "\ngot\n" << got << "\nwant\n" << want;
  }
}

inline void AllReduceBody(Communicator& c, at::ScalarType dtype) {
  const int r = c.rank(), w = c.world_size();
  const float s = w * (w + 1) / 2.0f;  // sum over ranks of (r + 1)
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
    if (op == ReduceOp::kAvg && !at::isFloatingType(dtype)) continue;
    at::Tensor t = T({1.f * (r + 1), 2.f * (r + 1), 3.f * (r + 1), 0.f}, {2, 2}, dtype, c.device());
    c.AllReduce(t, op);
    std::vector<float> want;
    if (op == ReduceOp::kSum) want = {s, 2 * s, 3 * s, 0};
    if (op == ReduceOp::kMax) want = {1.f * w, 2.f * w, 3.f * w, 0};
    if (op == ReduceOp::kAvg) want = {s / w, 2 * s / w, 3 * s / w, 0};
    ExpectEqual(t, T(want, {2, 2}, dtype, c.device()), std::string("AllReduce ") + ReduceOpName(op));
  }
  at::Tensor empty = T({}, {0}, dtype, c.device());
  c.AllReduce(empty, ReduceOp::kSum);  // zero-length is legal
  EXPECT_EQ(empty.numel(), 0);
}

inline void BroadcastBody(Communicator& c, at::ScalarType dtype) {
  const int r = c.rank(), w = c.world_size();
  for (int root : {0, w - 1}) {
    at::Tensor t = T({10.f * r, 10.f * r + 1, 10.f * r + 2}, {3}, dtype, c.device());
    c.Broadcast(t, root);
    ExpectEqual(t, T({10.f * root, 10.f * root + 1, 10.f * root + 2}, {3}, dtype, c.device()), "Broadcast");
  }
}

inline void AllGatherBody(Communicator& c, at::ScalarType dtype) {
  const int r = c.rank(), w = c.world_size();
  at::Tensor out = c.AllGather(T({1.f * r, 100.f + r}, {1, 2}, dtype, c.device()));
  std::vector<float> want;
  for (int k = 0; k < w; ++k) {
    want.push_back(k);
    want.push_back(100.f + k);
  }
  ExpectEqual(out, T(want, {w, 2}, dtype, c.device()), "AllGather");
}

// Rank s sends (s + d) % 3 rows to rank d (so some splits are zero); row k to d holds
// [s*50 + d*10 + k, -(s*50 + d*10 + k)] (magnitudes < 256: exact in bfloat16).
inline int64_t Rows(int s, int d) { return (s + d) % 3; }
inline float Val(int s, int d, int k) { return s * 50.f + d * 10.f + k; }

inline void AllToAllBody(Communicator& c, at::ScalarType dtype) {
  const int me = c.rank(), w = c.world_size();
  std::vector<float> send;
  std::vector<int64_t> send_splits;
  for (int d = 0; d < w; ++d) {
    send_splits.push_back(Rows(me, d));
    for (int k = 0; k < Rows(me, d); ++k) {
      send.push_back(Val(me, d, k));
      send.push_back(-Val(me, d, k));
    }
  }
  std::vector<float> want;
  std::vector<int64_t> want_splits;
  for (int s = 0; s < w; ++s) {
    want_splits.push_back(Rows(s, me));
    for (int k = 0; k < Rows(s, me); ++k) {
      want.push_back(Val(s, me, k));
      want.push_back(-Val(s, me, k));
    }
  }
  const int64_t n_send = static_cast<int64_t>(send.size()) / 2, n_recv = static_cast<int64_t>(want.size()) / 2;
  at::Tensor input = T(send, {n_send, 2}, dtype, c.device());
  for (bool known : {false, true}) {
    AllToAllResult res = known ? c.AllToAll(input, send_splits, want_splits) : c.AllToAll(input, send_splits);
    EXPECT_EQ(res.recv_splits, want_splits);
    ExpectEqual(res.output, T(want, {n_recv, 2}, dtype, c.device()),
                std::string("AllToAll, receive splits ") + (known ? "given" : "exchanged"));
  }
  // A rank with nothing to send at all.
  std::vector<int64_t> zeros(w, 0);
  AllToAllResult none = c.AllToAll(T({}, {0, 2}, dtype, c.device()), zeros);
  EXPECT_EQ(none.output.size(0), 0);
  EXPECT_EQ(none.recv_splits, zeros);
}

// input [w*2, 2]: row i of rank r = [r + i, 2 * (r + i)]; this rank gets rows 2*me, 2*me + 1.
inline void ReduceScatterBody(Communicator& c, at::ScalarType dtype) {
  const int me = c.rank(), w = c.world_size();
  std::vector<float> in;
  for (int i = 0; i < 2 * w; ++i) {
    in.push_back(me + i);
    in.push_back(2.f * (me + i));
  }
  const float base = w * (w - 1) / 2.0f;  // sum of r over ranks
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
    at::Tensor out = c.ReduceScatter(T(in, {2 * w, 2}, dtype, c.device()), op);
    std::vector<float> want;
    for (int i = 2 * me; i < 2 * me + 2; ++i) {
      const float v = op == ReduceOp::kSum ? base + w * i : (w - 1) + i;
      want.push_back(v);
      want.push_back(2 * v);
    }
    ExpectEqual(out, T(want, {2, 2}, dtype, c.device()), std::string("ReduceScatter ") + ReduceOpName(op));
  }
}

inline void AllBodies(Communicator& c, at::ScalarType dtype) {
  AllReduceBody(c, dtype);
  BroadcastBody(c, dtype);
  AllGatherBody(c, dtype);
  AllToAllBody(c, dtype);
  ReduceScatterBody(c, dtype);
  c.Barrier();
}

inline const std::vector<at::ScalarType>& AllDtypes() {
  static const std::vector<at::ScalarType> d = {at::kFloat, at::kBFloat16, at::kInt, at::kLong};
  return d;
}

}  // namespace shardrec::testing
