// Two ranks under mpiexec train the same model as one in-process rank on the same global batches.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/mpi_test_main.h"

#include "distributed/inprocess.h"
#include "distributed/mpi.h"
#include "io/synth.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"
#include "train/trainer.h"
#include "train/evaluate_run.h"

namespace shardrec {
namespace {

Communicator* g_comm = nullptr;

TEST(MpiInvariance, TwoProcessesEqualOneRank) {
  // Rank 0 makes the data and the scratch directory; everyone uses them.
  static testing::TempDir* dir = nullptr;
  std::string base;
  if (g_comm->rank() == 0) {
    dir = new testing::TempDir();
    SynthOptions so;
    so.users = 400;
    so.items = 150;
    so.events = 6000;
    GenerateSynthetic(dir->File("s.h5"), so);
    base = dir->path();
  }
  base = BroadcastString(*g_comm, base, 0);
  for (const std::string loss : {"full", "sampled"}) {
    SCOPED_TRACE(loss);
    TrainResult two = Train(testing::InvarianceOptions(base + "/s.h5", base + "/mpi-" + loss, loss), *g_comm);
    if (g_comm->rank() == 0) {
      TrainResult one;
      RunRanks(1, [&](Communicator& c) {
        one = Train(testing::InvarianceOptions(base + "/s.h5", base + "/one-" + loss, loss), c);
      });
      testing::ExpectSameTraining(one, two, base + "/one-" + loss + "/model", base + "/mpi-" + loss + "/model");
    }
    g_comm->Barrier();
  }
  // Evaluation with the catalogue sharded over the two processes (each holds half the item
  // vectors) equals the whole catalogue scored on one in-process rank.
  EvalOptions e;
  e.data = base + "/s.h5";
  e.run_dir = base + "/mpi-full";
  e.model = testing::InvarianceOptions(e.data, e.run_dir, "full").model;
  e.scoring = EvalScoring::kSharded;
  const auto sharded = Evaluate(e, *g_comm);
  if (g_comm->rank() == 0) {
    std::map<std::string, double> whole;
    e.scoring = EvalScoring::kReplicated;
    RunRanks(1, [&](Communicator& c) { whole = Evaluate(e, c); });
    ASSERT_EQ(whole.size(), sharded.size());
    EXPECT_GT(whole.at("hr@50"), 0);
    for (const auto& [k, v] : whole) EXPECT_NEAR(sharded.at(k), v, 1e-9 * std::max(1.0, std::abs(v))) << k;
  }
  g_comm->Barrier();
  if (g_comm->rank() == 0) delete dir;
}

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) { return shardrec::testing::MpiTestMain(argc, argv, &shardrec::g_comm, 300); }
