#include "io/h5.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec::h5 {
namespace {

// Debian's HDF5 is built without thread safety: every call into the library from this file holds
// one process-wide (recursive) lock, so ranks running as threads can read and write files.
std::recursive_mutex& Lock() {
  static std::recursive_mutex mu;
  return mu;
}
#define H5_LOCKED std::lock_guard<std::recursive_mutex> h5_lock_guard(Lock())

// HDF5 prints its own error stack by default; we report through UserError instead. And it closes
// files left open at exit, flushing them: after a failed write (a full disk) that flush fails again
// and crashed inside the library's exit handler. Every file written is closed explicitly and
// checked (File::Close), and a file that failed is discarded, so the exit handler is not wanted.
// (H5dont_atexit must come before HDF5 initialises itself: at load time.)
[[maybe_unused]] const bool kNoExitHandler = H5dont_atexit() >= 0;

void SilenceHdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

herr_t FindSystemError(unsigned, const H5E_error2_t* e, void* out) {
  auto* reason = static_cast<std::string*>(out);
  if (!reason->empty() || e->desc == nullptr) return 0;
  const std::string desc = e->desc;
  const std::string key = "error message = '";
  const size_t at = desc.find(key);
  if (at == std::string::npos) return 0;
  const size_t end = desc.find('\'', at + key.size());
  *reason = desc.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
  return 0;
}

// "<what>: <the system's reason>", or a hint when HDF5 recorded none.
std::string WithReason(const std::string& what) {
  const std::string reason = LastSystemError();
  return what + (reason.empty() ? " (disk full or I/O error?)" : ": " + reason);
}

[[noreturn]] void FailWrite(const std::string& path, const std::string& what) { Fail(path, ": ", WithReason(what)); }

// Fixed properties so the same content always gives the same bytes (no object timestamps).
Handle GroupCreateProps() {
  Handle gcpl(H5Pcreate(H5P_GROUP_CREATE));
  H5Pset_obj_track_times(gcpl.get(), false);
  return gcpl;
}

Handle StringType() {
  Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

}  // namespace

std::string LastSystemError() {
  H5_LOCKED;
  std::string reason;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, FindSystemError, &reason);
  return reason;
}

void File::NoteWriteFailure(const std::string& what) {
  if (write_failure_.empty()) write_failure_ = WithReason(what);
}

void File::Close() {
  H5_LOCKED;
  datasets_.clear();
  if (!file_.valid()) return;
  // Datasets still open would be closed (and their chunks written) only after the file, unchecked.
  CHECK_EQ(H5Fget_obj_count(file_.get(), H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_ATTR | H5F_OBJ_LOCAL), 0)
      << path_ << ": objects still open at Close()";
  std::string failure = write_failure_;
  if (failure.empty() && H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0) failure = WithReason("cannot write");
  if (H5Fclose(file_.Release()) < 0 && failure.empty()) failure = WithReason("cannot close");
  // HDF5 ignores a failure of its last write at close, the superblock that clears the "open for
  // writing" flag (offset 20 of a version 0/1 superblock): read it back.
  if (failure.empty() && !written_.empty()) {
    unsigned char sb[24] = {0};
    std::FILE* f = std::fopen(written_.c_str(), "rb");
    const bool read = f != nullptr && std::fread(sb, 1, sizeof(sb), f) == sizeof(sb);
    if (f != nullptr) std::fclose(f);
    if (!read || (sb[8] <= 1 && (sb[20] | sb[21] | sb[22] | sb[23]) != 0)) {
      failure = "cannot close: the file was not finalised (disk full or I/O error?)";
    }
  }
  if (!failure.empty()) Fail(path_, ": ", failure);
}

void Handle::Reset() {
  H5_LOCKED;
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = -1;
}

template <> hid_t NativeType<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t NativeType<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t NativeType<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t NativeType<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t NativeType<double>() { return H5T_NATIVE_DOUBLE; }

