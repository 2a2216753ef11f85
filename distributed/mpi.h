// MPI backend (Open MPI): CPU tensors. Every collective is a non-blocking MPI call polled against
// the deadline; on timeout the rank prints one message and aborts the job (MPI_Abort), because a
// pending MPI collective cannot be cancelled. A rank terminated by the launcher (mpirun kills the
// job when a peer dies) prints which collective it was in before exiting.
#pragma once

#include <memory>

#include "distributed/communicator.h"

namespace shardrec {

// Initialises MPI on first use (MPI_THREAD_FUNNELED) and finalises it at exit. Throws CommError
// if MPI cannot start.
std::unique_ptr<Communicator> CreateMpiCommunicator(const CommOptions& options);

// True once MPI was initialised in this process (and not yet finalised).
bool MpiActive();

// Ends the whole job: MPI_Abort when MPI is active with more than one rank, else std::exit.
[[noreturn]] void AbortJob(int exit_code);

}  // namespace shardrec
