// Stable identity across datasets: checkpoints record the id space of their rows; loading into
// other ids is an error unless rows are mapped by raw id (warm start, `--init-from`).
#include <gtest/gtest.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/rng.h"
#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "model/two_tower.h"
#include "tests/test_util.h"
#include "tests/train/invariance.h"
#include "train/checkpoint.h"
#include "model/catalogue.h"
#include "train/model_files.h"

namespace shardrec {
namespace {

// A dataset over `items` (raw ids, in row order), categories named by the item's raw id (so an
// item keeps its category across days), and `users` users with 12 events each, drawn from a seed.
void WriteDay(const std::string& path, const std::vector<std::string>& items, int users, uint64_t seed,
              const std::vector<std::string>& categories) {
  DatasetWriterOptions wo;
  wo.timestamps = true;
  wo.categories = true;
  auto w = DatasetWriter::Create(path, wo);
  Rng rng(seed);
  for (int u = 0; u < users; ++u) {
    std::vector<int32_t> ev;
    std::vector<int64_t> ts;
    while (ev.size() < 12) {
      const auto it = static_cast<int32_t>(rng.Below(items.size()));
      if (std::find(ev.begin(), ev.end(), it) == ev.end()) {
        ev.push_back(it);
        ts.push_back(1000 + 60 * static_cast<int64_t>(ev.size()));
      }
    }
    w->AddUser("u" + std::to_string(u), ev, ts);
  }
  for (const auto& id : items) {
    const std::string cat = "c" + std::to_string(std::stoi(id.substr(1)) % 5);
    const auto c = static_cast<int32_t>(std::find(categories.begin(), categories.end(), cat) - categories.begin());
    EXPECT_LT(c, static_cast<int32_t>(categories.size())) << id;
    w->AddItem(id, {}, std::vector<int32_t>{c});
  }
  w->SetCategoryNames(categories);
  w->Finish();
}

// One dataset of every saved row of `dir` by (table, global row), e.g. "state1".
std::map<std::string, std::vector<float>> ReadRows(const std::string& dir, const std::string& what) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& f : ListDirectory(dir)) {
    if (f.rfind("embeddings-rank", 0) != 0) continue;
    h5::File e = h5::File::Open(dir + "/" + f);
    const std::string g = "/tables/item_id";
    if (!e.Exists(g + "/" + what)) continue;
    const auto rows = e.ReadAll<int64_t>(g + "/rows");
    const auto v = e.ReadAll<float>(g + "/" + what);
    const size_t w = v.size() / std::max<size_t>(1, rows.size());
    // A column shard's slice goes to its columns (per-row state: one value, whatever the slice).
    const auto cb = static_cast<size_t>(*e.GetIntAttr(g, "col_begin")), ce = static_cast<size_t>(*e.GetIntAttr(g, "col_end"));
    const size_t at = w == ce - cb ? cb : 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      auto& row = out["item_id/" + std::to_string(rows[i])];
      row.resize(std::max(row.size(), at + w));
      std::copy(v.begin() + i * w, v.begin() + (i + 1) * w, row.begin() + at);
    }
  }
  return out;
}

