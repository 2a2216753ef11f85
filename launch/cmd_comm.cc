// shardrec comm check: verifies every collective across the job's ranks with known values and
// prints one bandwidth line per collective (distributed/comm_check.h). The first thing to run on a
// new cluster: mpirun -np 8 shardrec comm check --device cuda
#include <cstdio>

#include "distributed/comm_check.h"
#include "launch/cli.h"
#include "launch/flags.h"
#include "launch/job.h"

namespace shardrec::cli {
namespace {

int RunCommCheck(const std::vector<std::string>&) {
  Job job = StartJob();
  CheckCollectives(*job.comm);
  if (job.is_root()) std::printf("collectives: AllReduce Broadcast AllGather AllToAll ReduceScatter Barrier ok\n");
  const CollectiveTiming t = TimeCollectives(*job.comm, FLAGS_bytes);
  if (job.is_root()) {
    std::printf("AllReduce %.1f MiB: %.3f ms, bus bandwidth %.2f GB/s\n", t.bytes / (1 << 20), t.allreduce_seconds * 1e3,
                t.allreduce_bus_gbps);
    std::printf("AllToAll  %.1f MiB: %.3f ms, bus bandwidth %.2f GB/s\n", t.bytes / (1 << 20), t.alltoall_seconds * 1e3,
                t.alltoall_bus_gbps);
  }
  return 0;
}

std::vector<std::string> CheckFlags() {
  std::vector<std::string> f = kJobFlags;
  f.push_back("bytes");
  return f;
}

Registrar comm_check_cmd({
    .name = "comm check",
    .summary = "verify every collective across the job's ranks and print their bandwidth",
    .usage = "launch/mpirun.sh -np N shardrec comm check [--device cuda --bytes B]",
    .flags = CheckFlags(),
    .positional = 0,
    .run = RunCommCheck,
});

}  // namespace
}  // namespace shardrec::cli
