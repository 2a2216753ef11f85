#include "common/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <thread>
#include <fstream>
#include <sstream>
#include <vector>

#include <glog/logging.h>

#include "common/crc32c.h"
#include "common/error.h"

namespace shardrec {
// POSIX calls only: LibTorch's shared libraries export their own std::filesystem symbols, which
// interpose on ours at run time (remove_all crashed that way).

namespace {
std::atomic<int> g_temp_counter{0};

std::string ParentDir(const std::string& path) { return Dirname(path); }
}  // namespace

AtomicOutput::AtomicOutput(std::string final_path) : final_path_(std::move(final_path)) {
  temp_path_ = final_path_ + ".tmp-" + std::to_string(::getpid()) + "-" +
               std::to_string(g_temp_counter.fetch_add(1));
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) RemoveAll(temp_path_);
}

FileWriter::FileWriter(std::string final_path) : out_(std::move(final_path)) {
  fd_ = ::open(out_.temp_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) Fail("cannot write ", out_.final_path(), ": ", std::strerror(errno));
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::Append(const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Fail("cannot write ", out_.final_path(), ": ", n < 0 ? std::strerror(errno) : "nothing written");
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void FileWriter::Commit() {
  if (::fsync(fd_) != 0) Fail("cannot write ", out_.final_path(), ": ", std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) Fail("cannot write ", out_.final_path(), ": ", std::strerror(errno));
  out_.Commit();
}

void WriteFileAtomically(const std::string& path, const std::string& contents) {
  FileWriter out(path);
  out.Append(contents);
  out.Commit();
}

void AtomicOutput::Commit() {
  if (!PathExists(temp_path_)) Fail("nothing was written to ", temp_path_, " for ", final_path_);
  if (IsDirectory(temp_path_)) {
    for (const auto& name : ListDirectory(temp_path_)) {
      const std::string f = temp_path_ + "/" + name;
      if (!IsDirectory(f)) SyncPath(f);
    }
  }
  SyncPath(temp_path_);
  if (std::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    Fail("cannot publish ", final_path_, ": rename from ", temp_path_, " failed: ",
         std::strerror(errno));
  }
  committed_ = true;
  // Published: the file's bytes were synced before the rename; the directory entry's sync is best
  // effort (throwing now would report a failure for a file that is in place).
  const int fd = ::open(ParentDir(final_path_).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> ListDirectory(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) Fail(path, ": cannot list directory: ", std::strerror(errno));
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string Dirname(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string Basename(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) Fail(path, ": ", std::strerror(errno));
  return buf;
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void CheckRegularFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) Fail(path, ": cannot open: ", std::strerror(errno));
  if (S_ISDIR(st.st_mode)) Fail(path, ": is a directory, expected a file");
  if (!S_ISREG(st.st_mode)) {
    Fail(path, ": is not a regular file (", S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "a device",
         "), expected a file: an input is read from a file, whole");
  }
}

std::string ReadFileToString(const std::string& path, int64_t max_bytes) {
  CheckRegularFile(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(path, ": cannot open: ", std::strerror(errno));
  std::string out;
  std::vector<char> chunk(size_t{1} << 16);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    out.append(chunk.data(), static_cast<size_t>(in.gcount()));
    // Checked as it grows: the file may grow while it is read.
    if (static_cast<int64_t>(out.size()) > max_bytes) Fail(path, ": larger than ", max_bytes, " bytes, the most it may hold");
  }
  if (in.bad()) Fail(path, ": read error");
  return out;
}

void MakeDirs(const std::string& path) {
  if (path.empty() || IsDirectory(path)) return;
  if (PathExists(path)) Fail(path, ": exists and is not a directory");
  const std::string parent = Dirname(path);
  if (parent != path) MakeDirs(parent);
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    Fail(path, ": cannot create directory: ", std::strerror(errno));
  }
}

DirectoryLock::DirectoryLock(const std::string& dir, const std::string& what, double wait_seconds) {
  MakeDirs(dir);
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) Fail(path, ": cannot open the lock file: ", std::strerror(errno));
  // flock locks belong to the open file description: a second open in this process conflicts too.
  const double wait = wait_seconds > 0 ? std::min(wait_seconds, 1e6) : 0.0;  // NaN: no wait
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                              std::chrono::duration<double>(wait));
  bool logged = false;
  int got = 0;
  while ((got = ::flock(fd_, LOCK_EX | LOCK_NB)) != 0 && errno == EWOULDBLOCK && std::chrono::steady_clock::now() < deadline) {
    if (!logged) LOG(INFO) << dir << " is in use (lock " << path << "); waiting up to " << wait_seconds << " s";
    logged = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (got != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) Fail(path, ": cannot lock: ", std::strerror(err));
    std::string holder;
    std::ifstream in(path);
    std::getline(in, holder);
    std::istringstream fields(holder);
    std::string pid, host, work;
    fields >> pid >> host;
    std::getline(fields >> std::ws, work);  // the holder's own `what` (absent in older lock files)
    Fail(dir, " is in use by ", work.empty() ? what : work, " (process ", pid.empty() ? "?" : pid, " on ", host.empty() ? "?" : host,
         ", lock ", path, "); wait for it to end or use another directory");
  }
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "?");
  const std::string line = std::to_string(::getpid()) + " " + host + " " + what + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size())) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    Fail(path, ": cannot write the lock file: ", std::strerror(err));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);
}

void RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    for (const auto& name : ListDirectory(path)) RemoveAll(path + "/" + name);
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

void SyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(path, ": cannot open for fsync: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) Fail(path, ": fsync failed: ", std::strerror(err));
}

FileDigest DigestFile(const std::string& path) {
  // Block by block: a checkpoint's table file can be most of the memory a rank has.
  if (IsDirectory(path)) Fail(path, ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(path, ": cannot open: ", std::strerror(errno));
  std::vector<char> block(size_t{4} << 20);
  FileDigest d{0, 0};
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const std::streamsize n = in.gcount();
    d.bytes += n;
    d.crc32c = Crc32cExtend(d.crc32c, block.data(), static_cast<size_t>(n));
  }
  if (in.bad()) Fail(path, ": read error");
  return d;
}

void VerifyFileDigest(const std::string& path, const FileDigest& expected) {
  if (!PathExists(path)) Fail(path, ": missing (listed in the manifest)");
  const FileDigest got = DigestFile(path);
  if (got.bytes != expected.bytes) Fail(path, ": ", got.bytes, " bytes, the manifest says ", expected.bytes, " (truncated?)");
  if (got.crc32c != expected.crc32c) Fail(path, ": checksum mismatch (the file is damaged)");
}

}  // namespace shardrec
