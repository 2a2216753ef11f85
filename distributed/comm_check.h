// `shardrec comm check`: every collective verified across the job's ranks with known values, and
// the bus bandwidth of two of them at one message size (nccl-tests' definition; bench/comm_bench
// sweeps sizes). The first thing to run on a new cluster.
#pragma once

#include <cstdint>

#include "distributed/communicator.h"

namespace shardrec {

// COLLECTIVE. AllReduce, Broadcast, AllGather, AllToAll, ReduceScatter and Barrier on known values;
// a wrong answer is a UserError naming the collective and the rank.
void CheckCollectives(Communicator& comm);

struct CollectiveTiming {
  double bytes = 0;                    // per rank
  double allreduce_seconds = 0, alltoall_seconds = 0;
  double allreduce_bus_gbps = 0, alltoall_bus_gbps = 0;  // GB/s = 1e9 bytes/s
};
// COLLECTIVE. Times AllReduce and AllToAll of about `bytes` per rank (mean of 10 after a warm-up).
CollectiveTiming TimeCollectives(Communicator& comm, int64_t bytes);

}  // namespace shardrec
