// Start of every distributed command: where this process is (launcher environment), which
// communicator it uses (--backend, --device, --comm-timeout), announced once by rank 0.
#pragma once

#include <memory>

#include "distributed/communicator.h"
#include "distributed/factory.h"

namespace shardrec::cli {

struct Job {
  LaunchEnv env;
  std::unique_ptr<Communicator> comm;
  bool is_root() const { return comm->rank() == 0; }
};

// Collective when world_size > 1. Prints "rank 0 of N, backend ..., device ..." on rank 0.
Job StartJob();

// The flags StartJob reads, for Command::flags.
inline const std::vector<std::string> kJobFlags = {"backend", "device", "comm_timeout"};

}  // namespace shardrec::cli
