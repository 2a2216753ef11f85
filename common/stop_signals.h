// Stop requests by signal. SIGTERM (SLURM's and mpirun's), SIGINT (Ctrl-C) and SIGUSR1 (which
// mpirun forwards to every rank at once; launch/mpirun.sh turns its own SIGTERM/SIGINT into it) ask
// a long command to stop at its next safe point; a second such signal ends the process at once.
#pragma once

#include <atomic>

namespace shardrec {

// Installs the handlers. `announce`: say on stderr that the stop was requested (rank 0).
void InstallStopHandlers(bool announce);
// 0 until a stop signal arrived, then its number. Async-signal-safe to set, safe to read anywhere.
const std::atomic<int>& StopSignal();

// The exit status of a command that stopped early on a signal after saving its state.
inline constexpr int kExitStopped = 75;

}  // namespace shardrec
