// The item and user towers against hand computation: with no Transformer blocks and no dropout, the
// user vector after a history is LayerNorm(input vector of its last item + that event's position
// embedding), so which table and which position row the model reads can be checked exactly.
#include "model/two_tower.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <limits>
#include <tuple>
#include <vector>

#include "distributed/inprocess.h"

namespace shardrec {
namespace {

struct Variant {
  bool separate, newest, cosine;
};

class TwoTowerOracle : public ::testing::TestWithParam<Variant> {};

at::Tensor Normalized(const at::Tensor& x) { return x / x.norm(2, -1, true); }

TEST_P(TwoTowerOracle, VectorsComeFromTheRightTableAndPosition) {
  const Variant v = GetParam();
  ModelConfig c;
  c.dim = 8;
  c.blocks = 0;
  c.heads = 1;
  c.max_len = 6;
  c.dropout = 0.0;
  c.time_buckets = 0;
  c.separate_input_vectors = v.separate;
  c.positions_from_newest = v.newest;
  c.cosine = v.cosine;
  ItemCatalog catalog;
  catalog.num_items = 5;
  RunRanks(1, [&](Communicator& comm) {
    TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/3);
    model.train(false);
    c10::InferenceMode no_grad;
    const at::Tensor ids = at::arange(5, at::kLong);
    const ItemVectors items = model.EncodeItemVectors(ids, ids);
    auto& tables = model.embeddings();
    const at::Tensor out_rows = tables.LocalWeights("item_id");
    const at::Tensor in_rows = v.separate ? tables.LocalWeights("item_input_id") : out_rows;
    const auto finish = [&](const at::Tensor& x) { return v.cosine ? Normalized(x) : x; };
    EXPECT_TRUE(at::allclose(items.output, finish(out_rows), 1e-5, 1e-6));
    EXPECT_TRUE(at::allclose(items.input, finish(in_rows), 1e-5, 1e-6));
    EXPECT_EQ(v.separate, !at::allclose(items.input, items.output)) << "separate tables start apart";
    // Subsets: output rows of {1, 3} and input rows of {0, 4}, from one call.
    const ItemVectors some = model.EncodeItemVectors(at::tensor({1, 3}, at::kLong), at::tensor({0, 4}, at::kLong));
    EXPECT_TRUE(at::allclose(some.output, items.output.index_select(0, at::tensor({1, 3}, at::kLong))));
    EXPECT_TRUE(at::allclose(some.input, items.input.index_select(0, at::tensor({0, 4}, at::kLong))));

    at::Tensor positions;
    for (const auto& [name, p] : model.named_dense_parameters()) {
      if (name == "positions.weight") positions = p;
    }
    ASSERT_TRUE(positions.defined());
    // Histories [2, 4] and [1, 0, 3] in one batch of width 3 (the first row padded).
    const std::vector<int64_t> hist = {2, 4, -1, 1, 0, 3}, lengths = {2, 3};
    const HistoryBatch h = MakeHistoryBatch(2, 3, hist, {}, lengths, {}, {}, c10::Device(at::kCPU));
    const at::Tensor users = model.EncodeHistory(h);
    const int64_t last_item[] = {4, 3};
    for (int64_t r = 0; r < 2; ++r) {
      const int64_t position = v.newest ? c.max_len - 1 : lengths[r] - 1;
      const at::Tensor x = items.input[last_item[r]] + positions[position];
      const at::Tensor expected = finish(at::layer_norm(x, {c.dim}));
      EXPECT_TRUE(at::allclose(users[r], expected, 1e-4, 1e-5)) << "row " << r;
    }
    // The same histories one at a time (no padding) give the same vectors.
    const HistoryBatch alone = MakeHistoryBatch(1, 2, std::vector<int64_t>{2, 4}, {}, std::vector<int64_t>{2}, {}, {},
                                                c10::Device(at::kCPU));
    EXPECT_TRUE(at::allclose(model.EncodeHistory(alone)[0], users[0], 1e-5, 1e-6));
  });
}

INSTANTIATE_TEST_SUITE_P(Variants, TwoTowerOracle,
                         ::testing::Values(Variant{false, false, true}, Variant{true, false, true},
                                           Variant{false, true, true}, Variant{true, true, false},
                                           Variant{false, false, false}),
                         [](const auto& info) {
                           const Variant& v = info.param;
                           return std::string(v.separate ? "Separate" : "Tied") + (v.newest ? "Newest" : "Oldest") +
                                  (v.cosine ? "Cosine" : "Dot");
                         });

// The dropout tests' model: 2 blocks of 2 heads, dim 8, histories of up to 6 events.
ModelConfig DropoutConfig(double rate) {
  ModelConfig c;
  c.dim = 8;
  c.blocks = 2;
  c.heads = 2;
  c.max_len = 6;
  c.dropout = rate;
  c.time_buckets = 0;
  return c;
}

// Dropout masks follow the step's seed (SeedDropout): the same seed gives the same masks, and the masks
// are real (training differs from evaluation). With a vanishing rate every mask keeps everything,
// so training mode, which then writes out the causal attention on a CPU, must equal evaluation
// mode, which runs the fused kernel.
TEST(TwoTowerDropout, MasksFollowTheSeedAndTheAttentionMatchesTheFusedKernel) {
  ItemCatalog catalog;
  catalog.num_items = 30;
  const std::vector<int64_t> hist = {2, 4, 7, 9, 1, 0, 3, -1}, lengths = {4, 3};
  const HistoryBatch h = MakeHistoryBatch(2, 4, hist, {}, lengths, {}, {}, c10::Device(at::kCPU));
  for (const double rate : {0.3, 1e-12}) {
    const ModelConfig c = DropoutConfig(rate);
    RunRanks(1, [&](Communicator& comm) {
      TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/3);
      c10::InferenceMode no_grad;
      model.train(false);
      const at::Tensor eval = model.EncodeHistory(h);
      model.train(true);
      model.SeedDropout(11);
      const at::Tensor first = model.EncodeHistory(h);
      model.SeedDropout(11);
      EXPECT_TRUE(at::equal(model.EncodeHistory(h), first)) << "rate " << rate;
      model.SeedDropout(12);
      const at::Tensor other = model.EncodeHistory(h);
      if (rate > 0.1) {
        EXPECT_FALSE(at::allclose(first, eval));
        EXPECT_FALSE(at::allclose(other, first));
      } else {
        EXPECT_TRUE(at::allclose(first, eval, 1e-5, 1e-6));
        EXPECT_TRUE(at::allclose(other, eval, 1e-5, 1e-6));
      }
    });
  }
}

