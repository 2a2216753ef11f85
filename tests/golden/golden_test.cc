// Golden files: small files of every format version, committed under tests/golden/. Readers of
// this build must keep reading them (a format change bumps format_version and adds new goldens);
// the dataset writer must keep producing the same bytes. Regenerate with
// SHARDREC_UPDATE_GOLDEN=1 build/tests/golden_test (and say why in the commit).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/file_util.h"
#include "distributed/inprocess.h"
#include "io/convert.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "io/h5.h"
#include "retrieval/export_index.h"
#include "serve/index_build.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"
#include "serve/export.h"
#include "train/trainer.h"
#include "model/catalogue.h"

namespace shardrec {
namespace {

const std::string kGolden = std::string(SHARDREC_SOURCE_DIR) + "/tests/golden";
bool Update() { return std::getenv("SHARDREC_UPDATE_GOLDEN") != nullptr; }

// The inputs every golden file is made from.
std::string MakeDataset(const testing::TempDir& tmp) {
  // A fixed directory name: it is recorded in the file's `source` attribute.
  const std::string in = tmp.File("ml-golden");
  MakeDirs(in);
  struct Dir {
    std::string p;
    std::string File(const std::string& n) const { return p + "/" + n; }
    const std::string& path() const { return p; }
  } dir{in};
  testing::WriteText(dir.File("u.data"),
                     "1\t10\t5\t100\n1\t20\t4\t200\n1\t30\t3\t300\n1\t40\t5\t400\n"
                     "2\t20\t4\t150\n2\t30\t5\t250\n2\t50\t2\t350\n"
                     "3\t10\t1\t120\n3\t40\t4\t220\n3\t50\t4\t320\n3\t20\t5\t420\n");
  testing::WriteText(dir.File("u.genre"), "Action|0\nDrama|1\n");
  testing::WriteText(dir.File("u.item"),
                     "10|Ten (1990)|x||u|1|0\n20|Twenty (1991)|x||u|0|1\n30|Thirty (1992)|x||u|1|1\n"
                     "40|Forty (1993)|x||u|0|0\n50|Fifty (1994)|x||u|1|0\n");
  ConvertOptions o;
  o.format = "movielens";
  ConvertToDataset(dir.path(), dir.File("dataset_v1.h5"), o);
  return dir.File("dataset_v1.h5");
}

ModelConfig TinyModel() {
  ModelConfig m;
  m.dim = 4;
  m.blocks = 1;
  m.heads = 1;
  m.max_len = 4;
  m.dropout = 0;
  m.time_buckets = 4;
  m.context = false;  // the golden checkpoint predates context features
  return m;
}

TEST(Golden, DatasetV1ReadsAndTheWriterIsStable) {
  testing::TempDir dir;
  const std::string fresh = MakeDataset(dir);
  const std::string golden = kGolden + "/dataset_v1.h5";
  if (Update()) testing::WriteText(golden, ReadFileToString(fresh));
  auto ds = Dataset::Open(golden);
  EXPECT_EQ(ds->info().format_version, 1);
  EXPECT_EQ(ds->info().num_users, 3);
  EXPECT_EQ(ds->info().num_items, 5);
  EXPECT_EQ(ds->info().num_events, 11);
  EXPECT_EQ(ds->user_offsets(), (std::vector<int64_t>{0, 4, 7, 11}));
  EXPECT_EQ(ds->ReadItems(7, 11), (std::vector<int32_t>{0, 3, 4, 1}));
  EXPECT_EQ(ds->ReadItemTitles(2, 3)[0], "Thirty (1992)");
  EXPECT_EQ(ds->ReadCategoryNames(), (std::vector<std::string>{"Action", "Drama"}));
  EXPECT_TRUE(ReadFileToString(fresh) == ReadFileToString(golden)) << "the dataset writer changed its bytes";
  EXPECT_EQ(ds->ItemIdsFingerprint().size(), 16u);
}

// A dataset written before fingerprints were stored reads as before, and the fingerprints computed
// from its contents equal the ones the writer stores now for the same data.
TEST(Golden, DatasetV1WithoutFingerprintsGetsTheWritersOnes) {
  testing::TempDir dir;
  auto old = Dataset::Open(kGolden + "/dataset_v1_before_fingerprints.h5");
  auto now = Dataset::Open(MakeDataset(dir));
  EXPECT_EQ(old->info().num_events, 11);
  EXPECT_EQ(old->ItemIdsFingerprint(), now->ItemIdsFingerprint());
  EXPECT_EQ(old->DataFingerprint(), now->DataFingerprint());
  EXPECT_NE(now->ItemIdsFingerprint(), now->DataFingerprint());
}

// The tiny model trained for two steps on the golden dataset (makes the golden checkpoint/export).
TrainOptions TinyTraining(const std::string& data, const std::string& run_dir) {
  TrainOptions o;
  o.data = data;
  o.run_dir = run_dir;
  o.max_steps = 2;
  o.batch_size = 2;
  o.eval_every = 0;
  o.model = TinyModel();
  return o;
}

TEST(Golden, CheckpointV1Loads) {
  const std::string golden = kGolden + "/checkpoint_v1";
  testing::TempDir dir;
  const std::string data = MakeDataset(dir);
  if (Update()) {
    const TrainOptions o = TinyTraining(data, dir.File("run"));
    RunRanks(2, [&](Communicator& c) { Train(o, c); });
    RemoveAll(golden);
    ASSERT_EQ(testing::RunCommand("cp -r " + ListCheckpoints(dir.File("run")).back() + " " + golden).exit_code, 0);
  }
  VerifyCheckpoint(golden);
  RunRanks(1, [&](Communicator& c) {
    const ItemCatalog cat = LoadItemCatalog(*Dataset::Open(data));
    TwoTowerModel model(TinyModel(), cat, PlanItemTables(TinyModel(), cat, c), &c, 1);
    TrainerState state;
    LoadCheckpoint(golden, model, nullptr, &state, c);
    EXPECT_EQ(state.step, 2);
    // Rows came from two ranks' files into one shard: every saved row must be where it belongs.
    at::Tensor w = model.embeddings().LocalWeights("item_id");
    int64_t checked = 0;
    for (int r = 0; r < 2; ++r) {
      h5::File f = h5::File::Open(golden + "/embeddings-rank" + std::to_string(r) + ".h5");
      if (!f.Exists("/tables/item_id/rows")) continue;
      auto rows = f.ReadAll<int64_t>("/tables/item_id/rows");
      auto vec = f.ReadAll<float>("/tables/item_id/vectors");
      const int64_t cb = *f.GetIntAttr("/tables/item_id", "col_begin"), ce = *f.GetIntAttr("/tables/item_id", "col_end");
      for (size_t i = 0; i < rows.size(); ++i) {
        for (int64_t c2 = cb; c2 < ce; ++c2, ++checked) EXPECT_EQ(w[rows[i]][c2].item<float>(), vec[i * (ce - cb) + (c2 - cb)]);
      }
    }
    EXPECT_EQ(checked, 5 * 4) << "every cell of the 5 x 4 item table is in some rank's file";
  });
}

// The golden export's catalogue (raw ids, titles) and search: each item's own vector finds itself
// first (normalised vectors, inner product).
void ExpectGoldenItems(const std::string& golden, const ExportManifest& m, const VectorIndex& idx) {
  const ExportedItems items = ReadExportedItems(golden, m);
  EXPECT_EQ(items.raw_ids[2], "30");
  EXPECT_EQ(items.titles[4], "Fifty (1994)");
  VectorShard v = ReadVectorShard(golden + "/" + m.item_shards[0].file);
  ASSERT_EQ(v.ids.size(), 5u);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(idx.Search(v.vectors.data() + i * 4, 1)[0].id, i);
}

// Format 1 named its index files and search knobs in the export's manifest: still read, the index
// ignored (exact search answers, with a warning) until `shardrec index` builds a generation.
TEST(Golden, ExportV1OpensAndSearchesExactly) {
  const std::string golden = kGolden + "/export_v1";
  const ExportManifest m = ReadExportManifest(golden);
  EXPECT_EQ(m.format_version, 1);
  EXPECT_EQ(m.num_items, 5);
  EXPECT_TRUE(m.legacy_index);
  EXPECT_EQ(m.index_dir, "");
  auto idx = OpenExportIndex(golden, m);
  EXPECT_EQ(idx->name(), "exact");
  ExpectGoldenItems(golden, m, *idx);
}

// Format 2: the index is a generation directory; no checksum of the manifest itself, and the
// version is taken from the directory's name.
TEST(Golden, ExportV2OpensAndSearches) {
  const std::string golden = kGolden + "/export_v2";
  const ExportManifest m = ReadExportManifest(golden);
  EXPECT_EQ(m.format_version, 2);
  EXPECT_EQ(m.version, "export_v2");
  EXPECT_EQ(m.num_items, 5);
  EXPECT_EQ(m.index_dir, "index.g1");
  auto idx = OpenExportIndex(golden, m);
  EXPECT_EQ(idx->name(), "Flat");
  ExpectGoldenItems(golden, m, *idx);
}

// Format 3: the manifest checks itself and names its directory (a root's version "golden").
TEST(Golden, ExportV3OpensAndSearches) {
  const std::string golden = kGolden + "/export_v3/golden";
  if (Update()) {
    testing::TempDir dir;
    const std::string data = MakeDataset(dir);
    const TrainOptions o = TinyTraining(data, dir.File("run"));
    RunRanks(1, [&](Communicator& c) {
      Train(o, c);
      ExportOptions e;
      e.run_dir = o.run_dir;
      e.data = data;
      e.root = dir.File("exp");
      e.version = "golden";
      e.model = TinyModel();
      ExportEmbeddings(e, c);
    });
    IndexOptions io;
    io.factory = "Flat";
    BuildExportIndex(dir.File("exp/golden"), io);
    RemoveAll(golden);
    MakeDirs(kGolden + "/export_v3");
    ASSERT_EQ(testing::RunCommand("cp -r " + dir.File("exp/golden") + " " + golden).exit_code, 0);
  }
  const ExportManifest m = ReadExportManifest(golden);
  EXPECT_EQ(m.format_version, 3);
  EXPECT_EQ(m.version, "golden");
  EXPECT_EQ(m.num_items, 5);
  EXPECT_EQ(m.index_dir, "index.g1");
  const IndexManifest ix = ReadIndexManifest(golden + "/" + m.index_dir);
  EXPECT_EQ(ix.factory, "Flat");
  EXPECT_EQ(ix.knobs.nprobe, 32);
  auto idx = OpenExportIndex(golden, m);
  EXPECT_EQ(idx->name(), "Flat");
  ExpectGoldenItems(golden, m, *idx);
}

}  // namespace
}  // namespace shardrec
