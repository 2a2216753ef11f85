#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "common/crc32c.h"
#include "common/file_util.h"
#include "retrieval/faiss_index.h"
#include "common/rng.h"
#include "distributed/inprocess.h"
#include "io/export_format.h"
#include "io/synth.h"
#include "retrieval/export_index.h"
#include "serve/index_build.h"
#include "tests/test_util.h"
#include "serve/export.h"
#include "train/trainer.h"

namespace shardrec {
namespace {

class ExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    SynthOptions so;
    so.users = 300;
    so.items = 500;
    so.events = 4500;
    GenerateSynthetic(dir_->File("s.h5"), so);
    TrainOptions o;
    o.data = dir_->File("s.h5");
    o.run_dir = dir_->File("run");
    o.max_steps = 10;
    o.batch_size = 64;
    o.eval_every = 0;
    o.model = Model();
    RunRanks(1, [&](Communicator& c) { Train(o, c); });
  }
  static void TearDownTestSuite() { delete dir_; }
  static ModelConfig Model() {
    ModelConfig m;
    m.dim = 16;
    m.blocks = 1;
    m.max_len = 10;
    m.dropout = 0;
    return m;
  }
  static std::string Export(int world, const std::string& root, const std::string& version) {
    std::string out;
    RunRanks(world, [&](Communicator& c) {
      ExportOptions e;
      e.run_dir = dir_->File("run");
      e.data = dir_->File("s.h5");
      e.root = root;
      e.version = version;
      e.model = Model();
      e.chunk = 64;  // several collective calls per rank
      out = ExportEmbeddings(e, c);
    });
    return out;
  }
  static testing::TempDir* dir_;
};
testing::TempDir* ExportTest::dir_ = nullptr;

std::unique_ptr<ShardedIndex> Open(const std::string& v, bool exact = false) {
  return OpenExportIndex(v, ReadExportManifest(v), exact);
}

// Every item vector of an export version, [items x dim] in dense-id order.
std::vector<float> ItemVectors(const std::string& v) {
  std::vector<float> out;
  for (const ExportShard& sh : ReadExportManifest(v).item_shards) {
    VectorShard s = ReadVectorShard(v + "/" + sh.file);
    out.insert(out.end(), s.vectors.begin(), s.vectors.end());
  }
  return out;
}

TEST_F(ExportTest, ShardsCoverEverythingAndAnyWorldSizeExportsTheSameVectors) {
  const std::string v1 = Export(1, dir_->File("exp"), "one");
  const std::string v3 = Export(3, dir_->File("exp"), "three");
  EXPECT_EQ(ResolveExport(dir_->File("exp")), v3);  // LATEST follows the newest publish
  ExportManifest m1 = ReadExportManifest(v1), m3 = ReadExportManifest(v3);
  EXPECT_EQ(m3.item_shards.size(), 3u);
  EXPECT_EQ(m3.num_items, 500);
  EXPECT_EQ(m3.num_users, 300);
  const std::vector<float> one = ItemVectors(v1), three = ItemVectors(v3);
  ASSERT_EQ(one.size(), 500u * 16);
  for (size_t i = 0; i < one.size(); ++i) ASSERT_NEAR(one[i], three[i], 1e-6);
  const ExportedItems items = ReadExportedItems(v3, m3);
  ASSERT_EQ(items.raw_ids.size(), 500u);
  for (int64_t i = 0; i < 500; ++i) {
    float norm = 0;
    for (int k = 0; k < 16; ++k) norm += one[i * 16 + k] * one[i * 16 + k];
    ASSERT_NEAR(norm, 1.0f, 1e-4) << "item " << i << " is not L2-normalised";
    ASSERT_EQ(items.raw_ids[i], std::to_string(i + 1));
  }
  // Users: the same vectors from 1 and 3 ranks.
  VectorShard u1 = ReadVectorShard(v1 + "/users-0.h5");
  std::vector<float> u3;
  for (int r = 0; r < 3; ++r) {
    VectorShard s = ReadVectorShard(v3 + "/users-" + std::to_string(r) + ".h5");
    u3.insert(u3.end(), s.vectors.begin(), s.vectors.end());
  }
  ASSERT_EQ(u1.vectors.size(), u3.size());
  for (size_t i = 0; i < u3.size(); ++i) ASSERT_NEAR(u1.vectors[i], u3[i], 1e-5);
  testing::ExpectUserError([&] { Export(1, dir_->File("exp"), "one"); }, {"exists already"});
}