// Cold start in the item tower: an item whose id row was never trained (ZeroIdRows) is its content
// projection alone, and id dropout (training only) drops whole id vectors, one draw per item shared
// by its output and input vectors. A model without a content path ignores id dropout.
TEST(TwoTowerColdStart, UntrainedRowsAreZeroAndIdDropoutLeavesTheContentPath) {
  for (const bool separate : {false, true}) {
    SCOPED_TRACE(separate ? "separate input vectors" : "tied");
    ModelConfig c;
    c.dim = 4;
    c.blocks = 0;
    c.max_len = 4;
    c.dropout = 0;
    c.time_buckets = 0;
    c.cosine = false;
    c.id_dropout = 0.5;
    c.separate_input_vectors = separate;
    ItemCatalog catalog;
    catalog.num_items = 6;
    catalog.content = at::arange(18, at::kFloat).view({6, 3}) / 10.0;
    RunRanks(1, [&](Communicator& comm) {
      TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/5);
      ASSERT_TRUE(model.has_content_path());
      model.ZeroIdRows({1, 0, 2, 0, 1, 1});
      at::Tensor w, b;
      for (const auto& [name, p] : model.named_dense_parameters()) {
        if (name == "content.weight") w = p.detach();
        if (name == "content.bias") b = p.detach();
      }
      ASSERT_TRUE(w.defined() && b.defined());
      const at::Tensor content_only = at::addmm(b, catalog.content, w.t());  // [6 x dim]
      c10::InferenceMode no_grad;
      const at::Tensor ids = at::arange(6, at::kLong);
      model.train(false);
      const ItemVectors eval = model.EncodeItemVectors(ids, ids);
      for (const char* table : {"item_id", "item_input_id"}) {
        const at::Tensor rows = model.embeddings().LocalWeights(table);
        if (!rows.defined()) continue;
        EXPECT_TRUE(at::equal(rows[1], at::zeros({4}))) << table;
        EXPECT_TRUE(at::equal(rows[3], at::zeros({4}))) << table;
        EXPECT_FALSE(at::equal(rows[0], at::zeros({4}))) << table;
      }
      for (int64_t i : {1, 3}) {
        EXPECT_TRUE(at::allclose(eval.output[i], content_only[i], 1e-5, 1e-6)) << i;
        EXPECT_TRUE(at::allclose(eval.input[i], content_only[i], 1e-5, 1e-6)) << i;
      }
      EXPECT_TRUE(at::allclose(eval.output[0], model.embeddings().LocalWeights("item_id")[0] + content_only[0], 1e-5, 1e-6));
      // Training: each item is its full vector or its content projection, on both sides alike.
      model.train(true);
      int dropped = 0, kept = 0;
      for (uint64_t seed = 1; seed <= 8; ++seed) {
        model.SeedDropout(seed);
        const ItemVectors t = model.EncodeItemVectors(ids, ids);
        for (int64_t i : {0, 2, 4, 5}) {
          const bool out_dropped = at::allclose(t.output[i], content_only[i], 1e-5, 1e-6);
          EXPECT_TRUE(out_dropped || at::allclose(t.output[i], eval.output[i], 1e-5, 1e-6)) << i;
          const bool in_dropped = at::allclose(t.input[i], content_only[i], 1e-5, 1e-6);
          EXPECT_TRUE(in_dropped || at::allclose(t.input[i], eval.input[i], 1e-5, 1e-6)) << i;
          EXPECT_EQ(out_dropped, in_dropped) << "one draw per item";
          (out_dropped ? dropped : kept) += 1;
        }
      }
      EXPECT_GT(dropped, 4);
      EXPECT_GT(kept, 4);
      // Output and input ids that differ (a step's candidates and its history items): each vector is
      // whole or its content projection, and an item on both sides is dropped on both or neither.
      const auto near = [](const at::Tensor& a, const at::Tensor& b) { return at::allclose(a, b, 1e-5, 1e-6); };
      const std::vector<int64_t> out_ids = {0, 2, 4}, in_ids = {2, 4, 5};
      int both_dropped = 0;
      for (uint64_t seed = 1; seed <= 8; ++seed) {
        model.SeedDropout(seed);
        const ItemVectors t = model.EncodeItemVectors(at::tensor(out_ids, at::kLong), at::tensor(in_ids, at::kLong));
        ASSERT_EQ(t.output.size(0), 3);
        ASSERT_EQ(t.input.size(0), 3);
        for (int64_t r = 0; r < 3; ++r) {
          const int64_t o = out_ids[r], i = in_ids[r];
          EXPECT_TRUE(near(t.output[r], content_only[o]) || near(t.output[r], eval.output[o])) << o;
          EXPECT_TRUE(near(t.input[r], content_only[i]) || near(t.input[r], eval.input[i])) << i;
        }
        for (const auto& [item, ro, ri] : {std::tuple<int64_t, int64_t, int64_t>{2, 1, 0}, {4, 2, 1}}) {
          const bool dropped_out = near(t.output[ro], content_only[item]);
          EXPECT_EQ(dropped_out, near(t.input[ri], content_only[item])) << "item " << item << ": one draw for both sides";
          both_dropped += dropped_out;
        }
      }
      EXPECT_GT(both_dropped, 0);
      EXPECT_LT(both_dropped, 16);
    });
  }
  // Without categories or content, id dropout does nothing.
  ModelConfig c;
  c.dim = 4;
  c.blocks = 0;
  c.time_buckets = 0;
  c.id_dropout = 0.9;
  ItemCatalog ids_only;
  ids_only.num_items = 5;
  RunRanks(1, [&](Communicator& comm) {
    TwoTowerModel model(c, ids_only, PlanItemTables(c, ids_only, comm), &comm, 2);
    EXPECT_FALSE(model.has_content_path());
    c10::InferenceMode no_grad;
    const at::Tensor ids = at::arange(5, at::kLong);
    model.train(false);
    const at::Tensor eval = model.EncodeDistinctItems(ids);
    model.train(true);
    model.SeedDropout(3);
    EXPECT_TRUE(at::equal(model.EncodeDistinctItems(ids), eval));
  });
}