File File::Create(const std::string& path, const std::string& shown_as) {
  H5_LOCKED;
  SilenceHdf5();
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE));
  H5Pset_obj_track_times(fcpl.get(), false);
  Handle h(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT));
  if (!h.valid()) {
    const std::string reason = LastSystemError();
    Fail(shown_as.empty() ? path : shown_as, ": cannot create HDF5 file: ",
         reason.empty() ? "check the directory exists and is writable" : reason);
  }
  return File(shown_as.empty() ? path : shown_as, std::move(h), path);
}

File File::Open(const std::string& path) {
  H5_LOCKED;
  SilenceHdf5();
  if (IsFileMissing(path)) Fail(path, ": no such file");
  CheckRegularFile(path);  // a FIFO would block the HDF5 library's open
  htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) Fail(path, ": not an HDF5 file (or truncated/corrupted)");
  Handle h(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!h.valid()) Fail(path, ": cannot open HDF5 file (truncated or corrupted?)");
  return File(path, std::move(h));
}

bool File::IsFileMissing(const std::string& path) { return !PathExists(path); }

bool File::Exists(const std::string& object) const {
  H5_LOCKED;
  // Check each prefix: H5Lexists fails if an intermediate group is missing.
  size_t pos = 0;
  while ((pos = object.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(file_.get(), object.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return object == "/" || H5Lexists(file_.get(), object.c_str(), H5P_DEFAULT) > 0;
}

void File::EnsureParents(const std::string& object) {
  H5_LOCKED;
  size_t pos = 0;
  Handle gcpl = GroupCreateProps();
  while ((pos = object.find('/', pos + 1)) != std::string::npos) {
    std::string g = object.substr(0, pos);
    if (H5Lexists(file_.get(), g.c_str(), H5P_DEFAULT) > 0) continue;
    Handle gh(H5Gcreate2(file_.get(), g.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT));
    if (!gh.valid()) FailWrite(path_, "cannot create group " + g);
  }
}

Handle File::OpenObject(const std::string& object) const {
  H5_LOCKED;
  if (object != "/" && !Exists(object)) Fail(path_, ": missing ", object);
  Handle h(H5Oopen(file_.get(), object.c_str(), H5P_DEFAULT));
  if (!h.valid()) Fail(path_, ": cannot open ", object);
  return h;
}

int64_t File::ChunkRows(const std::string& name) const {
  H5_LOCKED;
  Handle plist(H5Dget_create_plist(OpenDataset(name)));
  if (H5Pget_layout(plist.get()) != H5D_CHUNKED) return 0;
  hsize_t dims[2] = {0, 0};
  if (H5Pget_chunk(plist.get(), 2, dims) < 1) return 0;
  return static_cast<int64_t>(dims[0]);
}

void File::OpenDatasetUncached(const std::string& name) const {
  H5_LOCKED;
  datasets_.erase(name);  // reopened without the cache
  if (!Exists(name)) Fail(path_, ": missing dataset ", name);
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
  H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0);
  Handle d(H5Dopen2(file_.get(), name.c_str(), dapl.get()));
  if (!d.valid()) Fail(path_, ": ", name, " is not a readable dataset");
  datasets_.emplace(name, std::move(d));
}

hid_t File::OpenDataset(const std::string& name) const {
  H5_LOCKED;
  auto cached = datasets_.find(name);
  if (cached != datasets_.end()) return cached->second.get();
  if (!Exists(name)) Fail(path_, ": missing dataset ", name);
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
  // A reader jumps between users: keep many decompressed chunks (64 MiB per dataset).
  H5Pset_chunk_cache(dapl.get(), 12421, 64 << 20, 1.0);
  Handle d(H5Dopen2(file_.get(), name.c_str(), dapl.get()));
  if (!d.valid()) Fail(path_, ": ", name, " is not a readable dataset");
  hid_t id = d.get();
  datasets_.emplace(name, std::move(d));
  return id;
}

std::vector<int64_t> File::Shape(const std::string& name) const {
  H5_LOCKED;
  hid_t d = OpenDataset(name);
  Handle space(H5Dget_space(d));
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 1 || rank > 2) Fail(path_, ": ", name, ": expected a 1-D or 2-D dataset");
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  std::vector<int64_t> out;
  for (int i = 0; i < rank; ++i) out.push_back(static_cast<int64_t>(dims[i]));
  return out;
}

template <typename T>
void File::Write(const std::string& name, const std::vector<T>& data, int64_t width,
                 const CreateOptions& opt) {
  CHECK_GT(width, 0);
  CHECK_EQ(static_cast<int64_t>(data.size()) % width, 0);
  Appender<T> a(this, name, width, opt);
  a.Append(data.data(), static_cast<int64_t>(data.size()) / width);
  a.Flush();
}

namespace {
thread_local int64_t g_bytes_read = 0;
}  // namespace

int64_t ThreadBytesRead() { return g_bytes_read; }

template <typename T>
std::vector<T> File::Read(const std::string& name, int64_t begin, int64_t end) const {
  H5_LOCKED;
  hid_t d = OpenDataset(name);
  Handle space(H5Dget_space(d));
  int rank = H5Sget_simple_extent_ndims(space.get());
  hsize_t dims[2] = {0, 1};
  if (rank < 1 || rank > 2) Fail(path_, ": ", name, ": expected a 1-D or 2-D dataset");
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (rank == 1) dims[1] = 1;
  if (begin < 0 || end < begin || static_cast<hsize_t>(end) > dims[0]) {
    Fail(path_, ": ", name, ": rows [", begin, ", ", end, ") out of range (", dims[0],
         " rows); the file is inconsistent or truncated");
  }
  std::vector<T> out(static_cast<size_t>((end - begin) * dims[1]));
  if (out.empty()) return out;
  hsize_t start[2] = {static_cast<hsize_t>(begin), 0};
  hsize_t count[2] = {static_cast<hsize_t>(end - begin), dims[1]};
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  Handle mem(H5Screate_simple(rank, count, nullptr));
  if (H5Dread(d, NativeType<T>(), mem.get(), space.get(), H5P_DEFAULT, out.data()) < 0) {
    Fail(path_, ": ", name, ": read of rows [", begin, ", ", end,
         ") failed (wrong type, or corrupted data)");
  }
  g_bytes_read += static_cast<int64_t>(out.size() * sizeof(T));
  return out;
}

template <typename T>
std::vector<T> File::ReadAll(const std::string& name) const {
  return Read<T>(name, 0, Shape(name)[0]);
}

void File::WriteScalarAttr(const std::string& object, const std::string& name, hid_t file_type,
                           hid_t mem_type, const void* value) {
  H5_LOCKED;
  Handle obj = OpenObject(object);
  if (H5Aexists(obj.get(), name.c_str()) > 0) H5Adelete(obj.get(), name.c_str());
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(obj.get(), name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a.get(), mem_type, value) < 0) FailWrite(path_, "cannot write attribute " + object + "@" + name);
}

