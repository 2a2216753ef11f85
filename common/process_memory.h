// The process's resident memory, as the kernel counts it (Linux /proc/self/status: VmRSS, VmHWM).
#pragma once

#include <cstdint>

namespace shardrec {

struct ProcessMemory {
  int64_t resident_bytes = 0;  // now
  int64_t peak_bytes = 0;      // the most since the process started
};

// Zeros where the system does not say (the peak then comes from getrusage).
ProcessMemory ReadProcessMemory();

}  // namespace shardrec
