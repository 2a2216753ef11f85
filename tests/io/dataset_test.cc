#include "io/dataset.h"

#include <gtest/gtest.h>

#include <hdf5.h>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::ExpectUserError;
using testing::TempDir;

// A small dataset written by hand: 3 users, 4 items, titles, categories, content.
std::string WriteSmall(const TempDir& dir, h5::CreateOptions storage = {.chunk_elems = 2,
                                                                         .deflate_level = 4}) {
  const std::string path = dir.File("small.h5");
  DatasetWriterOptions o;
  o.timestamps = true;
  o.titles = true;
  o.categories = true;
  o.content_dim = 2;
  o.source = "test";
  o.storage = storage;  // tiny chunks: reads cross chunk boundaries
  auto w = DatasetWriter::Create(path, o);
  w->AddUser("u1", std::vector<int32_t>{0, 1, 2}, std::vector<int64_t>{10, 20, 30});
  w->AddUser("u2", std::vector<int32_t>{}, std::vector<int64_t>{});
  w->AddUser("u3", std::vector<int32_t>{3, 3, 1, 0, 2}, std::vector<int64_t>{1, 2, 3, 4, 5});
  w->SetCategoryNames({"a", "b", "c"});
  w->AddItem("i0", "Zero", std::vector<int32_t>{0, 2}, std::vector<float>{1, 0});
  w->AddItem("i1", "", std::vector<int32_t>{}, std::vector<float>{0, 0});
  w->AddItem("i2", "Caf\xC3\xA9", std::vector<int32_t>{1}, std::vector<float>{0.5f, -2});
  w->AddItem("i3", "", std::vector<int32_t>{2}, std::vector<float>{0, 0});
  w->SetAttribute("/oracle", "hr@10", 0.25);
  DatasetInfo info = w->Finish();
  EXPECT_EQ(info.num_users, 3);
  EXPECT_EQ(info.num_items, 4);
  EXPECT_EQ(info.num_events, 8);
  return path;
}