void File::SetAttr(const std::string& object, const std::string& name, int64_t value) {
  WriteScalarAttr(object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void File::SetAttr(const std::string& object, const std::string& name, double value) {
  WriteScalarAttr(object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void File::SetAttr(const std::string& object, const std::string& name, const std::string& value) {
  Handle type = StringType();
  const char* p = value.c_str();
  WriteScalarAttr(object, name, type.get(), type.get(), &p);
}

Handle File::OpenAttr(const std::string& object, const std::string& name) const {
  H5_LOCKED;
  if (object != "/" && !Exists(object)) return Handle();
  Handle obj = OpenObject(object);
  if (H5Aexists(obj.get(), name.c_str()) <= 0) return Handle();
  return Handle(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT));
}

namespace {
H5T_class_t AttrClass(const Handle& attr) {
  Handle t(H5Aget_type(attr.get()));
  return H5Tget_class(t.get());
}
}  // namespace

std::optional<int64_t> File::GetIntAttr(const std::string& object,
                                        const std::string& name) const {
  H5_LOCKED;
  Handle a = OpenAttr(object, name);
  if (!a.valid()) return std::nullopt;
  if (AttrClass(a) != H5T_INTEGER) Fail(path_, ": attribute ", object, "@", name, " is not an integer");
  int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) Fail(path_, ": cannot read attribute ", name);
  return v;
}

std::optional<double> File::GetDoubleAttr(const std::string& object,
                                          const std::string& name) const {
  H5_LOCKED;
  Handle a = OpenAttr(object, name);
  if (!a.valid()) return std::nullopt;
  if (!IsNumericAttr(object, name)) Fail(path_, ": attribute ", object, "@", name, " is not a number");
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) Fail(path_, ": cannot read attribute ", name);
  return v;
}

std::optional<std::string> File::GetStringAttr(const std::string& object,
                                               const std::string& name) const {
  H5_LOCKED;
  Handle a = OpenAttr(object, name);
  if (!a.valid()) return std::nullopt;
  if (AttrClass(a) != H5T_STRING) Fail(path_, ": attribute ", object, "@", name, " is not a string");
  Handle t(H5Aget_type(a.get()));
  if (H5Tis_variable_str(t.get()) > 0) {
    Handle mt = StringType();
    char* p = nullptr;
    if (H5Aread(a.get(), mt.get(), &p) < 0) Fail(path_, ": cannot read attribute ", name);
    std::string s = p ? p : "";
    Handle space(H5Aget_space(a.get()));
    H5Dvlen_reclaim(mt.get(), space.get(), H5P_DEFAULT, &p);
    return s;
  }
  size_t n = H5Tget_size(t.get());
  std::string s(n, '\0');
  if (H5Aread(a.get(), t.get(), s.data()) < 0) Fail(path_, ": cannot read attribute ", name);
  s.resize(std::min(s.size(), s.find('\0')));
  return s;
}

bool File::IsNumericAttr(const std::string& object, const std::string& name) const {
  H5_LOCKED;
  Handle a = OpenAttr(object, name);
  if (!a.valid()) return false;
  H5T_class_t c = AttrClass(a);
  return c == H5T_FLOAT || c == H5T_INTEGER;
}

std::vector<std::string> File::AttrNames(const std::string& object) const {
  H5_LOCKED;
  Handle obj = OpenObject(object);
  H5O_info_t info;
  H5Oget_info2(obj.get(), &info, H5O_INFO_NUM_ATTRS);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    ssize_t n = H5Aget_name_by_idx(obj.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                   H5P_DEFAULT);
    std::string s(static_cast<size_t>(n), '\0');
    H5Aget_name_by_idx(obj.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), n + 1,
                       H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

template <typename T>
Appender<T>::Appender(File* file, const std::string& name, int64_t width,
                      const CreateOptions& opt)
    : file_(file), name_(name), width_(width) {
  H5_LOCKED;
  CHECK_GT(width, 0);
  chunk_rows_ = std::max<int64_t>(1, opt.chunk_elems / width);
  file_->EnsureParents(name);
  int rank = width == 1 ? 1 : 2;
  hsize_t dims[2] = {0, static_cast<hsize_t>(width)};
  hsize_t maxdims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(width)};
  hsize_t chunk[2] = {static_cast<hsize_t>(chunk_rows_), static_cast<hsize_t>(width)};
  Handle space(H5Screate_simple(rank, dims, maxdims));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), rank, chunk);
  H5Pset_obj_track_times(dcpl.get(), false);
  if (opt.deflate_level > 0) {
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), static_cast<unsigned>(opt.deflate_level));
  }
  dset_ = Handle(H5Dcreate2(file_->id(), name.c_str(), NativeType<T>(), space.get(), H5P_DEFAULT,
                            dcpl.get(), H5P_DEFAULT));
  if (!dset_.valid()) FailWrite(file_->path(), "cannot create dataset " + name);
  buffer_.reserve(static_cast<size_t>(chunk_rows_ * width_));
}