class WarmStart : public ::testing::Test {
 protected:
  void SetUp() override {
    // Day 1: i0 .. i79. Day 2: i10 .. i79 in reverse order (every carried item moves row), i0 .. i9
    // retired, n100 .. n119 new; category names in another order, so their rows move too.
    for (int i = 0; i < 80; ++i) day1_.push_back("i" + std::to_string(i));
    for (int i = 79; i >= 10; --i) day2_.push_back("i" + std::to_string(i));
    for (int i = 100; i < 120; ++i) day2_.push_back("n" + std::to_string(i));
    WriteDay(dir_.File("day1.h5"), day1_, 200, 1, {"c0", "c1", "c2", "c3", "c4"});
    WriteDay(dir_.File("day2.h5"), day2_, 220, 2, {"c4", "c3", "c2", "c1", "c0"});
    TrainOptions o = Options("day1.h5", "run1");
    RunRanks(1, [&](Communicator& c) { Train(o, c); });
    ASSERT_FALSE(ListCheckpoints(dir_.File("run1")).empty());
    checkpoint_ = ListCheckpoints(dir_.File("run1")).back();
  }
  TrainOptions Options(const std::string& data, const std::string& run) {
    TrainOptions o = testing::InvarianceOptions(dir_.File(data), dir_.File(run), "full");
    o.max_steps = 12;
    o.model.embedding_optimizer.type = OptimizerType::kAdam;  // the richest sparse state
    return o;
  }
  // COLLECTIVE. A model for `data` as training builds it (the plan of `o`).
  static std::unique_ptr<TwoTowerModel> Build(const TrainOptions& o, Communicator& c) {
    auto ds = Dataset::Open(o.data);
    ItemCatalog cat = LoadItemCatalog(*ds);
    return std::make_unique<TwoTowerModel>(o.model, cat, PlanItemTables(o.model, cat, c), &c, o.seed);
  }
  // Warm-starts a day-2 model at `world` ranks from run1's model and saves it (no step taken).
  void WarmStartAndSave(int world, const std::string& sharding, const std::string& out) {
    TrainOptions o = Options("day2.h5", "unused");
    o.model.sharding = sharding;
    RunRanks(world, [&](Communicator& c) {
      auto m = Build(o, c);
      const LoadReport r = LoadCheckpoint(checkpoint_, *m, nullptr, nullptr, c, {.remap_by_raw_id = true});
      EXPECT_TRUE(r.remapped);
      EXPECT_EQ(r.items.carried, 70);
      EXPECT_EQ(r.items.fresh, 20);
      EXPECT_EQ(r.items.dropped, 10);
      EXPECT_EQ(r.categories.carried, 5);
      SaveCheckpoint(out, *m, nullptr, nullptr, c);
    });
  }
  std::vector<std::string> day1_, day2_;
  std::string checkpoint_;  // run1's last checkpoint (vectors and optimizer state)
  testing::TempDir dir_;
};

TEST_F(WarmStart, LoadingIntoOtherIdsWithoutMappingNamesBothFiles) {
  TrainOptions o = Options("day2.h5", "unused");
  testing::ExpectUserError(
      [&] {
        RunRanks(1, [&](Communicator& c) {
          auto m = Build(o, c);
          LoadCheckpoint(dir_.File("run1/model"), *m, nullptr, nullptr, c);
        });
      },
      {dir_.File("day1.h5"), dir_.File("day2.h5"), "other item ids", "--init-from"});
  // Resuming the day-1 run against day-2 data: the same error, and the run is untouched.
  TrainOptions resume = Options("day2.h5", "run1");
  resume.resume = true;
  resume.max_steps = 14;
  testing::ExpectUserError([&] { RunRanks(1, [&](Communicator& c) { Train(resume, c); }); },
                           {dir_.File("day1.h5"), dir_.File("day2.h5"), "other item ids"});
  // The same ids load as before (the fingerprint matches).
  RunRanks(1, [&](Communicator& c) {
    auto m = Build(Options("day1.h5", "unused"), c);
    EXPECT_FALSE(LoadCheckpoint(dir_.File("run1/model"), *m, nullptr, nullptr, c).remapped);
  });
}

