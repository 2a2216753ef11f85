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

// Returns the allocator's free memory to the system (glibc: malloc_trim, which also releases free
// pages inside the heap). Long loops of varying-size temporaries call it every few seconds: glibc
// raises its mmap threshold up to 32 MiB after large frees, from then on such temporaries come
// from the heap, and small long-lived blocks between them (cache blocks, writer buffers) keep the
// freed space from being reused or trimmed. Measured: a 20M-item export's user pass grew by
// 22 MB/s of free-but-resident heap until the kernel killed it; live heap stayed under 100 MB.
void ReleaseFreeMemory();

}  // namespace shardrec
