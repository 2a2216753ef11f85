// A small MPI program that misbehaves on purpose, for the failure tests:
//   --mode kill    rank 1 SIGKILLs itself between two collectives (the others are in AllReduce)
//   --mode hang    rank 1 stops answering (sleeps) while the others wait in AllReduce
//   --mode uneven  rank 1 runs out of data at step 3 while the others still have batches
// Usage: mpiexec -np 3 comm_fault_helper --mode kill --timeout-ms 3000
#include <ATen/ops/ones.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "distributed/mpi.h"

int main(int argc, char** argv) {
  std::string mode;
  int timeout_ms = 3000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--mode") == 0) mode = argv[i + 1];
    if (std::strcmp(argv[i], "--timeout-ms") == 0) timeout_ms = std::atoi(argv[i + 1]);
  }
  shardrec::CommOptions options;
  options.timeout = std::chrono::milliseconds(timeout_ms);
  auto comm = shardrec::CreateMpiCommunicator(options);
  try {
    for (int step = 0; step < 10; ++step) {
      comm->SetStep(step);
      const bool has_data = !(mode == "uneven" && comm->rank() == 1 && step >= 3);
      if (mode == "uneven" && !shardrec::AllRanksHaveData(*comm, has_data, "training")) break;
      if (step == 7 && comm->rank() == 1) {
        if (mode == "kill") ::raise(SIGKILL);
        if (mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(120));
      }
      at::Tensor g = at::ones({1024});
      comm->AllReduce(g, shardrec::ReduceOp::kSum);
    }
  } catch (const shardrec::UserError& e) {
    std::fprintf(stderr, "shardrec: error: rank %d: %s\n", comm->rank(), e.what());
    shardrec::AbortJob(2);
  }
  std::printf("rank %d finished\n", comm->rank());
  return 0;
}