// The recall of one query by hand: the exact top 3 are 7 (0.9), 4 (0.8) and 2 (0.5).
TEST(Recall, CountsTheExactTopKAndTiesAtItsEdge) {
  const std::vector<Hit> exact = {{7, 0.9f}, {4, 0.8f}, {2, 0.5f}, {9, 0.4f}};
  const std::unordered_map<int64_t, float> score = {{7, 0.9f}, {4, 0.8f}, {2, 0.5f}, {9, 0.4f}, {5, 0.5f - 1e-7f}, {6, 0.49f}};
  EXPECT_DOUBLE_EQ(RecallAtK(exact, {{7, 0.9f}, {4, 0.8f}, {2, 0.5f}}, score, 3), 1.0);
  EXPECT_DOUBLE_EQ(RecallAtK(exact, {{7, 0.9f}, {9, 0.4f}, {6, 0.49f}}, score, 3), 1.0 / 3);
  // 5 ties the 3rd exact score in the last bits: found; 6 is 0.01 below it: not.
  EXPECT_DOUBLE_EQ(RecallAtK(exact, {{7, 0.9f}, {4, 0.8f}, {5, 0.5f}}, score, 3), 1.0);
  EXPECT_DOUBLE_EQ(RecallAtK(exact, {{7, 0.9f}, {4, 0.8f}, {6, 0.5f}}, score, 3), 2.0 / 3);
  // Only the first k hits count, each once; fewer exact items than k; nothing to find.
  EXPECT_DOUBLE_EQ(RecallAtK(exact, {{6, 0.9f}, {7, 0.9f}, {4, 0.8f}, {2, 0.5f}}, score, 3), 2.0 / 3);
  EXPECT_DOUBLE_EQ(RecallAtK(exact, {{7, 0.9f}, {7, 0.9f}, {4, 0.8f}}, score, 3), 2.0 / 3);
  EXPECT_DOUBLE_EQ(RecallAtK({{7, 0.9f}}, {{7, 0.9f}, {4, 0.8f}}, score, 3), 1.0);
  EXPECT_DOUBLE_EQ(RecallAtK({}, {}, score, 3), 1.0);
}

TEST_F(ExportTest, IndexSearchMatchesBruteForceAndRecallIsRecorded) {
  const std::string v = Export(2, dir_->File("exp2"), "v");
  IndexOptions o;
  o.factory = "Flat";
  IndexReport flat = BuildExportIndex(v, o);
  EXPECT_DOUBLE_EQ(flat.recall10, 1.0);
  EXPECT_EQ(flat.train_vectors, 0);
  // IVF trains on a sample of each shard (250 items); probing all 8 lists makes it exact.
  o.factory = "IVF8,Flat";
  o.train_vectors = 100;
  o.knobs.nprobe = 8;
  IndexReport ivf = BuildExportIndex(v, o);
  EXPECT_EQ(ivf.train_vectors, 2 * 100);
  EXPECT_DOUBLE_EQ(ivf.recall10, 1.0);
  EXPECT_EQ(ReadIndexManifest(v + "/" + ivf.dir).knobs.nprobe, 8) << "the knobs live with the index";
  // IVF-PQ with exact re-ranking ("RFlat"): 2 bytes a vector propose refine x k candidates.
  o.factory = "IVF8,PQ2x4,RFlat";
  o.knobs.refine = 1;
  const double rough = BuildExportIndex(v, o).recall10;
  o.knobs.refine = 8;
  IndexReport refined = BuildExportIndex(v, o);
  EXPECT_GT(refined.recall10, rough + 0.05) << "re-ranking 8x candidates recovers recall";
  EXPECT_GT(refined.recall10, 0.9);
  EXPECT_EQ(ReadIndexManifest(v + "/" + refined.dir).knobs.refine, 8);
  EXPECT_EQ(Open(v)->name(), "IVF8,PQ2x4,RFlat");
  o.factory = "HNSW16";
  IndexReport hnsw = BuildExportIndex(v, o);
  EXPECT_GT(hnsw.recall10, 0.9);
  ExportManifest m = ReadExportManifest(v);
  // Re-indexing writes a new generation beside the current one; the one before that goes.
  EXPECT_EQ(m.index_dir, "index.g5");
  EXPECT_EQ(hnsw.dir, "index.g5");
  EXPECT_FALSE(PathExists(v + "/index.g3"));
  EXPECT_TRUE(PathExists(v + "/index.g4/index-0.faiss"));
  EXPECT_TRUE(PathExists(v + "/index.g5/index-1.faiss"));
  const IndexManifest ix = ReadIndexManifest(v + "/index.g5");
  EXPECT_EQ(ix.factory, "HNSW16");
  EXPECT_DOUBLE_EQ(ix.recall10, hnsw.recall10);
  EXPECT_EQ(ix.queries, 300);
  ASSERT_EQ(ix.shards.size(), 2u);
  EXPECT_EQ(ix.shards[1].begin, m.item_shards[1].begin);
  // A reader that read the manifest naming generation 5 just before a re-index still finds every
  // file it names; a build that died after its rename (a stray later generation) is replaced.
  MakeDirs(v + "/index.g6");
  testing::WriteText(v + "/index.g6/stale", "x");
  o.factory = "Flat";
  BuildExportIndex(v, o);
  EXPECT_EQ(ReadExportManifest(v).index_dir, "index.g6");
  EXPECT_FALSE(PathExists(v + "/index.g6/stale"));
  EXPECT_NO_THROW(ReadIndexManifest(v + "/index.g5"));
  EXPECT_FALSE(PathExists(v + "/index.g4"));
  // Brute force oracle for a few queries (user vectors).
  auto idx = Open(v, /*exact=*/true);
  EXPECT_EQ(idx->name(), "exact");
  const std::vector<float> vectors = ItemVectors(v);
  VectorShard users = ReadVectorShard(v + "/users-0.h5");
  for (int q = 0; q < 20; ++q) {
    const float* qv = users.vectors.data() + q * 16;
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t i = 0; i < 500; ++i) {
      float s = 0;
      for (int k = 0; k < 16; ++k) s += qv[k] * vectors[i * 16 + k];
      if (i != 7) all.push_back({-s, i});
    }
    std::sort(all.begin(), all.end());
    auto hits = idx->Search(qv, 10, {7});
    ASSERT_EQ(hits.size(), 10u);
    for (int r = 0; r < 10; ++r) {
      EXPECT_EQ(hits[r].id, all[r].second) << "query " << q << " rank " << r;
      EXPECT_NEAR(hits[r].score, -all[r].first, 1e-5);
    }
  }
}