// At step 0 of a warm start: a carried-over item's row is bitwise its day-1 row (wherever it moved),
// a new item's row is the one a fresh day-2 model starts with, the dense parameters are day 1's;
// and 1, 2 and 4 ranks under other plans give the same model.
TEST_F(WarmStart, RowsCarryOverByRawIdAtAnyWorldSize) {
  WarmStartAndSave(1, "auto", dir_.File("warm1"));
  const auto before = testing::ReadSavedModel(checkpoint_);
  const auto warm = testing::ReadSavedModel(dir_.File("warm1"));
  // A fresh day-2 model with the same seed: the initial rows of new ids.
  RunRanks(1, [&](Communicator& c) {
    auto m = Build(Options("day2.h5", "unused"), c);
    SaveCheckpoint(dir_.File("fresh"), *m, nullptr, nullptr, c);
  });
  const auto fresh = testing::ReadSavedModel(dir_.File("fresh"));
  int carried = 0, fresh_rows = 0;
  for (size_t row = 0; row < day2_.size(); ++row) {
    const std::string key = "item_id/" + std::to_string(row);
    const auto old = std::find(day1_.begin(), day1_.end(), day2_[row]);
    if (old != day1_.end()) {
      EXPECT_EQ(warm.at(key), before.at("item_id/" + std::to_string(old - day1_.begin()))) << day2_[row];
      ++carried;
    } else {
      EXPECT_EQ(warm.at(key), fresh.at(key)) << day2_[row];
      EXPECT_NE(warm.at(key), before.at("item_id/0"));
      ++fresh_rows;
    }
  }
  EXPECT_EQ(carried, 70);
  EXPECT_EQ(fresh_rows, 20);
  // Category "c3" is row 3 on day 1 and row 1 on day 2.
  EXPECT_EQ(warm.at("item_category/1"), before.at("item_category/3"));
  EXPECT_NE(warm.at("item_category/1"), fresh.at("item_category/1"));
  // Dense parameters carry over unchanged.
  std::vector<std::string> names;
  RunRanks(1, [&](Communicator& c) {
    for (auto& [name, p] : Build(Options("day2.h5", "unused"), c)->named_dense_parameters()) names.push_back(name);
  });
  ASSERT_GT(names.size(), 4u);
  EXPECT_EQ(testing::ReadDense(dir_.File("warm1"), names), testing::ReadDense(dir_.File("run1/model"), names));
  // The sparse optimizer's state moved with the rows (Adam's first moment, row i10).
  const auto state_before = ReadRows(checkpoint_, "state1"), state_warm = ReadRows(dir_.File("warm1"), "state1");
  const size_t row_i10 = std::find(day2_.begin(), day2_.end(), "i10") - day2_.begin();
  EXPECT_EQ(state_warm.at("item_id/" + std::to_string(row_i10)), state_before.at("item_id/10"));
  EXPECT_NE(state_before.at("item_id/10"), std::vector<float>(state_before.at("item_id/10").size(), 0.f));
  for (auto [world, sharding] : {std::pair{2, "row_wise"}, std::pair{4, "column_wise"}, std::pair{4, "table_wise"}}) {
    SCOPED_TRACE(std::to_string(world) + " ranks, " + sharding);
    const std::string out = dir_.File("warm" + std::to_string(world) + sharding);
    WarmStartAndSave(world, sharding, out);
    EXPECT_EQ(testing::ReadSavedModel(out), warm);
  }
}

// A model saved before context features existed warm-starts a model with them: its context rows
// are a fresh model's, every other dense parameter is the saved one. Loading it as the same model
// (no warm start) is still an error naming the parameter.
TEST_F(WarmStart, AModelWithoutContextWarmStartsOneWithFreshContextRows) {
  TrainOptions without = Options("day1.h5", "unused");
  without.model.context = false;
  RunRanks(1, [&](Communicator& c) {
    auto m = Build(without, c);
    at::NoGradGuard no_grad;
    for (auto& [name, p] : m->named_dense_parameters()) p.add_(1.0);  // unlike any fresh model
    SaveCheckpoint(dir_.File("old"), *m, nullptr, nullptr, c);
  });
  std::vector<std::string> names, kept;
  RunRanks(1, [&](Communicator& c) {
    auto m = Build(Options("day2.h5", "unused"), c);
    for (auto& [name, p] : m->named_dense_parameters()) names.push_back(name);
    SaveCheckpoint(dir_.File("fresh"), *m, nullptr, nullptr, c);
    const LoadReport r = LoadCheckpoint(dir_.File("old"), *m, nullptr, nullptr, c,
                                        {.remap_by_raw_id = true, .fresh_context = true});
    EXPECT_EQ(r.fresh_dense, std::vector<std::string>{"context.weight"});
    SaveCheckpoint(dir_.File("warm"), *m, nullptr, nullptr, c);
  });
  ASSERT_NE(std::find(names.begin(), names.end(), "context.weight"), names.end());
  for (const auto& n : names) {
    if (n != "context.weight") kept.push_back(n);
  }
  EXPECT_EQ(testing::ReadDense(dir_.File("warm"), {"context.weight"}), testing::ReadDense(dir_.File("fresh"), {"context.weight"}));
  EXPECT_EQ(testing::ReadDense(dir_.File("warm"), kept), testing::ReadDense(dir_.File("old"), kept));
  EXPECT_NE(testing::ReadDense(dir_.File("warm"), kept), testing::ReadDense(dir_.File("fresh"), kept));
  EXPECT_FALSE(SavedHasContext(dir_.File("old")));
  EXPECT_TRUE(SavedHasContext(dir_.File("warm")));
  testing::ExpectUserError(
      [&] {
        RunRanks(1, [&](Communicator& c) {
          auto m = Build(Options("day1.h5", "unused"), c);
          LoadCheckpoint(dir_.File("old"), *m, nullptr, nullptr, c);
        });
      },
      {"no parameter context.weight"});
  // Serving a catalogue (a remap that is not a warm start) does not invent context rows either.
  testing::ExpectUserError(
      [&] {
        RunRanks(1, [&](Communicator& c) {
          auto m = Build(Options("day2.h5", "unused"), c);
          LoadModelForCatalogue(*m, dir_.File("old"), c);
        });
      },
      {"no parameter context.weight"});
}

