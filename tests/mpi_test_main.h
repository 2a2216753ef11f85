// main() of the test binaries that run under mpiexec: every rank runs every test, only rank 0
// prints, and the process fails on every rank if any rank failed.
#pragma once

#include <ATen/ops/full.h>
#include <gtest/gtest.h>

#include "distributed/mpi.h"

namespace shardrec::testing {

// Runs all tests with `*comm` set to the MPI communicator.
inline int MpiTestMain(int argc, char** argv, Communicator** comm_out, int timeout_seconds) {
  ::testing::InitGoogleTest(&argc, argv);
  CommOptions options;
  options.timeout = std::chrono::seconds(timeout_seconds);
  auto comm = CreateMpiCommunicator(options);
  *comm_out = comm.get();
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  at::Tensor any = at::full({1}, rc, at::kInt);
  comm->AllReduce(any, ReduceOp::kMax);
  if (comm->rank() == 0 && any.item<int>() != 0 && rc == 0) std::fprintf(stderr, "a test failed on another rank\n");
  return any.item<int>();
}

}  // namespace shardrec::testing
