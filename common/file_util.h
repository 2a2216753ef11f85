// Files: atomic publication (leveldb's CURRENT pattern) and small helpers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shardrec {

// Writes go to a temporary sibling of `final_path`; Commit() fsyncs it, renames it over
// `final_path` and fsyncs the directory, so readers see either the old file or the whole new one.
// If the object dies uncommitted (an error was thrown), the temporary is removed: no partial output.
// Works for a regular file or a directory (a directory's files are fsynced one level deep).
// Not thread-safe; one object per output.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::string final_path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  // Where to write. Same directory as final_path, name "<final>.tmp-<pid>-<n>".
  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }

  // Publishes. Throws UserError if the rename fails (e.g. the directory vanished).
  void Commit();
  bool committed() const { return committed_; }

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// A file written in full or not at all: bytes go to the AtomicOutput's temporary through checked
// write(2) calls, Commit() fsyncs, closes (checked) and renames it over the final path. Any failure
// is a UserError naming the final path and the system's reason ("No space left on device"); an
// uncommitted writer removes its temporary. Every file ShardRec publishes outside HDF5 is written
// through it (text files, manifests, FAISS indexes).
class FileWriter {
 public:
  explicit FileWriter(std::string final_path);
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  void Append(const void* data, size_t bytes);
  void Append(const std::string& text) { Append(text.data(), text.size()); }
  void Commit();
  const std::string& final_path() const { return out_.final_path(); }

 private:
  AtomicOutput out_;
  int fd_ = -1;
};

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Both paths exist and name the same file (device and inode: links and relative paths included).
bool SameFile(const std::string& a, const std::string& b);
// Names in a directory (sorted, without . and ..); throws UserError if it cannot be read.
std::vector<std::string> ListDirectory(const std::string& path);
// "a/b/c.h5" -> "a/b" ("." without a slash); "a/b/c.h5" -> "c.h5".
std::string Dirname(const std::string& path);
std::string Basename(const std::string& path);
// Absolute path with symlinks resolved; throws UserError if it does not exist.
std::string RealPath(const std::string& path);
// A path an input is read from must be a regular file: a missing one, a directory, a FIFO, a device
// (/dev/zero) or a socket is a UserError naming the path (reading a FIFO would wait forever, a
// device without end).
void CheckRegularFile(const std::string& path);
// The most ReadFileToString reads unless told otherwise: far above any manifest, config or list of
// ids it is given, far below what would exhaust memory.
inline constexpr int64_t kMaxReadBytes = int64_t{1} << 30;
// Reads a whole regular file (CheckRegularFile) of at most `max_bytes`. Throws UserError naming the
// path if it cannot be read or is larger.
std::string ReadFileToString(const std::string& path, int64_t max_bytes = kMaxReadBytes);
// Writes `contents` to `path` through an AtomicOutput: the file is complete or absent. Every write
// is checked; a failure (disk full, missing directory) is a UserError naming the path.
void WriteFileAtomically(const std::string& path, const std::string& contents);
// Creates the directory and its parents; throws UserError on failure.
void MakeDirs(const std::string& path);
// Removes a file or a directory tree if present.
void RemoveAll(const std::string& path);
// fsync of a file or directory by path; throws UserError on failure.
void SyncPath(const std::string& path);

// An exclusive, advisory lock on a directory (flock on DIR/.lock, which records "PID HOST WHAT" of
// the holder). Released when the object dies or the process ends, however it ends. A second holder,
// in this process or another, gets a UserError naming the holder's PID and host.
class DirectoryLock {
 public:
  // Creates the directory if needed. `what` names the holder's work in the message ("a training run").
  // With `wait_seconds` > 0 a held lock is waited for (polled, the wait logged once) that long first.
  DirectoryLock(const std::string& dir, const std::string& what, double wait_seconds = 0);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Size and CRC-32C of a file, as manifests record them.
struct FileDigest {
  int64_t bytes = 0;
  uint32_t crc32c = 0;
};
FileDigest DigestFile(const std::string& path);
// Throws UserError naming `path` when it is missing, has another size ("truncated?") or another
// checksum ("the file is damaged").
void VerifyFileDigest(const std::string& path, const FileDigest& expected);

}  // namespace shardrec
