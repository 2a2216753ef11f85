#include "io/reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "io/synth.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

using testing::TempDir;

// Users with lengths 1..8 and items = 100*user + position, timestamps = position + 1.
std::string WriteLadder(const TempDir& dir) {
  const std::string path = dir.File("ladder.h5");
  DatasetWriterOptions o;
  o.timestamps = true;
  auto w = DatasetWriter::Create(path, o);
  for (int u = 0; u < 8; ++u) {
    std::vector<int32_t> items;
    std::vector<int64_t> ts;
    for (int k = 0; k <= u; ++k) {
      items.push_back(100 * u + k);
      ts.push_back(k + 1);
    }
    w->AddUser(std::to_string(u), items, ts);
  }
  for (int i = 0; i < 800; ++i) w->AddItem(std::to_string(i));
  w->Finish();
  return path;
}

// A synthetic dataset at dir/s.h5.
void WriteSynthetic(const TempDir& dir, int64_t users, int64_t items, int64_t events) {
  SynthOptions so;
  so.users = users;
  so.items = items;
  so.events = events;
  GenerateSynthetic(dir.File("s.h5"), so);
}

std::vector<Batch> ReadAll(const std::string& path, ReaderOptions o) {
  SequenceReader r(path, o);
  std::vector<Batch> out;
  while (auto b = r.Next()) out.push_back(std::move(*b));
  return out;
}

