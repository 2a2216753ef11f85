// The sharded-vs-unsharded oracle over MPI (ctest runs it with 2 ranks).
#include <gtest/gtest.h>

#include "tests/mpi_test_main.h"

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

int main(int argc, char** argv) { return shardrec::testing::MpiTestMain(argc, argv, &shardrec::g_comm, 120); }