template <typename T>
Appender<T>::~Appender() {
  H5_LOCKED;
  // Closing a dataset writes its cached chunks: a failure here is the file's, reported by Close().
  if (dset_.valid() && H5Dclose(dset_.Release()) < 0) file_->NoteWriteFailure("cannot write " + name_);
}

template <typename T>
void Appender<T>::Append(const T* values, int64_t rows) {
  const int64_t chunk_elems = chunk_rows_ * width_;
  int64_t n = rows * width_;
  while (n > 0) {
    int64_t take = std::min<int64_t>(n, chunk_elems - static_cast<int64_t>(buffer_.size()));
    buffer_.insert(buffer_.end(), values, values + take);
    values += take;
    n -= take;
    if (static_cast<int64_t>(buffer_.size()) == chunk_elems) Flush();
  }
}

template <typename T>
void Appender<T>::Flush() {
  H5_LOCKED;
  if (buffer_.empty()) return;
  const int rank = width_ == 1 ? 1 : 2;
  const hsize_t add = buffer_.size() / static_cast<size_t>(width_);
  hsize_t newdims[2] = {static_cast<hsize_t>(rows_written_) + add, static_cast<hsize_t>(width_)};
  if (H5Dset_extent(dset_.get(), newdims) < 0) FailWrite(file_->path(), "cannot extend " + name_);
  Handle space(H5Dget_space(dset_.get()));
  hsize_t start[2] = {static_cast<hsize_t>(rows_written_), 0};
  hsize_t count[2] = {add, static_cast<hsize_t>(width_)};
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  Handle mem(H5Screate_simple(rank, count, nullptr));
  if (H5Dwrite(dset_.get(), NativeType<T>(), mem.get(), space.get(), H5P_DEFAULT,
               buffer_.data()) < 0) {
    FailWrite(file_->path(), "write to " + name_ + " failed");
  }
  rows_written_ += static_cast<int64_t>(add);
  buffer_.clear();
}