// Keyed masks (model/keyed_mask.h): a row's training output depends on its key and the step's
// seed, not on the rows beside it or the width its batch is padded to.
TEST(TwoTowerDropout, ARowsOutputDependsOnItsKeyNotOnItsBatch) {
  ItemCatalog catalog;
  catalog.num_items = 30;
  const ModelConfig c = DropoutConfig(0.4);
  const auto batch = [](int64_t rows, int64_t width, const std::vector<int64_t>& items, const std::vector<int64_t>& lengths,
                        const std::vector<int64_t>& keys) {
    HistoryBatch h = MakeHistoryBatch(rows, width, items, {}, lengths, {}, {}, c10::Device(at::kCPU));
    h.keys = at::tensor(keys, at::kLong);
    return h;
  };
  RunRanks(1, [&](Communicator& comm) {
    TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/3);
    c10::InferenceMode no_grad;
    model.train(true);
    model.SeedDropout(5);
    const at::Tensor both = model.EncodeHistory(batch(2, 4, {2, 4, 7, 9, 1, 0, 3, -1}, {4, 3}, {10, 11}));
    const at::Tensor alone = model.EncodeHistory(batch(1, 3, {1, 0, 3}, {3}, {11}));
    const at::Tensor wider = model.EncodeHistory(batch(1, 6, {1, 0, 3, -1, -1, -1}, {3}, {11}));
    EXPECT_TRUE(at::allclose(both[1], alone[0], 1e-5, 1e-6));
    EXPECT_TRUE(at::allclose(both[1], wider[0], 1e-5, 1e-6));
    const at::Tensor other_key = model.EncodeHistory(batch(1, 3, {1, 0, 3}, {3}, {12}));
    EXPECT_FALSE(at::allclose(other_key[0], alone[0], 1e-3, 1e-4));
    model.SeedDropout(6);
    EXPECT_FALSE(at::allclose(model.EncodeHistory(batch(1, 3, {1, 0, 3}, {3}, {11}))[0], alone[0], 1e-3, 1e-4));
  });
}

