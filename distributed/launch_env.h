// Where this process sits in the job, read from the launcher's environment
// (distributed/factory.h picks the communicator from it).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "distributed/communicator.h"

namespace shardrec {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // rank within the node: picks the GPU
  int local_world_size = 1;
  std::string launcher = "none";  // "openmpi", "slurm", "pmi", "none"
};

// Reads, in order: Open MPI (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE), SLURM
// (SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID/SLURM_NTASKS_PER_NODE), PMI (PMI_RANK/PMI_SIZE,
// MPI_LOCALRANKID/MPI_LOCALNRANKS); a single process when none is set. `getenv` is injectable
// for tests. Malformed or inconsistent values are a UserError naming the variable.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
LaunchEnv DetectLaunchEnv(const EnvLookup& getenv);
LaunchEnv DetectLaunchEnv();  // from the process environment

}  // namespace shardrec