// Rows replaced and added in place keep the trained quantizer: with every list probed, the updated
// IVF index answers exactly as brute force over the new vectors; kinds that cannot replace rows say
// so and stay as they were.
TEST(FaissIndex, UpdateReplacesAndAddsRowsInPlace) {
  const int64_t n = 400, dim = 8;
  Rng rng(3);
  std::vector<float> v(static_cast<size_t>(n * dim));
  for (float& x : v) x = static_cast<float>(rng.Uniform() - 0.5);
  auto ivf = FaissIndex::Build("IVF8,Flat", {.nprobe = 8}, v, dim, 0, 1);
  std::vector<int64_t> ids;
  std::vector<float> changed;
  for (int64_t i = 0; i < n + 20; ++i) {  // every 7th row moves, 20 rows are added
    if (i < n && i % 7 != 0) continue;
    ids.push_back(i);
    for (int64_t k = 0; k < dim; ++k) changed.push_back(static_cast<float>(rng.Uniform() - 0.5));
  }
  std::vector<float> now = v;
  now.resize(static_cast<size_t>((n + 20) * dim));
  for (size_t j = 0; j < ids.size(); ++j) std::copy_n(changed.begin() + j * dim, dim, now.begin() + ids[j] * dim);
  ASSERT_TRUE(ivf->Update(ids, changed));
  EXPECT_EQ(ivf->size(), n + 20);
  for (int q = 0; q < 30; ++q) {
    const float* qv = now.data() + (q * 13) * dim;
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t i = 0; i < n + 20; ++i) all.push_back({-std::inner_product(qv, qv + dim, now.data() + i * dim, 0.0f), i});
    std::sort(all.begin(), all.end());
    const std::vector<Hit> hits = ivf->Search(qv, 5);
    ASSERT_EQ(hits.size(), 5u);
    for (int r = 0; r < 5; ++r) EXPECT_EQ(hits[r].id, all[r].second) << "query " << q << " rank " << r;
  }
  auto flat = FaissIndex::Build("Flat", {}, v, dim, 0, 1);
  EXPECT_FALSE(flat->Update(ids, changed));
  EXPECT_EQ(flat->size(), n);
}