// Serving a later catalogue without retraining (export --add-items, query): a category the model
// never trained gets a zero row, not its random initial one, so it adds nothing to its items; the
// known categories keep their trained rows wherever they moved, at 1 and 2 ranks.
TEST_F(WarmStart, ACategoryNewToTheModelAddsNothing) {
  DatasetWriterOptions wo;
  wo.timestamps = true;
  wo.categories = true;
  {
    auto w = DatasetWriter::Create(dir_.File("later.h5"), wo);
    const std::vector<int32_t> ev = {0, 1, 2};
    const std::vector<int64_t> ts = {10, 20, 30};
    w->AddUser("u0", ev, ts);
    for (int i = 0; i < 80; ++i) w->AddItem("i" + std::to_string(i), {}, std::vector<int32_t>{i % 5});
    w->AddItem("n500", {}, std::vector<int32_t>{5});
    w->SetCategoryNames({"c0", "c1", "c2", "c3", "c4", "zz"});
    w->Finish();
  }
  const auto saved = testing::ReadSavedModel(dir_.File("run1/model"));
  for (int world : {1, 2}) {
    SCOPED_TRACE(std::to_string(world) + " ranks");
    TrainOptions o = Options("later.h5", "unused");
    o.model.sharding = world == 1 ? "auto" : "row_wise";
    RunRanks(world, [&](Communicator& c) {
      auto m = Build(o, c);
      EXPECT_EQ(LoadModelForCatalogue(*m, dir_.File("run1/model"), c), 1);
      SaveCheckpoint(dir_.File("later" + std::to_string(world)), *m, nullptr, nullptr, c);
    });
    const auto got = testing::ReadSavedModel(dir_.File("later" + std::to_string(world)));
    EXPECT_EQ(got.at("item_category/5"), std::vector<float>(got.at("item_category/5").size(), 0.f));
    for (int k = 0; k < 5; ++k) {
      const std::string key = "item_category/" + std::to_string(k);
      EXPECT_EQ(got.at(key), saved.at(key)) << key;
    }
  }
}

// Warm-started training (from the day-1 run directory: its newest checkpoint) at 1, 2 and 4 ranks
// trains the same model; a PREV that is nothing loadable is an error that leaves nothing behind.
TEST_F(WarmStart, TrainingFromAWarmStartIsWorldSizeInvariant) {
  std::map<int, TrainResult> results;
  for (int world : {1, 2, 4}) {
    TrainOptions o = Options("day2.h5", "warm" + std::to_string(world));
    o.init_from = dir_.File("run1");
    RunRanks(world, [&](Communicator& c) {
      TrainResult r = Train(o, c);
      if (c.rank() == 0) results[world] = r;
    });
  }
  for (int world : {2, 4}) {
    SCOPED_TRACE("world " + std::to_string(world));
    testing::ExpectSameTraining(results[1], results[world], dir_.File("warm1/model"),
                                dir_.File("warm" + std::to_string(world) + "/model"));
  }
  // It did start from day 1: a fresh day-2 run's first loss differs.
  TrainResult fresh;
  RunRanks(1, [&](Communicator& c) { fresh = Train(Options("day2.h5", "fresh"), c); });
  ASSERT_FALSE(fresh.losses.empty());
  EXPECT_NE(fresh.losses.front(), results[1].losses.front());
  TrainOptions bad = Options("day2.h5", "bad");
  bad.init_from = dir_.File("nothing-here");
  testing::ExpectUserError([&] { RunRanks(1, [&](Communicator& c) { Train(bad, c); }); },
                           {"--init-from", "nothing-here", "not a run directory"});
  EXPECT_FALSE(PathExists(dir_.File("bad")));
}

