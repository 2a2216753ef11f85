// The collective test bodies over the MPI backend. Run under mpiexec (ctest does it with 2 and 3
// ranks); every rank runs every test, and the process fails if any rank failed.
#include <gtest/gtest.h>

#include "tests/mpi_test_main.h"

#include "distributed/mpi.h"
#include "tests/distributed/collective_bodies.h"

namespace shardrec {
namespace {

Communicator* g_comm = nullptr;

TEST(Mpi, EveryCollectiveEveryDtype) {
  for (at::ScalarType dtype : testing::AllDtypes()) {
    SCOPED_TRACE(c10::toString(dtype));
    testing::AllBodies(*g_comm, dtype);
  }
}

TEST(Mpi, LargeAllToAllAndAllReduce) {
  Communicator& c = *g_comm;
  const int w = c.world_size(), me = c.rank();
  // 1 MiB per peer: values encode (source, destination, position).
  const int64_t rows = 1 << 16;
  at::Tensor in = at::empty({rows * w, 4}, at::kFloat);
  for (int d = 0; d < w; ++d) in.narrow(0, d * rows, rows).fill_(me * 16 + d);
  AllToAllResult res = c.AllToAll(in, std::vector<int64_t>(w, rows));
  for (int s = 0; s < w; ++s) {
    EXPECT_TRUE(at::all(res.output.narrow(0, s * rows, rows) == s * 16 + me).item<bool>()) << "from " << s;
  }
  at::Tensor big = at::full({1 << 20}, static_cast<float>(me + 1));
  c.AllReduce(big, ReduceOp::kSum);
  EXPECT_TRUE(at::all(big == w * (w + 1) / 2.0f).item<bool>());
}

TEST(Mpi, RanksAgreeWithTheLauncher) {
  const char* r = std::getenv("OMPI_COMM_WORLD_RANK");
  ASSERT_NE(r, nullptr) << "run under mpiexec";
  EXPECT_EQ(std::atoi(r), g_comm->rank());
  EXPECT_EQ(g_comm->backend(), "mpi");
}

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) { return shardrec::testing::MpiTestMain(argc, argv, &shardrec::g_comm, 120); }
