// Thin RAII layer over the HDF5 C API, used by every file format of the project. Every failure
// becomes a UserError naming the file and the object ("ml.h5: /events/item: ..."). Objects are
// not thread-safe (HDF5 serialises internally anyway); use one File per thread.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace shardrec::h5 {

// Owns one hid_t and closes it with the right H5?close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { Reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      Reset();
      id_ = o.id_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void Reset();
  // Gives up ownership (the caller closes the id).
  hid_t Release() {
    hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_ = -1;
};

// Element types stored by the project.
template <typename T>
hid_t NativeType();

struct CreateOptions {
  int64_t chunk_elems = 1 << 16;  // elements per chunk along dim 0 (times the row width)
  int deflate_level = 4;          // 0 = no compression; shuffle filter is added when > 0
};

// Bytes the calling thread's File::Read / ReadAll calls have returned so far (decoded values), for
// tests of what a rank reads (the in-process backend's ranks are threads).
int64_t ThreadBytesRead();

// An open HDF5 file. Paths inside are absolute ("/events/item"); groups are created on demand.
class File {
 public:
  // Truncates. Messages name `shown_as` when given (the final name of a file written under a
  // temporary one).
  static File Create(const std::string& path, const std::string& shown_as = "");
  static File Open(const std::string& path);    // read-only; throws a clear error if not HDF5

  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }
  bool Exists(const std::string& object) const;
  // Flushes and closes the file, checked: a write that failed here or earlier (HDF5 caches chunks
  // and metadata, so a full disk often shows only now) throws UserError naming the file and the
  // system's reason ("No space left on device"). A file written to must be closed with Close()
  // before it is published; the destructor closes without checking (error paths).
  void Close();
  // Records a failed write that could not throw where it happened (a dataset closed by a
  // destructor); Close() reports it.
  void NoteWriteFailure(const std::string& what);
  // Closes without checking (a file being abandoned on an error path; never throws).
  void Discard() {
    datasets_.clear();
    file_.Reset();
  }

  // Whole 1-D or 2-D (rows x width) arrays, chunked + compressed.
  template <typename T>
  void Write(const std::string& name, const std::vector<T>& data, int64_t width = 1,
             const CreateOptions& opt = {});
  // Shape of a dataset: {rows} or {rows, width}.
  std::vector<int64_t> Shape(const std::string& name) const;
  // Rows per chunk of a chunked dataset; 0 for a contiguous one.
  int64_t ChunkRows(const std::string& name) const;
  // Rows [begin, end) of a 1-D or 2-D dataset (row-major, end-begin rows x width).
  template <typename T>
  std::vector<T> Read(const std::string& name, int64_t begin, int64_t end) const;
  template <typename T>
  std::vector<T> ReadAll(const std::string& name) const;

  // Attributes on "/" or any group/dataset.
  void SetAttr(const std::string& object, const std::string& name, int64_t value);
  void SetAttr(const std::string& object, const std::string& name, double value);
  void SetAttr(const std::string& object, const std::string& name, const std::string& value);
  std::optional<int64_t> GetIntAttr(const std::string& object, const std::string& name) const;
  std::optional<double> GetDoubleAttr(const std::string& object, const std::string& name) const;
  std::optional<std::string> GetStringAttr(const std::string& object,
                                           const std::string& name) const;
  bool IsNumericAttr(const std::string& object, const std::string& name) const;
  // Names of all attributes of an object.
  std::vector<std::string> AttrNames(const std::string& object) const;

  // Makes sure the groups leading to `object` exist.
  void EnsureParents(const std::string& object);

  // Opens a dataset or throws "<file>: missing dataset <name>". Handles are cached per file
  // (with their chunk cache), so repeated slice reads do not re-open or re-decompress.
  hid_t OpenDataset(const std::string& name) const;
  // (Re)opens `name` without HDF5's chunk cache, for a caller that reads
  // whole chunks and keeps its own bounded cache: HDF5 1.10 keeps every chunk a reader has
  // decompressed, whatever the cache's byte limit, so random access grows to the whole array.
  void OpenDatasetUncached(const std::string& name) const;

 private:
  File(std::string path, Handle h, std::string written = "")
      : path_(std::move(path)), file_(std::move(h)), written_(std::move(written)) {}
  static bool IsFileMissing(const std::string& path);
  Handle OpenObject(const std::string& object) const;
  Handle OpenAttr(const std::string& object, const std::string& name) const;  // invalid if absent
  void WriteScalarAttr(const std::string& object, const std::string& name, hid_t file_type,
                       hid_t mem_type, const void* value);
  std::string path_;
  Handle file_;
  std::string written_;  // the file on disk, for a file this process created (checked at Close)
  std::string write_failure_;
  mutable std::map<std::string, Handle> datasets_;  // closed before file_ (declared after)
};

// Appends rows to an extendible 1-D or 2-D dataset, buffering one chunk at a time, so writers can
// stream arbitrarily large arrays in bounded memory.
template <typename T>
class Appender {
 public:
  Appender(File* file, const std::string& name, int64_t width = 1, const CreateOptions& opt = {});
  ~Appender();  // call Flush() before; a failure of the close is reported by File::Close()
  Appender(Appender&&) = default;
  void Append(const T* values, int64_t rows);
  void Append(const T& value) { Append(&value, 1); }
  void Flush();
  int64_t rows() const { return rows_written_ + static_cast<int64_t>(buffer_.size()) / width_; }

 private:
  File* file_;
  std::string name_;
  int64_t width_;
  int64_t chunk_rows_;
  Handle dset_;
  std::vector<T> buffer_;
  int64_t rows_written_ = 0;
};

// Strings stored as a CSR pair: <name>/offsets int64 [n+1], <name>/bytes uint8 [total].
// (Chunkable and compressible, unlike HDF5 variable-length strings; h5py reads it with two slices.)
class StringAppender {
 public:
  StringAppender(File* file, const std::string& name, const CreateOptions& opt = {});
  void Append(std::string_view s);
  void Flush();
  int64_t size() const { return count_; }

 private:
  Appender<int64_t> offsets_;
  Appender<uint8_t> bytes_;
  int64_t total_ = 0;
  int64_t count_ = 0;
};

// The system's reason for the latest failed HDF5 call ("No space left on device"), read from
// HDF5's error stack (its file drivers record errno there); "" if it names none.
std::string LastSystemError();

// Strings [begin, end) of a CSR string column.
std::vector<std::string> ReadStrings(const File& file, const std::string& name, int64_t begin,
                                     int64_t end);

}  // namespace shardrec::h5