// --retired keep: the rows of items a warm start retires (i0 .. i9 on day 2) are saved with the
// run (retired.h5) and come back, bitwise with their optimizer state, when the items return on day
// 3 (i0 .. i4), at any world size; the ones still retired stay kept. Dropped, they come back as
// fresh rows. A warm-started training run saves the kept rows in its checkpoints and model.
TEST_F(WarmStart, RetiredRowsKeptComeBackWithTheirIds) {
  std::vector<std::string> day3 = day2_;
  for (int i = 0; i < 5; ++i) day3.push_back("i" + std::to_string(i));
  WriteDay(dir_.File("day3.h5"), day3, 210, 3, {"c0", "c1", "c2", "c3", "c4"});
  // Day 2 from day 1, rows of retired ids kept or not.
  for (bool keep : {true, false}) {
    RunRanks(1, [&](Communicator& c) {
      auto m = Build(Options("day2.h5", "unused"), c);
      const LoadReport r = LoadCheckpoint(checkpoint_, *m, nullptr, nullptr, c, {.remap_by_raw_id = true, .keep_retired = keep});
      EXPECT_EQ(r.items.dropped, 10);
      EXPECT_EQ(r.returned, 0);
      ASSERT_EQ(r.retired != nullptr, keep);
      SaveCheckpoint(dir_.File(keep ? "day2keep" : "day2drop"), *m, nullptr, nullptr, c, r.retired.get());
    });
  }
  EXPECT_TRUE(PathExists(dir_.File("day2keep/retired.h5")));
  EXPECT_FALSE(PathExists(dir_.File("day2drop/retired.h5")));
  const auto before = ReadRows(checkpoint_, "vectors"), state_before = ReadRows(checkpoint_, "state1");
  std::map<std::string, std::vector<float>> fresh;
  RunRanks(1, [&](Communicator& c) {
    auto m = Build(Options("day3.h5", "unused"), c);
    SaveCheckpoint(dir_.File("fresh3"), *m, nullptr, nullptr, c);
  });
  fresh = ReadRows(dir_.File("fresh3"), "vectors");
  for (auto [world, sharding] : {std::pair{1, "auto"}, std::pair{2, "row_wise"}, std::pair{4, "column_wise"}}) {
    SCOPED_TRACE(std::to_string(world) + " ranks, " + sharding);
    for (bool kept : {true, false}) {
      TrainOptions o = Options("day3.h5", "unused");
      o.model.sharding = sharding;
      const std::string out = dir_.File("day3-" + std::to_string(world) + sharding + (kept ? "keep" : "drop"));
      RunRanks(world, [&](Communicator& c) {
        auto m = Build(o, c);
        const LoadReport r = LoadCheckpoint(dir_.File(kept ? "day2keep" : "day2drop"), *m, nullptr, nullptr, c,
                                            {.remap_by_raw_id = true, .keep_retired = true});
        EXPECT_EQ(r.items.carried, 90);
        EXPECT_EQ(r.returned, kept ? 5 : 0);
        if (c.rank() == 0 && kept) {
          ASSERT_NE(r.retired, nullptr);  // i5 .. i9 still retired, kept again
          EXPECT_EQ(r.retired->raw_ids, (std::vector<std::string>{"i5", "i6", "i7", "i8", "i9"}));
        }
        if (!kept) {
          EXPECT_EQ(r.retired, nullptr);  // nothing retired anew, nothing kept before
        }
        SaveCheckpoint(out, *m, nullptr, nullptr, c, c.rank() == 0 ? r.retired.get() : nullptr);
      });
      const auto rows = ReadRows(out, "vectors"), state = ReadRows(out, "state1");
      for (int i = 0; i < 5; ++i) {
        const std::string key = "item_id/" + std::to_string(day2_.size() + i), day1 = "item_id/" + std::to_string(i);
        if (kept) {
          EXPECT_EQ(rows.at(key), before.at(day1)) << "i" << i;
          EXPECT_EQ(state.at(key), state_before.at(day1)) << "i" << i;
        } else {
          EXPECT_EQ(rows.at(key), fresh.at(key)) << "i" << i;
          EXPECT_NE(rows.at(key), before.at(day1)) << "i" << i;
        }
      }
    }
  }
  // Training: a warm start with keep_retired saves the kept rows in every checkpoint and the model.
  TrainOptions o = Options("day2.h5", "warmkeep");
  o.init_from = dir_.File("run1");
  o.keep_retired = true;
  RunRanks(2, [&](Communicator& c) { Train(o, c); });
  EXPECT_TRUE(PathExists(dir_.File("warmkeep/model/retired.h5")));
  for (const auto& ck : ListCheckpoints(dir_.File("warmkeep"))) EXPECT_TRUE(PathExists(ck + "/retired.h5")) << ck;
}

}  // namespace
}  // namespace shardrec
