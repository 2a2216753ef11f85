#include "distributed/factory.h"

#include <gtest/gtest.h>

#include <ATen/ops/ones.h>

#include <map>

#include "tests/test_util.h"

namespace shardrec {
namespace {

EnvLookup Fake(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(LaunchEnv, SingleProcessWhenNothingIsSet) {
  LaunchEnv e = DetectLaunchEnv(Fake({}));
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.launcher, "none");
}

TEST(LaunchEnv, OpenMpi) {
  LaunchEnv e = DetectLaunchEnv(Fake({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                                      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  EXPECT_EQ(e.launcher, "openmpi");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
}

TEST(LaunchEnv, SlurmWithTasksPerNodeString) {
  LaunchEnv e = DetectLaunchEnv(Fake({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"},
                                      {"SLURM_TASKS_PER_NODE", "4(x2)"}, {"SLURM_JOB_ID", "123"}}));
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world_size, 4);
}

TEST(LaunchEnv, SlurmAllocationWithoutStepIsSingleProcess) {
  // sbatch sets SLURM_JOB_ID but srun sets SLURM_PROCID/NTASKS: a bare batch script is one process.
  EXPECT_EQ(DetectLaunchEnv(Fake({{"SLURM_JOB_ID", "1"}, {"SLURM_NTASKS", "8"}})).world_size, 1);
}

TEST(LaunchEnv, OpenMpiWinsOverSlurmUnderMpirunInsideAnAllocation) {
  LaunchEnv e = DetectLaunchEnv(Fake({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"},
                                      {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}}));
  EXPECT_EQ(e.launcher, "openmpi");
  EXPECT_EQ(e.rank, 1);
}

TEST(LaunchEnv, Pmi) {
  LaunchEnv e = DetectLaunchEnv(Fake({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}}));
  EXPECT_EQ(e.launcher, "pmi");
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world_size, 3);
}

TEST(LaunchEnv, MalformedValuesNameTheVariable) {
  testing::ExpectUserError([] { DetectLaunchEnv(Fake({{"SLURM_PROCID", "x"}, {"SLURM_NTASKS", "2"}})); },
                           {"SLURM_PROCID", "'x'"});
  testing::ExpectUserError([] { DetectLaunchEnv(Fake({{"PMI_RANK", "3"}, {"PMI_SIZE", "3"}})); },
                           {"rank 3", "world size 3"});
  testing::ExpectUserError([] { DetectLaunchEnv(Fake({{"OMPI_COMM_WORLD_SIZE", "2"}})); },
                           {"OMPI_COMM_WORLD_RANK"});
}

TEST(Factory, BackendsAndMistakes) {
  LaunchEnv one;
  auto c = CreateCommunicator("auto", "cpu", one, {});
  EXPECT_EQ(c->backend(), "inprocess");
  EXPECT_EQ(c->world_size(), 1);
  at::Tensor t = at::ones({2});
  c->AllReduce(t, ReduceOp::kSum);
  LaunchEnv two;
  two.world_size = 2;
  testing::ExpectUserError([&] { CreateCommunicator("inprocess", "cpu", two, {}); }, {"--backend inprocess"});
  testing::ExpectUserError([&] { CreateCommunicator("gloo", "cpu", one, {}); }, {"--backend", "'gloo'"});
  testing::ExpectUserError([&] { CreateCommunicator("mpi", "cuda", two, {}); }, {"--backend mpi"});
  testing::ExpectUserError([&] { CreateCommunicator("auto", "tpu", one, {}); }, {"--device"});
}

}  // namespace
}  // namespace shardrec