StringAppender::StringAppender(File* file, const std::string& name, const CreateOptions& opt)
    : offsets_(file, name + "/offsets", 1, opt), bytes_(file, name + "/bytes", 1, opt) {
  offsets_.Append(int64_t{0});
}

void StringAppender::Append(std::string_view s) {
  bytes_.Append(reinterpret_cast<const uint8_t*>(s.data()), static_cast<int64_t>(s.size()));
  total_ += static_cast<int64_t>(s.size());
  offsets_.Append(total_);
  ++count_;
}

void StringAppender::Flush() {
  offsets_.Flush();
  bytes_.Flush();
}

std::vector<std::string> ReadStrings(const File& file, const std::string& name, int64_t begin,
                                     int64_t end) {
  std::vector<int64_t> off = file.Read<int64_t>(name + "/offsets", begin, end + 1);
  std::vector<std::string> out;
  if (off.empty()) return out;
  for (size_t i = 1; i < off.size(); ++i) {
    if (off[i] < off[i - 1]) Fail(file.path(), ": ", name, "/offsets is not non-decreasing");
  }
  std::vector<uint8_t> bytes = file.Read<uint8_t>(name + "/bytes", off.front(), off.back());
  out.reserve(off.size() - 1);
  for (size_t i = 0; i + 1 < off.size(); ++i) {
    out.emplace_back(reinterpret_cast<const char*>(bytes.data()) + (off[i] - off.front()),
                     static_cast<size_t>(off[i + 1] - off[i]));
  }
  return out;
}

#define SHARDREC_H5_INSTANTIATE(T)                                                          \
  template void File::Write<T>(const std::string&, const std::vector<T>&, int64_t,          \
                               const CreateOptions&);                                       \
  template std::vector<T> File::Read<T>(const std::string&, int64_t, int64_t) const;        \
  template std::vector<T> File::ReadAll<T>(const std::string&) const;                       \
  template class Appender<T>;
SHARDREC_H5_INSTANTIATE(int32_t)
SHARDREC_H5_INSTANTIATE(int64_t)
SHARDREC_H5_INSTANTIATE(uint8_t)
SHARDREC_H5_INSTANTIATE(float)
SHARDREC_H5_INSTANTIATE(double)
#undef SHARDREC_H5_INSTANTIATE

}  // namespace shardrec::h5