TEST(Dataset, RoundTripsEveryField) {
  TempDir dir;
  auto ds = Dataset::Open(WriteSmall(dir));
  const DatasetInfo& info = ds->info();
  EXPECT_EQ(info.format_version, kDatasetFormatVersion);
  EXPECT_EQ(info.num_users, 3);
  EXPECT_EQ(info.num_items, 4);
  EXPECT_EQ(info.num_events, 8);
  EXPECT_TRUE(info.has_timestamps);
  EXPECT_TRUE(info.has_titles);
  EXPECT_TRUE(info.has_categories);
  EXPECT_EQ(info.num_categories, 3);
  EXPECT_EQ(info.content_dim, 2);
  EXPECT_EQ(info.source, "test");
  EXPECT_EQ(ds->user_offsets(), (std::vector<int64_t>{0, 3, 3, 8}));
  EXPECT_EQ(ds->ReadItems(0, 8), (std::vector<int32_t>{0, 1, 2, 3, 3, 1, 0, 2}));
  EXPECT_EQ(ds->ReadItems(3, 6), (std::vector<int32_t>{3, 3, 1}));
  EXPECT_EQ(ds->ReadTimestamps(2, 4), (std::vector<int64_t>{30, 1}));
  EXPECT_EQ(ds->ReadUserRawIds(0, 3), (std::vector<std::string>{"u1", "u2", "u3"}));
  EXPECT_EQ(ds->ReadItemRawIds(1, 3), (std::vector<std::string>{"i1", "i2"}));
  EXPECT_EQ(ds->ReadItemTitles(0, 4), (std::vector<std::string>{"Zero", "", "Caf\xC3\xA9", ""}));
  auto cats = ds->ReadItemCategories(1, 4);
  EXPECT_EQ(cats.offsets, (std::vector<int64_t>{0, 0, 1, 2}));
  EXPECT_EQ(cats.values, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(ds->ReadCategoryNames(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ds->ReadItemContent(2, 3), (std::vector<float>{0.5f, -2}));
  EXPECT_EQ(ds->CountItemsWithContent(), 2);  // i0 (title+vector), i2; i1 and i3 have neither
  EXPECT_DOUBLE_EQ(ds->NumericAttributes("/oracle").at("hr@10"), 0.25);
  EXPECT_TRUE(ds->NumericAttributes("/nothing").empty());
}

TEST(Dataset, SameContentSameBytes) {
  TempDir a, b;
  std::string pa = WriteSmall(a), pb = WriteSmall(b);
  EXPECT_EQ(ReadFileToString(pa), ReadFileToString(pb));
}

TEST(Dataset, WriterDestroyedBeforeFinishLeavesNoFile) {
  TempDir dir;
  {
    DatasetWriterOptions o;
    auto w = DatasetWriter::Create(dir.File("x.h5"), o);
    w->AddUser("u", std::vector<int32_t>{0});
  }
  EXPECT_TRUE(testing::ListDir(dir.path()).empty());
}

TEST(Dataset, EventReferringToMissingItemIsRejected) {
  TempDir dir;
  DatasetWriterOptions o;
  auto w = DatasetWriter::Create(dir.File("x.h5"), o);
  w->AddUser("u", std::vector<int32_t>{0, 5});
  w->AddItem("only");
  ExpectUserError([&] { w->Finish(); }, {"x.h5", "item 5", "1 items"});
  w.reset();
  EXPECT_TRUE(testing::ListDir(dir.path()).empty());
}

TEST(Dataset, OpenRejectsMissingTruncatedAndForeignFiles) {
  TempDir dir;
  ExpectUserError([&] { Dataset::Open(dir.File("missing.h5")); }, {"missing.h5", "no such file"});
  testing::WriteText(dir.File("text.h5"), "not hdf5 at all");
  ExpectUserError([&] { Dataset::Open(dir.File("text.h5")); }, {"text.h5", "not an HDF5 file"});
  // Truncated copy of a real dataset.
  std::string good = ReadFileToString(WriteSmall(dir));
  testing::WriteText(dir.File("trunc.h5"), good.substr(0, good.size() / 2));
  ExpectUserError([&] { Dataset::Open(dir.File("trunc.h5")); }, {"trunc.h5"});
  // A valid HDF5 file that is not a dataset.
  {
    h5::File f = h5::File::Create(dir.File("other.h5"));
    f.Write<int32_t>("/x", {1, 2, 3});
  }
  ExpectUserError([&] { Dataset::Open(dir.File("other.h5")); }, {"other.h5", "not a ShardRec dataset"});
}

TEST(Dataset, OpenRejectsWrongVersionAndInconsistentSizes) {
  TempDir dir;
  const std::string path = WriteSmall(dir);
  // Patch attributes of a copy through the raw HDF5 API.
  auto patch = [&](const std::string& name, const char* attr, int64_t value) {
    std::string copy = dir.File(name);
    testing::WriteText(copy, ReadFileToString(path));
    hid_t f = H5Fopen(copy.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &value);
    H5Aclose(a);
    H5Fclose(f);
    return copy;
  };
  ExpectUserError([&] { Dataset::Open(patch("v2.h5", "format_version", 2)); },
                  {"v2.h5", "format_version 2", "not supported"});
  ExpectUserError([&] { Dataset::Open(patch("n.h5", "num_events", 9)); },
                  {"n.h5", "/events/item", "8 rows", "expected 9"});
}

TEST(Dataset, ReadOutOfRangeIsAnError) {
  TempDir dir;
  auto ds = Dataset::Open(WriteSmall(dir));
  ExpectUserError([&] { ds->ReadItems(5, 9); }, {"/events/item", "out of range"});
}

// Events are read through the Dataset's own cache of whole chunks: any span, in any order, with a
// cache of a few chunks (so blocks are evicted and read again), equals the file's bytes read
// directly (one HDF5 read of the span), for the small chunks a writer makes now and for larger
// chunks of older files.
TEST(Dataset, EventReadsThroughTheBlockCacheEqualDirectReads) {
  for (int64_t chunk : {Dataset::kEventChunk, int64_t{1} << 16}) {
    TempDir dir;
    const std::string path = dir.File("big.h5");
    DatasetWriterOptions o;
    o.timestamps = true;
    // A writer's events chunk is min(storage chunk, kEventChunk); an older file's is written below.
    o.storage = {.chunk_elems = std::min<int64_t>(chunk, Dataset::kEventChunk), .deflate_level = 1};
    auto w = DatasetWriter::Create(path, o);
    const int64_t users = 3000, items = 50;
    std::vector<int64_t> begin{0};
    for (int64_t u = 0; u < users; ++u) {
      const int64_t n = 30 + (u * 37) % 150;  // ~3e5 events in all: ~70 small chunks or 5 large ones
      std::vector<int32_t> it(n);
      std::vector<int64_t> ts(n);
      for (int64_t k = 0; k < n; ++k) {
        it[k] = static_cast<int32_t>((u * 7 + k * 13) % items);
        ts[k] = u * 1000 + k;
      }
      w->AddUser("u" + std::to_string(u), it, ts);
      begin.push_back(begin.back() + n);
    }
    for (int64_t i = 0; i < items; ++i) w->AddItem("i" + std::to_string(i), "", {}, {});
    w->Finish();
    if (chunk != Dataset::kEventChunk) {
      // Rewrite the events as an older file had them, in chunks of `chunk`.
      std::vector<int32_t> all_items;
      std::vector<int64_t> all_times;
      {
        h5::File f = h5::File::Open(path);
        all_items = f.ReadAll<int32_t>("/events/item");
        all_times = f.ReadAll<int64_t>("/events/timestamp");
      }
      hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      ASSERT_GE(file, 0);
      ASSERT_GE(H5Ldelete(file, "/events/item", H5P_DEFAULT), 0);
      ASSERT_GE(H5Ldelete(file, "/events/timestamp", H5P_DEFAULT), 0);
      // h5::File writes only new files: the raw API, with the old chunk size.
      for (int k = 0; k < 2; ++k) {
        const hsize_t n = all_items.size(), c = static_cast<hsize_t>(chunk);
        hid_t space = H5Screate_simple(1, &n, nullptr);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, &c);
        H5Pset_deflate(dcpl, 1);
        const char* name = k == 0 ? "/events/item" : "/events/timestamp";
        hid_t d = H5Dcreate2(file, name, k == 0 ? H5T_STD_I32LE : H5T_STD_I64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        ASSERT_GE(d, 0);
        ASSERT_GE(H5Dwrite(d, k == 0 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           k == 0 ? static_cast<const void*>(all_items.data()) : static_cast<const void*>(all_times.data())),
                  0);
        H5Dclose(d);
        H5Pclose(dcpl);
        H5Sclose(space);
      }
      H5Fclose(file);
    }
    // Room for 3 blocks of timestamps (6 of items): every pass below evicts.
    auto ds = Dataset::Open(path, 3 * chunk * 8);
    h5::File direct = h5::File::Open(path);
    EXPECT_EQ(direct.ChunkRows("/events/item"), chunk);
    // Users in a scattered order (every user once, twice), then spans across users and chunk edges.
    for (int64_t k = 0; k < 2 * users; ++k) {
      const int64_t u = (k * 1237) % users;
      ASSERT_EQ(ds->ReadItems(begin[u], begin[u + 1]), direct.Read<int32_t>("/events/item", begin[u], begin[u + 1])) << u;
      ASSERT_EQ(ds->ReadTimestamps(begin[u], begin[u + 1]), direct.Read<int64_t>("/events/timestamp", begin[u], begin[u + 1]));
    }
    const int64_t n = begin.back();
    for (int64_t a : {int64_t{0}, chunk - 3, 2 * chunk - 1, n - 5000}) {
      const int64_t b = std::min(n, a + 5000);
      EXPECT_EQ(ds->ReadItems(a, b), direct.Read<int32_t>("/events/item", a, b)) << a;
      EXPECT_EQ(ds->ReadTimestamps(a, b), direct.Read<int64_t>("/events/timestamp", a, b)) << a;
    }
    EXPECT_TRUE(ds->ReadItems(n, n).empty());
  }
}

}  // namespace
}  // namespace shardrec
