// A peer that dies, hangs or runs out of work ends every rank under mpiexec with a non-zero exit
// and a message naming the operation and step, well within the deadline.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/test_util.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

struct Outcome {
  testing::CommandResult result;
  double seconds;
};

Outcome RunHelper(const std::string& mode, int timeout_ms) {
  const auto start = Clock::now();
  auto r = testing::RunCommand(std::string(SHARDREC_MPIEXEC) + " -np 3 " + SHARDREC_FAULT_HELPER +
                               " --mode " + mode + " --timeout-ms " + std::to_string(timeout_ms));
  return {r, std::chrono::duration<double>(Clock::now() - start).count()};
}

TEST(MpiFailures, KilledPeerEndsTheJob) {
  Outcome o = RunHelper("kill", 20000);
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 20.0) << "the survivors must not wait for the deadline";
  // mpirun names the dead peer; each survivor names the operation and step it was in.
  EXPECT_NE(o.result.output.find("rank 1"), std::string::npos) << o.result.output;
  EXPECT_NE(o.result.output.find("AllReduce #8 (step 7)"), std::string::npos) << o.result.output;
  EXPECT_EQ(o.result.output.find("finished"), std::string::npos) << o.result.output;
}

TEST(MpiFailures, SilentPeerTimesOut) {
  Outcome o = RunHelper("hang", 2000);
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 30.0) << o.result.output;
  EXPECT_NE(o.result.output.find("AllReduce #8 (step 7) did not complete within 2.0"), std::string::npos)
      << o.result.output;
}

TEST(MpiFailures, UnevenWorkIsReportedNotDeadlocked) {
  Outcome o = RunHelper("uneven", 20000);
  EXPECT_NE(o.result.exit_code, 0) << o.result.output;
  EXPECT_LT(o.seconds, 20.0);
  EXPECT_NE(o.result.output.find("uneven work in training at step 3: rank 1 ran out of data"),
            std::string::npos) << o.result.output;
}

}  // namespace
}  // namespace shardrec
