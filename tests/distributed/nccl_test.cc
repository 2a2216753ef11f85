// NCCL backend: skipped without a GPU; on a GPU machine a world-size-1 communicator runs every
// collective test body on CUDA tensors. (Multi-GPU runs go through bench/ and mpiexec.)
#include <gtest/gtest.h>

#include "distributed/launch_env.h"
#include "distributed/nccl.h"
#include "tests/distributed/collective_bodies.h"

namespace shardrec {
namespace {

TEST(Nccl, WorldSizeOneRunsEveryCollective) {
  if (!NcclCompiled()) GTEST_SKIP() << "built without CUDA/NCCL";
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible";
  LaunchEnv env;
  auto comm = CreateNcclCommunicator(env, {});
  EXPECT_EQ(comm->backend(), "nccl");
  EXPECT_EQ(comm->device(), "cuda:0");
  for (at::ScalarType dtype : testing::AllDtypes()) {
    SCOPED_TRACE(c10::toString(dtype));
    testing::AllBodies(*comm, dtype);
  }
}

TEST(Nccl, RejectsCpuTensors) {
  if (!NcclCompiled() || CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device visible";
  auto comm = CreateNcclCommunicator(LaunchEnv{}, {});
  at::Tensor t = at::ones({2});
  EXPECT_THROW(comm->AllReduce(t, ReduceOp::kSum), CommError);
}

}  // namespace
}  // namespace shardrec
