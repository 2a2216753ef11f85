// World-size invariance of training: N ranks on the same global batches train the same model as one
// rank, dropout on (masks keyed by row and step, never by rank: model/keyed_mask.h).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/file_util.h"
#include "io/h5.h"
#include "train/trainer.h"

namespace shardrec::testing {

inline TrainOptions InvarianceOptions(const std::string& data, const std::string& run_dir, const std::string& loss) {
  TrainOptions o;
  o.data = data;
  o.run_dir = run_dir;
  o.epochs = 100;
  o.max_steps = 20;
  o.batch_size = 64;
  o.seed = 5;
  o.step.lr = 3e-3;
  o.step.warmup_steps = 5;
  o.loss = loss;
  o.negatives = 32;
  o.eval_every = 0;
  o.model.dim = 16;
  o.model.blocks = 1;
  o.model.heads = 2;
  o.model.max_len = 10;
  o.model.dropout = 0.5;  // the generic config's rate
  return o;
}

// Every value of a saved model: dense parameters by name, embedding rows by (table, global row).
inline std::map<std::string, std::vector<float>> ReadSavedModel(const std::string& dir) {
  std::map<std::string, std::vector<float>> out;
  h5::File d = h5::File::Open(dir + "/dense.h5");
  (void)d;
  for (const auto& f : ListDirectory(dir)) {
    if (f.rfind("embeddings-rank", 0) != 0) continue;
    h5::File e = h5::File::Open(dir + "/" + f);
    for (const char* table : {"item_id", "item_input_id", "item_category"}) {
      const std::string g = std::string("/tables/") + table;
      if (!e.Exists(g + "/rows")) continue;
      auto rows = e.ReadAll<int64_t>(g + "/rows");
      auto vec = e.ReadAll<float>(g + "/vectors");
      const int64_t cb = *e.GetIntAttr(g, "col_begin"), ce = *e.GetIntAttr(g, "col_end");
      for (size_t i = 0; i < rows.size(); ++i) {
        auto& row = out[std::string(table) + "/" + std::to_string(rows[i])];
        row.resize(std::max<size_t>(row.size(), static_cast<size_t>(ce)));
        for (int64_t c = cb; c < ce; ++c) row[c] = vec[i * (ce - cb) + (c - cb)];
      }
    }
  }
  return out;
}

inline std::map<std::string, std::vector<float>> ReadDense(const std::string& dir, const std::vector<std::string>& names) {
  std::map<std::string, std::vector<float>> out;
  h5::File d = h5::File::Open(dir + "/dense.h5");
  for (const auto& n : names) out[n] = d.ReadAll<float>("/dense/" + n);
  return out;
}

inline void ExpectSameTraining(const TrainResult& a, const TrainResult& b, const std::string& dir_a, const std::string& dir_b) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) {
    EXPECT_NEAR(a.losses[i], b.losses[i], 1e-4 * std::abs(a.losses[i])) << "loss of step " << i + 1;
  }
  auto ea = ReadSavedModel(dir_a), eb = ReadSavedModel(dir_b);
  ASSERT_EQ(ea.size(), eb.size());
  for (const auto& [k, v] : ea) {
    const auto& w = eb.at(k);
    ASSERT_EQ(v.size(), w.size()) << k;
    for (size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], w[i], 1e-5) << k << "[" << i << "]";
  }
  // Dense parameters: every dataset under /dense.
  h5::File fa = h5::File::Open(dir_a + "/dense.h5"), fb = h5::File::Open(dir_b + "/dense.h5");
  for (const char* name : {"positions.weight", "block0.qkv.weight", "block0.ff2.bias", "ln_final.weight", "gaps.weight"}) {
    const std::string key = std::string("/dense/") + name;
    if (!fa.Exists(key)) continue;
    auto va = fa.ReadAll<float>(key), vb = fb.ReadAll<float>(key);
    ASSERT_EQ(va.size(), vb.size());
    for (size_t i = 0; i < va.size(); ++i) ASSERT_NEAR(va[i], vb[i], 1e-5) << name << "[" << i << "]";
  }
}

}  // namespace shardrec::testing
