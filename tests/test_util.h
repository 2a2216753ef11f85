// Helpers shared by tests: scratch directories, files, expected errors, shared data location.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace shardrec::testing {

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteText(const std::string& path, const std::string& text);

// Runs fn, expects a UserError whose message contains every fragment.
void ExpectUserError(const std::function<void()>& fn, const std::vector<std::string>& fragments);

// ../shared/data (relative to the source tree) or "" when absent; SHARDREC_DATA overrides.
std::string SharedDataDir();

// Files directly inside `dir`.
std::vector<std::string> ListDir(const std::string& dir);

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout + stderr
};
// Runs a shell command line, capturing output.
CommandResult RunCommand(const std::string& command);
// Runs a program (no shell) with `args`, capturing output; *peak_rss_bytes gets its peak resident
// memory as the kernel counted it (wait4).
CommandResult RunProgram(const std::string& program, const std::vector<std::string>& args, int64_t* peak_rss_bytes);
// The project's source directory (configs/, tools/, ...).
std::string SourceDir();

}  // namespace shardrec::testing
