// The factory that picks a communicator backend for this process (in-process, MPI or NCCL).
#pragma once

#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "distributed/launch_env.h"

namespace shardrec {

// backend: "auto" (one rank: in-process group of 1; several: "nccl" when device is "cuda",
// else "mpi"), "inprocess" (one rank only), "mpi" or "nccl". device: "cpu" or "cuda" (NCCL uses
// GPU local_rank). Throws UserError for an unknown or unavailable backend.
std::unique_ptr<Communicator> CreateCommunicator(const std::string& backend, const std::string& device,
                                                 const LaunchEnv& env, const CommOptions& options);

// Whether this build has the NCCL backend.
bool HaveNccl();

}  // namespace shardrec
