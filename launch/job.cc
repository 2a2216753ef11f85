#include "launch/job.h"

#include <cstdio>

#include "common/error.h"
#include "launch/flags.h"

namespace shardrec::cli {

Job StartJob() {
  Job job;
  job.env = DetectLaunchEnv();
  if (!(FLAGS_comm_timeout > 0)) Fail("--comm-timeout: must be > 0 seconds, got ", FLAGS_comm_timeout);
  CommOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(FLAGS_comm_timeout * 1000));
  job.comm = CreateCommunicator(FLAGS_backend, FLAGS_device, job.env, options);
  if (job.is_root()) {
    std::printf("shardrec: rank 0 of %d, backend %s, device %s, launcher %s (local rank %d of %d), "
                "comm timeout %.0f s\n",
                job.comm->world_size(), job.comm->backend().c_str(), job.comm->device().c_str(),
                job.env.launcher.c_str(), job.env.local_rank, job.env.local_world_size,
                FLAGS_comm_timeout);
    std::fflush(stdout);
  }
  return job;
}

}  // namespace shardrec::cli