TEST(Reader, LeaveOneOutSplits) {
  TempDir dir;
  const std::string path = WriteLadder(dir);
  ReaderOptions o;
  o.shuffle = false;
  o.global_batch_size = 100;
  o.max_len = 100;
  // Train: users with n >= 4 (train part >= 2) and the train-only user with n == 2.
  o.split = Split::kTrain;
  auto train = ReadAll(path, o);
  ASSERT_EQ(train.size(), 1u);
  EXPECT_EQ(train[0].users, (std::vector<int64_t>{1, 3, 4, 5, 6, 7}));
  EXPECT_EQ(train[0].lengths, (std::vector<int32_t>{2, 2, 3, 4, 5, 6}));
  const Batch& b = train[0];
  EXPECT_EQ(b.width, 6);
  // user 1 (n=2, train-only): both events; user 7: events 0..5 (6 and 7 are valid/test).
  EXPECT_EQ(std::vector<int64_t>(b.items.begin(), b.items.begin() + 6),
            (std::vector<int64_t>{100, 101, -1, -1, -1, -1}));
  EXPECT_EQ(std::vector<int64_t>(b.items.begin() + 30, b.items.end()),
            (std::vector<int64_t>{700, 701, 702, 703, 704, 705}));
  EXPECT_EQ(std::vector<int64_t>(b.timestamps.begin(), b.timestamps.begin() + 3),
            (std::vector<int64_t>{1, 2, 0}));
  EXPECT_TRUE(b.targets.empty());

  o.split = Split::kValid;
  auto valid = ReadAll(path, o);
  EXPECT_EQ(valid[0].users, (std::vector<int64_t>{2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(valid[0].targets, (std::vector<int64_t>{201, 302, 403, 504, 605, 706}));
  EXPECT_EQ(valid[0].lengths, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));

  o.split = Split::kTest;
  auto test = ReadAll(path, o);
  EXPECT_EQ(test[0].targets, (std::vector<int64_t>{202, 303, 404, 505, 606, 707}));
  EXPECT_EQ(test[0].lengths, (std::vector<int32_t>{2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(test[0].items[0], 200);
}

TEST(Reader, TruncatesToMostRecentEvents) {
  TempDir dir;
  const std::string path = WriteLadder(dir);
  ReaderOptions o;
  o.shuffle = false;
  o.max_len = 2;
  o.split = Split::kTest;
  auto test = ReadAll(path, o);
  // user 7: input events 0..6, keep the last 2: 705, 706; target 707.
  const Batch& b = test[0];
  EXPECT_EQ(b.width, 2);
  EXPECT_EQ(std::vector<int64_t>(b.items.end() - 2, b.items.end()), (std::vector<int64_t>{705, 706}));
  o.split = Split::kTrain;  // train keeps max_len + 1 (inputs and shifted targets)
  o.pad_to_max_len = true;
  auto train = ReadAll(path, o);
  EXPECT_EQ(train[0].width, 3);
  EXPECT_EQ(std::vector<int64_t>(train[0].items.end() - 3, train[0].items.end()),
            (std::vector<int64_t>{703, 704, 705}));
}

TEST(Reader, ShardsConcatenateToTheSingleProcessBatchForAnyWorldSize) {
  TempDir dir;
  WriteSynthetic(dir, 301, 400, 4000);
  for (auto [split, bucket] : {std::pair{Split::kTrain, int64_t{0}}, std::pair{Split::kTest, int64_t{0}},
                                std::pair{Split::kTrain, int64_t{3}}}) {
    SCOPED_TRACE(std::string(SplitName(split)) + " bucket_batches " + std::to_string(bucket));
    ReaderOptions o;
    o.split = split;
    o.global_batch_size = 64;
    o.max_len = 8;
    o.seed = 3;
    o.bucket_batches = bucket;
    auto whole = ReadAll(dir.File("s.h5"), o);
    for (int world : {2, 3, 4, 7}) {
      std::vector<std::vector<Batch>> pieces;
      for (int r = 0; r < world; ++r) {
        ReaderOptions ro = o;
        ro.rank = r;
        ro.world_size = world;
        pieces.push_back(ReadAll(dir.File("s.h5"), ro));
        ASSERT_EQ(pieces.back().size(), whole.size()) << "every rank sees every global batch";
      }
      for (size_t b = 0; b < whole.size(); ++b) {
        std::vector<int64_t> users, targets;
        std::vector<int32_t> lengths;
        int64_t positions = 0;
        for (int32_t len : whole[b].lengths) positions += split == Split::kTrain ? len - 1 : 0;
        for (int r = 0; r < world; ++r) {
          const Batch& p = pieces[r][b];
          EXPECT_EQ(p.global_positions, positions) << "every rank knows the global batch's positions";
          EXPECT_EQ(p.index, static_cast<int64_t>(b));
          EXPECT_EQ(p.global_rows, whole[b].rows);
          EXPECT_EQ(p.row_offset, static_cast<int64_t>(users.size()));
          users.insert(users.end(), p.users.begin(), p.users.end());
          targets.insert(targets.end(), p.targets.begin(), p.targets.end());
          lengths.insert(lengths.end(), p.lengths.begin(), p.lengths.end());
          // Row contents equal the single-process row of the same user.
          for (int64_t i = 0; i < p.rows; ++i) {
            const int64_t g = p.row_offset + i;
            for (int32_t k = 0; k < p.lengths[i]; ++k) {
              ASSERT_EQ(p.items[i * p.width + k], whole[b].items[g * whole[b].width + k]);
            }
          }
        }
        EXPECT_EQ(users, whole[b].users);
        EXPECT_EQ(targets, whole[b].targets);
        EXPECT_EQ(lengths, whole[b].lengths);
      }
    }
  }
}

TEST(Reader, LengthBucketingCoversEveryUserOnceAndCutsPadding) {
  TempDir dir;
  WriteSynthetic(dir, 301, 400, 9000);
  ReaderOptions o;
  o.global_batch_size = 16;
  o.max_len = 50;
  o.seed = 4;
  auto cells = [](const std::vector<Batch>& batches) {
    int64_t n = 0;
    for (const auto& b : batches) n += b.rows * b.width;
    return n;
  };
  const auto plain = ReadAll(dir.File("s.h5"), o);
  o.bucket_batches = 8;
  const auto bucketed = ReadAll(dir.File("s.h5"), o);
  ASSERT_EQ(bucketed.size(), plain.size());
  std::multiset<int64_t> a, b;
  for (const auto& x : plain) a.insert(x.users.begin(), x.users.end());
  for (size_t i = 0; i < bucketed.size(); ++i) {
    b.insert(bucketed[i].users.begin(), bucketed[i].users.end());
    // Full batches everywhere but the last one (batch i is rows [16 i, 16 i + 16) of the order).
    EXPECT_EQ(bucketed[i].rows, i + 1 < bucketed.size() ? 16 : plain.back().rows);
  }
  EXPECT_EQ(a, b) << "every user once per epoch";
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), a.size());
  EXPECT_LT(cells(bucketed), 0.7 * cells(plain)) << "sorted windows leave little padding";
  // Deterministic per (seed, epoch); another epoch gives other batches.
  EXPECT_EQ(ReadAll(dir.File("s.h5"), o)[3].users, bucketed[3].users);
  SequenceReader r(dir.File("s.h5"), o);
  r.StartEpoch(1);
  EXPECT_NE(r.Next()->users, bucketed[0].users);
}

TEST(Reader, EmptyPiecesWhenTheLastBatchIsShort) {
  TempDir dir;
  const std::string path = WriteLadder(dir);
  ReaderOptions o;
  o.split = Split::kTest;  // 6 users
  o.global_batch_size = 4;
  o.world_size = 4;
  o.rank = 0;
  auto b0 = ReadAll(path, o);
  o.rank = 3;
  auto b3 = ReadAll(path, o);
  ASSERT_EQ(b0.size(), 2u);
  ASSERT_EQ(b3.size(), 2u);
  // Last global batch has 2 rows over 4 ranks: rank 0 gets 0 rows, rank 3 gets 1.
  EXPECT_EQ(b0[1].rows, 0);
  EXPECT_TRUE(b0[1].users.empty());
  EXPECT_EQ(b3[1].rows, 1);
  o.drop_last = true;
  EXPECT_EQ(ReadAll(path, o).size(), 1u);
}

TEST(Reader, ShuffleIsDeterministicPerSeedAndEpoch) {
  TempDir dir;
  WriteSynthetic(dir, 500, 300, 3000);
  ReaderOptions o;
  o.global_batch_size = 500;
  o.seed = 5;
  SequenceReader a(dir.File("s.h5"), o), b(dir.File("s.h5"), o);
  auto order = [](SequenceReader& r, int64_t epoch) {
    r.StartEpoch(epoch);
    return r.Next()->users;
  };
  auto e0 = order(a, 0);
  EXPECT_EQ(e0, order(b, 0));
  auto e1 = order(a, 1);
  EXPECT_NE(e0, e1);
  EXPECT_EQ(std::set<int64_t>(e0.begin(), e0.end()), std::set<int64_t>(e1.begin(), e1.end()));
  EXPECT_EQ(e1, order(b, 1));
  o.seed = 6;
  SequenceReader c(dir.File("s.h5"), o);
  EXPECT_NE(e0, order(c, 0));
}

// A user sample: the requested number of distinct users of the split, in dense-id order, the same
// set for any world size and batch size, a subset of the full split's users, and each user's
// target and history as the full reader gives them.
TEST(Reader, UserSampleIsASeededSubsetOfTheSplit) {
  TempDir dir;
  WriteSynthetic(dir, 301, 400, 4000);
  ReaderOptions o;
  o.split = Split::kTest;
  o.shuffle = false;
  o.global_batch_size = 50;
  o.max_len = 8;
  std::map<int64_t, int64_t> target;
  for (const Batch& b : ReadAll(dir.File("s.h5"), o)) {
    for (int64_t i = 0; i < b.rows; ++i) target[b.users[i]] = b.targets[i];
  }
  ASSERT_GT(target.size(), 200u);
  auto sample = [&](int world, int64_t batch) {
    std::vector<int64_t> users;
    for (int r = 0; r < world; ++r) {
      ReaderOptions ro = o;
      ro.sample_users = 120;
      ro.rank = r;
      ro.world_size = world;
      ro.global_batch_size = batch;
      for (const Batch& b : ReadAll(dir.File("s.h5"), ro)) {
        for (int64_t i = 0; i < b.rows; ++i) {
          users.push_back(b.users[i]);
          EXPECT_EQ(b.targets[i], target.at(b.users[i]));
        }
      }
    }
    std::sort(users.begin(), users.end());
    return users;
  };
  const std::vector<int64_t> one = sample(1, 50);
  ASSERT_EQ(one.size(), 120u);
  EXPECT_EQ(std::set<int64_t>(one.begin(), one.end()).size(), 120u);
  EXPECT_EQ(sample(3, 32), one);
  // Not simply the first users.
  EXPECT_GT(one.back(), 150);
  // A sample as large as the split is the split.
  ReaderOptions all = o;
  all.sample_users = 100000;
  EXPECT_EQ(SequenceReader(dir.File("s.h5"), all).num_users(), static_cast<int64_t>(target.size()));
}

TEST(Reader, BadOptions) {
  TempDir dir;
  const std::string path = WriteLadder(dir);
  ReaderOptions o;
  o.rank = 2;
  o.world_size = 2;
  testing::ExpectUserError([&] { SequenceReader r(path, o); }, {"rank 2", "world size 2"});
  o = ReaderOptions();
  o.global_batch_size = 0;
  testing::ExpectUserError([&] { SequenceReader r(path, o); }, {"--batch-size"});
}

}  // namespace
}  // namespace shardrec
