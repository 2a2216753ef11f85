#include "train/tensorboard.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/crc32c.h"
#include "common/error.h"

namespace shardrec {
namespace {

// Protobuf wire format, just what tensorflow.Event needs.
void Varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void Key(std::string* out, int field, int wire) { Varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void Fixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void Fixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void Bytes(std::string* out, int field, const std::string& s) {
  Key(out, field, 2);
  Varint(out, s.size());
  out->append(s);
}

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
std::string EventHeader(int64_t step) {
  std::string e;
  Key(&e, 1, 1);
  double t = WallTime();
  uint64_t bits;
  std::memcpy(&bits, &t, 8);
  Fixed64(&e, bits);
  Key(&e, 2, 0);
  Varint(&e, static_cast<uint64_t>(step));
  return e;
}

}  // namespace

uint32_t MaskedCrc32c(const void* data, size_t n) {
  const uint32_t crc = Crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<int64_t>(WallTime())) + ".shardrec";
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) Fail(path_, ": cannot create the TensorBoard event file");
  std::string e = EventHeader(0);
  Bytes(&e, 3, "brain.Event:2");
  WriteRecord(e);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::AddScalar(const std::string& tag, double value, int64_t step) {
  // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
  std::string v;
  Bytes(&v, 1, tag);
  Key(&v, 2, 5);
  float f = static_cast<float>(value);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  Fixed32(&v, bits);
  std::string summary;
  Bytes(&summary, 1, v);
  std::string e = EventHeader(step);
  Bytes(&e, 5, summary);
  WriteRecord(e);
}

void TensorBoardWriter::WriteRecord(const std::string& data) {
  // TFRecord: uint64 length, masked crc of length, data, masked crc of data.
  std::string rec;
  Fixed64(&rec, data.size());
  const uint32_t len_crc = MaskedCrc32c(rec.data(), 8);
  Fixed32(&rec, len_crc);
  rec.append(data);
  Fixed32(&rec, MaskedCrc32c(data.data(), data.size()));
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size()) Fail(path_, ": write failed");
}

void TensorBoardWriter::Flush() {
  if (std::fflush(file_) != 0) Fail(path_, ": write failed: ", std::strerror(errno));
}

}  // namespace shardrec
