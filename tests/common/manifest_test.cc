#include "common/manifest.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace shardrec {
namespace {

TEST(Manifest, RoundTripsDigestsAndNamesThePathInEveryError) {
  testing::TempDir dir;
  testing::WriteText(dir.File("a.h5"), "abc");
  std::map<std::string, FileDigest> files = {{"a.h5", DigestFile(dir.File("a.h5"))}};
  EXPECT_EQ(files["a.h5"].bytes, 3);
  EXPECT_EQ(files["a.h5"].crc32c, 0x364B3FB7u);  // CRC-32C("abc"), RFC 3720 test vectors' algorithm
  JsonObject m;
  m.Add("format", "shardrec.thing").Add("format_version", int64_t{1}).Add("step", int64_t{7})
      .Add("files", FileDigestsToJson(files));
  const std::string path = dir.File("manifest.json");
  WriteManifestFile(path, m);
  int64_t step = 0;
  std::map<std::string, FileDigest> back;
  ReadManifestFile(path, "shardrec.thing", 1, [&](const JsonValue& j) {
    step = j.at("step").integer();
    back = FileDigestsFromJson(j.at("files"));
  });
  EXPECT_EQ(step, 7);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back["a.h5"].bytes, 3);
  EXPECT_EQ(back["a.h5"].crc32c, files["a.h5"].crc32c);

  auto none = [](const JsonValue&) {};
  testing::ExpectUserError([&] { ReadManifestFile(path, "shardrec.other", 1, none); },
                           {path + ": not a shardrec.other manifest"});
  testing::ExpectUserError([&] { ReadManifestFile(path, "shardrec.thing", 2, none); },
                           {path + ": format_version 1 is not supported (this build reads 2)"});
  testing::ExpectUserError([&] { ReadManifestFile(path, "shardrec.thing", 1, [](const JsonValue& j) { j.at("world_size"); }); },
                           {path + ": JSON: missing key 'world_size'"});
  testing::WriteText(path, "{\"format\": \"shardrec.thing\", ");
  testing::ExpectUserError([&] { ReadManifestFile(path, "shardrec.thing", 1, none); }, {path, "invalid JSON"});
}

// A manifest lists files of its own directory: a path elsewhere, or a size or CRC out of range, is
// refused before any file is opened.
TEST(Manifest, FilesAreNamesInTheDirectoryWithSizesInRange) {
  testing::TempDir dir;
  testing::WriteText(dir.File("outside"), "secret");
  auto read = [&](const std::string& files) {
    testing::WriteText(dir.File("m/manifest.json"),
                       R"({"format": "shardrec.thing", "format_version": 1, "files": )" + files + "}");
    ReadVerifiedManifest(dir.File("m"), "shardrec.thing", 1, "a thing", [](const JsonValue&) {});
  };
  MakeDirs(dir.File("m"));
  testing::ExpectUserError([&] { read(R"({"../outside": {"bytes": 6, "crc32c": 1}})"); }, {"'../outside' is not a file name"});
  testing::ExpectUserError([&] { read(R"({"a": {"bytes": -1, "crc32c": 1}})"); }, {"out of range"});
  testing::ExpectUserError([&] { read(R"({"a": {"bytes": 1, "crc32c": 4294967296}})"); }, {"out of range"});
  testing::ExpectUserError([&] { read(R"([1])"); }, {"'files' is not an object"});
}

TEST(Manifest, StringsThatAreNotUtf8AreRefusedWhenWritten) {
  JsonObject o;
  testing::ExpectUserError([&] { o.Add("source", std::string_view("run\xe9", 4)); }, {"not valid UTF-8"});
}

}  // namespace
}  // namespace shardrec