// Imputation: an untrained (all-zero) id row becomes the mean direction of the id rows of the
// trained items whose content-path vectors are nearest, at their mean length; checked against a brute-force search over the content
// projection computed by hand.
TEST(TwoTowerColdStart, UntrainedRowsAreImputedFromTheNearestTrainedItems) {
  for (const int64_t k : {1, 2}) {
    ModelConfig c;
    c.dim = 4;
    c.blocks = 0;
    c.max_len = 4;
    c.time_buckets = 0;
    c.cosine = false;
    ItemCatalog catalog;
    catalog.num_items = 7;
    at::manual_seed(11);
    catalog.content = at::randn({7, 5});
    catalog.content[1] = catalog.content[4] * 2;  // the same direction as item 4's
    catalog.content[3] = catalog.content[0];
    RunRanks(1, [&](Communicator& comm) {
      TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/5);
      model.ZeroIdRows({1, 0, 1, 0, 1, 1, 1});
      const at::Tensor before = model.embeddings().LocalWeights("item_id").clone();
      at::Tensor w, b;
      for (const auto& [name, p] : model.named_dense_parameters()) {
        if (name == "content.weight") w = p.detach();
        if (name == "content.bias") b = p.detach();
      }
      const at::Tensor proj = at::addmm(b, catalog.content, w.t());
      const at::Tensor unit = proj / proj.norm(2, 1, true);
      EXPECT_EQ(model.ImputeUntrainedIdRows(k), 2);
      const at::Tensor after = model.embeddings().LocalWeights("item_id");
      for (int64_t i : {0, 2, 4, 5, 6}) EXPECT_TRUE(at::equal(after[i], before[i])) << "trained row " << i << " kept";
      for (int64_t j : {1, 3}) {
        // Brute force: similarities to the trained items, best first.
        std::vector<std::pair<float, int64_t>> sims;
        for (int64_t i : {0, 2, 4, 5, 6}) sims.emplace_back(at::dot(unit[j], unit[i]).item<float>(), i);
        std::sort(sims.begin(), sims.end(), std::greater<>());
        at::Tensor expected = at::zeros({4});
        double length = 0;
        for (int64_t n = 0; n < k; ++n) {
          expected += before[sims[n].second] / static_cast<double>(k);
          length += before[sims[n].second].norm().item<double>() / static_cast<double>(k);
        }
        expected = expected * (length / expected.norm().item<double>());  // their mean direction, at their mean length
        EXPECT_TRUE(at::allclose(after[j], expected, 1e-5, 1e-6)) << "item " << j << " k " << k;
      }
      if (k == 1) {
        EXPECT_TRUE(at::equal(after[1], before[4]));  // the nearest by content is item 4
        EXPECT_TRUE(at::equal(after[3], before[0]));
      }
      EXPECT_EQ(model.ImputeUntrainedIdRows(k), 0) << "nothing left untrained";
    });
  }
}


