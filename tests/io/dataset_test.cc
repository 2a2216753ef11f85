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

}  // namespace
}  // namespace shardrec