TEST(IndexDirName, RoundTripsAndRejectsOtherNames) {
  int64_t gen = -1;
  for (int64_t g : {0, 1, 40}) {
    ASSERT_TRUE(ParseIndexDirName(IndexDirName(g), &gen)) << IndexDirName(g);
    EXPECT_EQ(gen, g);
  }
  for (const char* other : {"index.g", "index.g01", "index.gx", "index-0.faiss", ".index.g2.partial", "index.g2.old",
                            "index.g-1", "items-0.h5", "index.g99999999999999999999"}) {
    EXPECT_FALSE(ParseIndexDirName(other, nullptr)) << other;
  }
}

// A sharded search is the brute-force merge of its shards, exclusions included, for any split.
TEST(ShardedIndex, EqualsOneExactIndexOverTheSameRows) {
  constexpr int64_t n = 50, dim = 4;
  std::vector<float> all(n * dim);
  for (int64_t i = 0; i < n * dim; ++i) all[i] = static_cast<float>((i * 37 % 101) - 50) / 50.0f;
  auto whole = NewExactIndex(all, dim);
  std::vector<std::unique_ptr<VectorIndex>> shards;
  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 7}, {7, 7}, {7, 30}, {30, 50}}) {
    shards.push_back(NewExactIndex(std::vector<float>(all.begin() + b * dim, all.begin() + e * dim), dim));
  }
  ShardedIndex sharded(std::move(shards), {0, 7, 7, 30});
  EXPECT_EQ(sharded.size(), n);
  EXPECT_EQ(sharded.dim(), dim);
  const float q[dim] = {0.3f, -1.0f, 0.5f, 0.25f};
  std::vector<Hit> want = whole->Search(q, n);
  SortHits(want);
  auto got = sharded.Search(q, 12, {want[0].id, want[3].id});
  want.erase(want.begin() + 3);
  want.erase(want.begin());
  ASSERT_EQ(got.size(), 12u);
  for (size_t r = 0; r < got.size(); ++r) {
    EXPECT_EQ(got[r].id, want[r].id) << "rank " << r;
    EXPECT_FLOAT_EQ(got[r].score, want[r].score);
  }
  EXPECT_EQ(sharded.Search(q, 100).size(), static_cast<size_t>(n));
  // k + |exclude| near INT64_MAX does not overflow: every row but the excluded ones.
  EXPECT_EQ(sharded.Search(q, std::numeric_limits<int64_t>::max(), {want[0].id, want[1].id}).size(), static_cast<size_t>(n - 2));
  const auto many = sharded.SearchMany(q, 1, 12, {{want[0].id}}, 2);
  const auto one = sharded.Search(q, 12, {want[0].id});
  ASSERT_EQ(many[0].size(), one.size());
  for (size_t r = 0; r < one.size(); ++r) EXPECT_EQ(many[0][r].id, one[r].id) << "rank " << r;
}

// Writes `text` (a manifest) to `path` with one edit, signed again (so that the edited field's own
// check answers) or not.
void EditManifest(const std::string& path, const std::string& text, const std::string& from, const std::string& to, bool sign) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << text;
  std::string t = text.substr(0, at) + to + text.substr(at + from.size());
  if (sign) {
    const size_t key = t.rfind(", \"manifest_crc32c\": ");
    ASSERT_NE(key, std::string::npos) << t;
    t = t.substr(0, key) + ", \"manifest_crc32c\": " + std::to_string(Crc32c(t.data(), key)) + "}\n";
  }
  testing::WriteText(path, t);
}

