// The sharded-vs-unsharded oracle over MPI (ctest runs it with 2 ranks).
#include <gtest/gtest.h>

#include "distributed/mpi.h"
#include "tests/sharding/oracle.h"

namespace shardrec {
namespace {

Communicator* g_comm = nullptr;

class MpiOracle : public ::testing::TestWithParam<testing::PlanKind> {};

TEST_P(MpiOracle, ShardedEqualsUnsharded) { testing::RunOracle(*g_comm, GetParam(), 4); }

INSTANTIATE_TEST_SUITE_P(Plans, MpiOracle,
                         ::testing::Values(testing::PlanKind::kTableWise, testing::PlanKind::kRowWise,
                                           testing::PlanKind::kColumnWise, testing::PlanKind::kDataParallel,
                                           testing::PlanKind::kMixed, testing::PlanKind::kPlanner),
                         [](const auto& info) { return std::string(testing::PlanKindName(info.param)); });

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  shardrec::CommOptions options;
  options.timeout = std::chrono::seconds(120);
  auto comm = shardrec::CreateMpiCommunicator(options);
  shardrec::g_comm = comm.get();
  if (comm->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  at::Tensor any = at::full({1}, rc, at::kInt);
  comm->AllReduce(any, shardrec::ReduceOp::kMax);
  return any.item<int>();
}