// The content path and the imputation read rows through the sharded lookup: 2, 3 and 4 ranks under
// each sharding type give the 1-rank vectors (categories, content and separate input vectors).
TEST(TwoTowerColdStart, ContentAndImputationAreTheSameAtAnyWorldSize) {
  ItemCatalog catalog;
  catalog.num_items = 12;
  catalog.num_categories = 3;
  for (int64_t i = 0; i < 12; ++i) {
    catalog.category_offsets.push_back(static_cast<int64_t>(catalog.category_values.size()));
    catalog.category_values.push_back(i % 3);
    if (i % 4 == 0) catalog.category_values.push_back((i + 1) % 3);
  }
  catalog.category_offsets.push_back(static_cast<int64_t>(catalog.category_values.size()));
  at::manual_seed(3);
  catalog.content = at::randn({12, 5});
  const std::vector<int64_t> counts = {3, 0, 1, 1, 0, 2, 5, 0, 1, 1, 0, 4};
  auto run = [&](int world, const std::string& sharding) {
    ModelConfig c;
    c.dim = 6;
    c.blocks = 0;
    c.max_len = 4;
    c.time_buckets = 0;
    c.cosine = false;
    c.separate_input_vectors = true;
    c.sharding = sharding;
    std::vector<at::Tensor> out(3);  // rank 0's content vectors, output and input vectors after imputing
    RunRanks(world, [&](Communicator& comm) {
      TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/9);
      model.ZeroIdRows(counts);
      const at::Tensor ids = at::arange(12, at::kLong);
      const at::Tensor content = model.EncodeContent(ids);
      EXPECT_EQ(model.ImputeUntrainedIdRows(2), 4);
      c10::InferenceMode no_grad;
      model.train(false);
      const ItemVectors v = model.EncodeItemVectors(ids, ids);
      if (comm.rank() == 0) out = {content, v.output, v.input};
    });
    return out;
  };
  const std::vector<at::Tensor> one = run(1, "auto");
  for (const auto& [world, sharding] : {std::pair{2, "row_wise"}, std::pair{3, "column_wise"}, std::pair{4, "table_wise"},
                                        std::pair{2, "column_wise"}, std::pair{3, "row_wise"}}) {
    SCOPED_TRACE(std::to_string(world) + " ranks, " + sharding);
    const std::vector<at::Tensor> got = run(world, sharding);
    for (size_t k = 0; k < 3; ++k) EXPECT_TRUE(at::allclose(got[k], one[k], 1e-5, 1e-6)) << "vectors " << k;
  }
}


// Context rows by hand. 1970-01-01 was a Thursday: time 0 is hour 0 of day 3 (Monday = 0), and
// 90000 s later it is 01:00 on the Friday.
TEST(HistoryContext, RowsOfTheHourDayAndRequestGap) {
  int64_t r[ContextRows::kPerPosition];
  ContextIndices(0, 90000, r);  // a gap of 1500 min: bucket 1 + floor(log2(1501)) = 11
  EXPECT_EQ(std::vector<int64_t>(r, r + 5), (std::vector<int64_t>{0, 24 + 3, 31 + 1 + 1, 56 + 1 + 4, 64 + 1 + 11}));
  ContextIndices(90000, 90000 + 7200, r);  // 03:00 on the Friday, 120 min later: bucket 1 + 6
  EXPECT_EQ(std::vector<int64_t>(r, r + 5), (std::vector<int64_t>{1, 24 + 4, 31 + 1 + 3, 56 + 1 + 4, 64 + 1 + 7}));
  ContextIndices(-1, kUnknownTime, r);  // 23:59:59 on Wednesday 1969-12-31; the request unknown
  EXPECT_EQ(std::vector<int64_t>(r, r + 5), (std::vector<int64_t>{23, 24 + 2, 31, 56, 64}));
  ContextIndices(100, 50, r);  // a request before the event: gap bucket 0
  EXPECT_EQ(r[4], 64 + 1 + 0);
  ContextIndices(std::numeric_limits<int64_t>::min() + 1, std::numeric_limits<int64_t>::max(), r);  // no overflow
  EXPECT_EQ(r[4], 64 + ContextRows::kRequestGapBuckets);
  EXPECT_EQ(ContextRows::kRequestGap + 1 + ContextRows::kRequestGapBuckets, ContextRows::kTotal);
}