TEST_F(ExportTest, DamagedFilesAndUnfinishedVersionsAreNeverServed) {
  const std::string v = Export(1, dir_->File("exp3"), "good");
  // An export that died before publishing leaves only a hidden partial directory: LATEST still
  // names the good version.
  MakeDirs(dir_->File("exp3/.next.partial"));
  EXPECT_EQ(ResolveExport(dir_->File("exp3")), v);
  const std::string items = ReadFileToString(v + "/items-0.h5");
  std::string bytes = items;
  bytes[bytes.size() / 3] ^= 0x11;
  testing::WriteText(v + "/items-0.h5", bytes);
  testing::ExpectUserError([&] { Open(v); }, {"items-0.h5", "checksum mismatch"});
  // Index files are covered by their generation's manifest: a flipped byte or a truncation names
  // the file.
  testing::WriteText(v + "/items-0.h5", items);
  IndexOptions o;
  o.factory = "HNSW8";
  BuildExportIndex(v, o);
  const std::string ix = v + "/index.g1/index-0.faiss";
  const std::string good = ReadFileToString(ix);
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;
  testing::WriteText(ix, flipped);
  testing::ExpectUserError([&] { Open(v); }, {"index.g1/index-0.faiss", "checksum mismatch"});
  EXPECT_EQ(Open(v, /*exact=*/true)->name(), "exact") << "exact search does not read the index";
  testing::WriteText(ix, good.substr(0, good.size() / 2));
  testing::ExpectUserError([&] { Open(v); }, {"index.g1/index-0.faiss", "truncated"});
  testing::WriteText(ix, good);
  auto idx = Open(v);
  EXPECT_EQ(idx->name(), "HNSW8");
  EXPECT_EQ(idx->size(), 500);
  // The generation's manifest is checked as strictly: its factory against the index it names, its
  // knobs, its own checksum.
  const std::string gen = v + "/index.g1/manifest.json", gen_text = ReadFileToString(gen);
  EditManifest(gen, gen_text, R"("factory": "HNSW8")", R"("factory": "Flat")", /*sign=*/true);
  testing::ExpectUserError([&] { Open(v); }, {"index.g1/index-0.faiss: the index is not a 'Flat' index"});
  EditManifest(gen, gen_text, R"("factory": "HNSW8")", R"("factory": "HNSW32")", /*sign=*/true);
  testing::ExpectUserError([&] { Open(v); }, {"index.g1/index-0.faiss: the index is not a 'HNSW32' index"});
  EditManifest(gen, gen_text, R"("nprobe": 32)", R"("nprobe": -1)", /*sign=*/true);
  testing::ExpectUserError([&] { Open(v); }, {"index.g1/manifest.json: search: nprobe: -1 is not in [1, 1048576]"});
  EditManifest(gen, gen_text, R"("factory": "HNSW8")", R"("factory": "HNSW9")", /*sign=*/false);
  testing::ExpectUserError([&] { Open(v); }, {"index.g1/manifest.json: the manifest's own checksum does not match"});
  testing::WriteText(gen, gen_text);
  testing::ExpectUserError([&] { ResolveExport(dir_->File("nothing")); }, {"neither an export version"});
  // A manifest whose item shards leave a gap is refused by name.
  ExportManifest m = ReadExportManifest(v);
  ASSERT_EQ(m.item_shards.size(), 1u);
  m.item_shards[0].begin = 1;
  WriteExportManifest(v, m);
  testing::ExpectUserError([&] { Open(v, /*exact=*/true); },
                           {"manifest.json: item_shards[0] covers [1, 500); the shards must cover [0, 500) in order"});
  // A shard names one of the version's own (verified) files and rows within the catalogue.
  m.item_shards[0].begin = 0;
  WriteExportManifest(v, m);
  const std::string text = ReadFileToString(v + "/manifest.json");
  auto edit = [&](const std::string& from, const std::string& to, bool sign) { EditManifest(v + "/manifest.json", text, from, to, sign); };
  auto with = [&](const std::string& from, const std::string& to) { edit(from, to, /*sign=*/true); };
  // The manifest checks itself: one flipped bit anywhere in it, or the checksum gone, is refused.
  edit(R"("normalization": "l2")", R"("normalization": "m2")", /*sign=*/false);
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"manifest.json: the manifest's own checksum does not match"});
  edit(R"(, "manifest_crc32c": )", R"(, "manifest_crc32d": )", /*sign=*/false);
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"manifest.json: no manifest_crc32c (format 3"});
  // The version is its directory's name.
  with(R"("version": "good")", R"("version": "other")");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"version: 'other' is not its directory's name 'good'"});
  with(R"("file": "items-0.h5")", R"("file": "../../outside.h5")");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"item_shards: '../../outside.h5' has no entry in files"});
  with(R"("begin": 0, "end": 500)", R"("begin": 0, "end": 501)");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"item_shards: rows [0, 501) are not within [0, 500)"});
  // Fields a reader acts on are checked, so a flipped bit does not pass for another meaning.
  with(R"("normalization": "l2")", R"("normalization": "m2")");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"manifest.json", "normalization: 'm2' is not l2 or none"});
  with(R"("metric": "inner_product")", R"("metric": "inner_produce")");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"metric: 'inner_produce' is not inner_product"});
  with(R"("dim": 16)", R"("dim": -16)");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"dim: -16 is not >= 1"});
  with(R"("version": "good")", R"("version": "LATEST")");
  testing::ExpectUserError([&] { ReadExportManifest(v); }, {"version: 'LATEST' is not a version name"});
}

}  // namespace
}  // namespace shardrec
