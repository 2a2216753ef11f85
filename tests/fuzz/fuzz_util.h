// Shared by the libFuzzer harnesses: a private scratch directory per process (on tmpfs when there
// is one) and the rule every harness checks: a UserError is the expected answer to bad input;
// anything else (another exception, a CHECK, a sanitizer report, a crash) is a finding.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/error.h"

namespace shardrec::fuzz {

// Removed at exit (libFuzzer's fork mode starts a process per job, each with its own).
inline const std::string& Scratch() {
  static const std::string dir = [] {
    std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/shardrec-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return tmpl;
  }();
  static const bool cleanup = (std::atexit([] {
                                 std::error_code ec;
                                 std::filesystem::remove_all(dir, ec);
                               }),
                               true);
  (void)cleanup;
  return dir;
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) std::abort();  // the harness's own I/O, not the code under test
}

// Empties `dir` (one level: the harnesses write no deeper).
inline void Clear(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") std::remove((dir + "/" + n).c_str());
    }
    closedir(d);
  }
}

template <typename Fn>
void ExpectOnlyUserErrors(Fn&& fn) {
  try {
    fn();
  } catch (const UserError&) {
  }
}

}  // namespace shardrec::fuzz