// With no blocks, the vector at position k is LayerNorm(input vector + position + the five context
// rows of event k and its request): the next event's time, and after the last event the row's
// request time. An unknown request adds nothing; the request changes only the last position.
TEST(HistoryContext, UserVectorsReadTheEventAndRequestRows) {
  ModelConfig c;
  c.dim = 8;
  c.blocks = 0;
  c.max_len = 4;
  c.dropout = 0.0;
  c.time_buckets = 0;
  c.cosine = false;
  ItemCatalog catalog;
  catalog.num_items = 6;
  RunRanks(1, [&](Communicator& comm) {
    TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/5);
    model.train(false);
    c10::InferenceMode no_grad;
    at::Tensor positions, context;
    for (const auto& [name, p] : model.named_dense_parameters()) {
      if (name == "positions.weight") positions = p;
      if (name == "context.weight") context = p;
    }
    ASSERT_TRUE(context.defined());
    ASSERT_EQ(context.size(0), ContextRows::kTotal);
    for (int64_t row : {31, 56, 64}) EXPECT_EQ(context[row].abs().sum().item<float>(), 0.0f) << "unknown row " << row;
    EXPECT_GT(context[33].abs().sum().item<float>(), 0.0f);
    const at::Tensor in = model.EncodeItemVectors(at::empty({0}, at::kLong), at::arange(6, at::kLong)).input;
    const std::vector<int64_t> items = {2, 4}, ts = {0, 90000}, len = {2};
    auto rows = [&](std::vector<int64_t> r) { return context.index_select(0, at::tensor(r, at::kLong)).sum(0); };
    const at::Tensor first = at::layer_norm(in[2] + positions[0] + rows({0, 27, 33, 61, 76}), {c.dim});
    const at::Tensor with_request = at::layer_norm(in[4] + positions[1] + rows({1, 28, 35, 61, 72}), {c.dim});
    const at::Tensor unknown = at::layer_norm(in[4] + positions[1] + rows({1, 28}), {c.dim});
    const std::vector<int64_t> request = {90000 + 7200};
    const at::Tensor all = model.EncodeHistory(
        MakeHistoryBatch(1, 2, items, ts, len, request, c.history_features(), c10::Device(at::kCPU)).IndexedBy(at::arange(6, at::kLong)),
        in, /*all_positions=*/true)[0];
    EXPECT_TRUE(at::allclose(all[0], first, 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(all[1], with_request, 1e-4, 1e-5));
    const at::Tensor none = model.EncodeHistory(MakeHistoryBatch(1, 2, items, ts, len, {}, c.history_features(), c10::Device(at::kCPU)));
    EXPECT_TRUE(at::allclose(none[0], unknown, 1e-4, 1e-5));
    // Without timestamps, or with context off, nothing of it is read.
    const HistoryBatch plain = MakeHistoryBatch(1, 2, items, {}, len, request, c.history_features(), c10::Device(at::kCPU));
    EXPECT_FALSE(plain.context.defined());
    EXPECT_FALSE(MakeHistoryBatch(1, 2, items, ts, len, request, {.time_buckets = 4}, c10::Device(at::kCPU)).context.defined());
  });
}

// Under causal attention the request time after the last event moves only the last position.
TEST(HistoryContext, TheRequestMovesOnlyTheLastPosition) {
  ModelConfig c;
  c.dim = 8;
  c.blocks = 2;
  c.max_len = 5;
  c.dropout = 0.0;
  ItemCatalog catalog;
  catalog.num_items = 9;
  RunRanks(1, [&](Communicator& comm) {
    TwoTowerModel model(c, catalog, PlanItemTables(c, catalog, comm), &comm, /*seed=*/7);
    model.train(false);
    c10::InferenceMode no_grad;
    const at::Tensor ids = at::arange(9, at::kLong);
    const at::Tensor in = model.EncodeItemVectors(at::empty({0}, at::kLong), ids).input;
    const std::vector<int64_t> items = {3, 1, 8, 5}, ts = {1000, 5000, 90000, 200000}, len = {4};
    auto encode = [&](int64_t request) {
      const std::vector<int64_t> r = {request};
      return model.EncodeHistory(MakeHistoryBatch(1, 4, items, ts, len, r, c.history_features(), c10::Device(at::kCPU)).IndexedBy(ids),
                                 in, /*all_positions=*/true)[0];
    };
    const at::Tensor soon = encode(200060), later = encode(200000 + 40 * 86400 + 5 * 3600);
    EXPECT_TRUE(at::allclose(soon.slice(0, 0, 3), later.slice(0, 0, 3), 1e-5, 1e-6));
    EXPECT_GT((soon[3] - later[3]).abs().max().item<float>(), 1e-3);
  });
}

}  // namespace
}  // namespace shardrec
