#include "common/process_memory.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace shardrec {

ProcessMemory ReadProcessMemory() {
  ProcessMemory m;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long long kb = 0;
    while (std::fgets(line, sizeof(line), f)) {
      if (std::sscanf(line, "VmRSS: %lld kB", &kb) == 1) m.resident_bytes = kb * 1024;
      if (std::sscanf(line, "VmHWM: %lld kB", &kb) == 1) m.peak_bytes = kb * 1024;
    }
    std::fclose(f);
  }
  if (m.peak_bytes == 0) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) == 0) m.peak_bytes = static_cast<int64_t>(u.ru_maxrss) * 1024;
  }
  return m;
}

void ReleaseFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace shardrec
