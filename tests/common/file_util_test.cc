#include "common/file_util.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <utility>
#include <vector>

#include "common/crc32c.h"
#include "common/error.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

TEST(AtomicOutput, CommitPublishesWholeFile) {
  testing::TempDir dir;
  const std::string final_path = dir.File("out.txt");
  {
    AtomicOutput out(final_path);
    testing::WriteText(out.temp_path(), "hello");
    EXPECT_FALSE(PathExists(final_path));  // invisible until committed
    out.Commit();
  }
  EXPECT_EQ(ReadFileToString(final_path), "hello");
  EXPECT_EQ(testing::ListDir(dir.path()).size(), 1u);
}

TEST(AtomicOutput, UncommittedLeavesNothingAndKeepsOldFile) {
  testing::TempDir dir;
  const std::string final_path = dir.File("out.txt");
  testing::WriteText(final_path, "old");
  {
    AtomicOutput out(final_path);
    testing::WriteText(out.temp_path(), "half-writ");
  }
  EXPECT_EQ(ReadFileToString(final_path), "old");
  EXPECT_EQ(testing::ListDir(dir.path()), std::vector<std::string>{"out.txt"});
}

TEST(AtomicOutput, Directories) {
  testing::TempDir dir;
  const std::string final_path = dir.File("v1");
  AtomicOutput out(final_path);
  MakeDirs(out.temp_path());
  testing::WriteText(out.temp_path() + "/a", "x");
  out.Commit();
  EXPECT_EQ(ReadFileToString(final_path + "/a"), "x");
}

// A second holder of a directory lock, here or in another process, is refused with the first
// holder's PID; the lock is free again once its holder is gone.
TEST(DirectoryLock, ExcludesASecondHolderAndNamesTheFirst) {
  testing::TempDir dir;
  const std::string run = dir.File("run");
  {
    DirectoryLock first(run, "a training run");
    EXPECT_TRUE(IsDirectory(run));
    testing::ExpectUserError([&] { DirectoryLock second(run, "a training run"); },
                             {run + " is in use by a training run", "process " + std::to_string(::getpid())});
    const auto other = testing::RunCommand("flock --nonblock " + run + "/.lock true");
    EXPECT_EQ(other.exit_code, 1) << "another process took the lock (or flock(1) is missing): " << other.output;
  }
  DirectoryLock again(run, "a training run");
  testing::ExpectUserError([&] { DirectoryLock on_a_file(run + "/.lock", "x"); }, {"exists and is not a directory"});
}

// The published CRC-32C check value, and a file digested block by block (it spans several 4 MiB
// blocks) equals the CRC of its bytes at once.
TEST(Files, DigestIsTheCrcOfTheWholeFileReadInBlocks) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32cExtend(Crc32c("1234", 4), "56789", 5), 0xE3069283u);
  testing::TempDir dir;
  std::string data(9u << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  WriteFileAtomically(dir.File("f"), data);
  const FileDigest d = DigestFile(dir.File("f"));
  EXPECT_EQ(d.bytes, static_cast<int64_t>(data.size()));
  EXPECT_EQ(d.crc32c, Crc32c(data.data(), data.size()));
  WriteFileAtomically(dir.File("empty"), "");
  EXPECT_EQ(DigestFile(dir.File("empty")).bytes, 0);
  EXPECT_EQ(DigestFile(dir.File("empty")).crc32c, 0u);
}

// The iSCSI test vectors (RFC 3720, B.4), and both implementations (the CPU's instruction where it
// has one; the tables) against a bit-at-a-time reference on every length and alignment up to 80
// bytes and a few large buffers, extended in two pieces at every split.
TEST(Files, Crc32cMatchesTheStandardVectorsAndABitwiseReference) {
  auto vector = [](auto byte) {
    std::vector<unsigned char> v(32);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<unsigned char>(byte(i));
    return v;
  };
  const std::pair<std::vector<unsigned char>, uint32_t> standard[] = {
      {vector([](size_t) { return 0; }), 0x8A9136AAu}, {vector([](size_t) { return 0xFF; }), 0x62A8AB43u},
      {vector([](size_t i) { return i; }), 0x46DD794Eu}, {vector([](size_t i) { return 31 - i; }), 0x113FDB5Cu}};
  for (const auto& [bytes, crc] : standard) {
    EXPECT_EQ(Crc32c(bytes.data(), bytes.size()), crc);
    EXPECT_EQ(Crc32cExtendPortable(0, bytes.data(), bytes.size()), crc);
  }
  auto bitwise = [](const unsigned char* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
  };
  std::vector<unsigned char> buf(1 << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>((i * 2654435761u) >> 11);
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 80; ++n) {
      const uint32_t want = bitwise(buf.data() + offset, n);
      ASSERT_EQ(Crc32c(buf.data() + offset, n), want) << offset << " " << n;
      ASSERT_EQ(Crc32cExtendPortable(0, buf.data() + offset, n), want) << offset << " " << n;
      for (size_t split = 0; split <= n; ++split) {
        ASSERT_EQ(Crc32cExtend(Crc32c(buf.data() + offset, split), buf.data() + offset + split, n - split), want);
      }
    }
  }
  for (size_t n : {size_t{4096}, size_t{65535}, buf.size() - 3}) {
    EXPECT_EQ(Crc32c(buf.data() + 3, n), bitwise(buf.data() + 3, n)) << n;
    EXPECT_EQ(Crc32cExtendPortable(0, buf.data() + 3, n), bitwise(buf.data() + 3, n)) << n;
  }
}

TEST(Files, ReadMissingFileNamesPath) {
  try {
    ReadFileToString("/nonexistent/dir/file.txt");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/file.txt"), std::string::npos);
  }
}

}  // namespace
}  // namespace shardrec
