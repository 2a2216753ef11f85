#include "common/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace shardrec {
namespace fs = std::filesystem;

namespace {
std::atomic<int> g_temp_counter{0};

std::string ParentDir(const std::string& path) {
  fs::path p = fs::absolute(fs::path(path)).parent_path();
  return p.empty() ? "." : p.string();
}
}  // namespace

AtomicOutput::AtomicOutput(std::string final_path) : final_path_(std::move(final_path)) {
  temp_path_ = final_path_ + ".tmp-" + std::to_string(::getpid()) + "-" +
               std::to_string(g_temp_counter.fetch_add(1));
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) RemoveAll(temp_path_);
}

void AtomicOutput::Commit() {
  if (!PathExists(temp_path_)) Fail("nothing was written to ", temp_path_, " for ", final_path_);
  if (IsDirectory(temp_path_)) {
    for (const auto& entry : fs::directory_iterator(temp_path_)) {
      if (entry.is_regular_file()) SyncPath(entry.path().string());
    }
  }
  SyncPath(temp_path_);
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    Fail("cannot publish ", final_path_, ": rename from ", temp_path_, " failed: ",
         std::strerror(errno));
  }
  committed_ = true;
  SyncPath(ParentDir(final_path_));
}

bool PathExists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

bool IsDirectory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string ReadFileToString(const std::string& path) {
  if (IsDirectory(path)) Fail(path, ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(path, ": cannot open: ", std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) Fail(path, ": read error");
  return os.str();
}

void MakeDirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) Fail(path, ": cannot create directory: ", ec.message());
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void SyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(path, ": cannot open for fsync: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) Fail(path, ": fsync failed: ", std::strerror(err));
}

}  // namespace shardrec
