// NCCL backend: CUDA tensors of the rank's GPU (local rank), collectives on the backend's own CUDA
// stream ordered after the caller's current stream. Bootstrapped over MPI: rank 0 creates the NCCL
// unique id and broadcasts it. Each call waits for completion while polling NCCL's asynchronous
// error state against the deadline; on error or timeout the communicator is aborted (ncclCommAbort),
// one message is printed and the job ends, so no rank hangs.
#pragma once

#include <memory>

#include "distributed/communicator.h"
#include "distributed/launch_env.h"

namespace shardrec {

bool NcclCompiled();
// Throws UserError when NCCL or a GPU is unavailable.
std::unique_ptr<Communicator> CreateNcclCommunicator(const LaunchEnv& env, const CommOptions& options);
// Number of CUDA devices visible (0 without CUDA).
int CudaDeviceCount();

}  // namespace shardrec
