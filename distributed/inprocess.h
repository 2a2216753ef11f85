// In-process backend: N ranks are N threads of one process sharing memory. The default for unit
// tests; it checks more than a real backend can afford (matching operations and shapes across
// ranks) and names the exact ranks that failed to arrive.
#pragma once

#include <functional>
#include <memory>

#include "distributed/communicator.h"

namespace shardrec {

class InProcessGroup {
 public:
  InProcessGroup(int world_size, CommOptions options);
  ~InProcessGroup();
  int world_size() const;
  // The communicator of one rank; call once per rank, use from that rank's thread only.
  std::unique_ptr<Communicator> Rank(int rank);
  // Marks a rank as failed: every rank waiting in a collective (now or later) gets a CommError
  // naming it and `reason`. Thread-safe.
  void Abort(int rank, const std::string& reason);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// Runs fn(communicator) on world_size threads (one per rank) and joins them. If any rank throws,
// the group is aborted (so no other rank waits for it) and the first exception is rethrown here.
void RunRanks(int world_size, const std::function<void(Communicator&)>& fn,
              CommOptions options = {});

}  // namespace shardrec
