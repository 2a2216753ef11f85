// Scalar summaries in TensorBoard's event-file format (TFRecord framing of tensorflow.Event
// protos), written without TensorFlow: `tensorboard --logdir RUN` shows the curves.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace shardrec {

class TensorBoardWriter {
 public:
  // Creates RUN/events.out.tfevents.<seconds>.shardrec and writes the file_version record.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  void AddScalar(const std::string& tag, double value, int64_t step);
  void Flush();
  const std::string& path() const { return path_; }

 private:
  void WriteRecord(const std::string& data);
  std::string path_;
  FILE* file_ = nullptr;
};

// TFRecord's masked CRC-32C.
uint32_t MaskedCrc32c(const void* data, size_t n);

}  // namespace shardrec
