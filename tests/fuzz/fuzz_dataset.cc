// libFuzzer harness of the dataset reader (io/dataset.h): the input describes a file in the
// dataset's layout whose attributes and arrays are arbitrary (rows, offsets, ids, strings, shapes),
// written with HDF5; Dataset::Open and every read must either succeed or throw a UserError. (The
// HDF5 library's own parsing of damaged files is not ours to fuzz: the arrays are fuzzed, not its bytes.)
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/h5.h"
#include "tests/fuzz/fuzz_util.h"

namespace shardrec::fuzz {
namespace {

template <typename T>
std::vector<T> Values(FuzzedDataProvider& in, T lo, T hi) {
  std::vector<T> v(in.ConsumeIntegralInRange<size_t>(0, 12));
  for (auto& x : v) x = in.ConsumeIntegralInRange<T>(lo, hi);
  return v;
}

// Usually a well-formed array of `n` rows, sometimes an arbitrary one.
std::vector<int64_t> Offsets(FuzzedDataProvider& in, int64_t n, int64_t total) {
  if (in.ConsumeBool()) return Values<int64_t>(in, -3, total + 3);
  std::vector<int64_t> v(n > 0 ? n + 1 : 1, 0);
  for (size_t i = 1; i < v.size(); ++i) v[i] = std::min(total, v[i - 1] + in.ConsumeIntegralInRange<int64_t>(0, 3));
  if (!v.empty() && in.ConsumeBool()) v.back() = total;
  return v;
}

void WriteStrings(h5::File& f, FuzzedDataProvider& in, const std::string& name, int64_t n) {
  const std::string bytes = in.ConsumeRandomLengthString(64);
  f.Write<uint8_t>(name + "/bytes", std::vector<uint8_t>(bytes.begin(), bytes.end()));
  f.Write<int64_t>(name + "/offsets", Offsets(in, n, static_cast<int64_t>(bytes.size())));
}

void WriteFileFrom(FuzzedDataProvider& in, const std::string& path) {
  h5::File f = h5::File::Create(path);
  const int64_t users = in.ConsumeIntegralInRange<int64_t>(-1, 6), items = in.ConsumeIntegralInRange<int64_t>(-1, 6);
  const int64_t events = in.ConsumeIntegralInRange<int64_t>(-1, 12), dim = in.ConsumeIntegralInRange<int64_t>(-1, 3);
  const int64_t categories = in.ConsumeIntegralInRange<int64_t>(-1, 4);
  const uint16_t present = in.ConsumeIntegral<uint16_t>();  // which optional parts exist
  f.SetAttr("/", "format", std::string(present & 1 ? "x" : kDatasetFormatName));
  f.SetAttr("/", "format_version", present & 2 ? int64_t{2} : kDatasetFormatVersion);
  f.SetAttr("/", "num_users", users);
  f.SetAttr("/", "num_items", items);
  f.SetAttr("/", "num_events", events);
  f.SetAttr("/", "has_timestamps", int64_t{(present & 4) != 0});
  f.SetAttr("/", "content_dim", dim);
  f.SetAttr("/", "num_categories", categories);
  if (!(present & 8)) f.Write<int64_t>("/users/event_offsets", Offsets(in, users, events));
  WriteStrings(f, in, "/users/raw_ids", users);
  f.Write<int32_t>("/events/item", Values<int32_t>(in, -2, 8));
  if (present & 16) f.Write<int64_t>("/events/timestamp", Values<int64_t>(in, -5, 5));
  if (!(present & 32)) WriteStrings(f, in, "/items/raw_ids", items);
  if (present & 64) WriteStrings(f, in, "/items/titles", items);
  if (present & 128) {
    f.Write<int64_t>("/items/categories/offsets", Offsets(in, items, 6));
    f.Write<int32_t>("/items/categories/values", Values<int32_t>(in, -2, 5));
  }
  if (present & 256) WriteStrings(f, in, "/categories/names", categories);
  if (present & 512) {
    const int64_t width = in.ConsumeIntegralInRange<int64_t>(1, 3);
    std::vector<float> c(static_cast<size_t>(in.ConsumeIntegralInRange<int64_t>(0, 6) * width));
    for (auto& x : c) x = in.ConsumeBool() ? 0.f : 1.f;
    f.Write<float>("/items/content", c, width);
  }
  if (present & 1024) f.SetAttr("/", "item_ids_fingerprint", in.ConsumeRandomLengthString(20));
  f.Close();
}

}  // namespace
}  // namespace shardrec::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardrec;
  FuzzedDataProvider in(data, size);
  const std::string path = fuzz::Scratch() + "/d.h5";
  fuzz::WriteFileFrom(in, path);
  fuzz::ExpectOnlyUserErrors([&] {
    auto ds = Dataset::Open(path);
    const DatasetInfo& info = ds->info();
    ds->ReadItems(0, info.num_events);
    ds->ReadTimestamps(0, info.num_events);
    ds->ReadUserRawIds(0, info.num_users);
    ds->ReadItemRawIds(0, info.num_items);
    if (info.has_titles) ds->ReadItemTitles(0, info.num_items);
    if (info.has_categories) ds->ReadItemCategories(0, info.num_items);
    ds->ReadCategoryNames();
    ds->CountItemsWithContent();
    ds->ItemIdsFingerprint();
    ds->DataFingerprint();
    for (int64_t u = 0; u < info.num_users; ++u) ds->user_length(u);
  });
  return 0;
}
