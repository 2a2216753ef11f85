#include "train/evaluate_run.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <optional>

#include "common/error.h"
#include "common/json.h"
#include "io/cold_start.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "model/catalogue.h"
#include "retrieval/export_index.h"
#include "eval/evaluate.h"
#include "train/model_files.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace shardrec {

namespace {

// What diversity@K compares listed items by (eval/metrics.h).
std::string DiversityBasis(const std::string& data, bool baseline) {
  const DatasetInfo info = Dataset::Open(data)->info();
  if (info.has_categories && info.num_categories > 0) return "by the items' categories";
  return baseline ? "not reported: the data has no categories" : "by the model's item vectors";
}

// The cold-start part of eval.json's protocol line ("" when off).
std::string ColdStartProtocolText(const EvalOptions& o, const std::string& histories) {
  if (o.cold_items <= 0) return "";
  char f[32];
  std::snprintf(f, sizeof(f), "%g", o.cold_items);
  return std::string("; cold start (--cold-items ") + f + " --cold-seed " + std::to_string(o.cold_seed) +
         "): cold.* = users whose target is a cold item, warm.* = the others, all.* = every user; cold.pop_* = the "
         "cold items alone ranked by their event count in the whole of " + o.data + "; histories from " +
         (histories == o.data ? histories + " (every event: the model was not trained under this protocol)"
                              : histories + " (the run's own: cold items removed before the held-out events)");
}

}  // namespace

std::map<std::string, double> Evaluate(const EvalOptions& o, Communicator& comm, std::string* histories) {
  if (o.split != "valid" && o.split != "test") Fail("--split: expected valid or test, got '", o.split, "'");
  RequireFlag(std::isfinite(o.cold_items) && o.cold_items >= 0 && o.cold_items < 1, "cold-items",
              "a fraction in [0, 1) (0 = off)", o.cold_items);
  std::optional<ColdItems> cold;
  std::string data = o.data;
  if (o.cold_items > 0) {
    auto source = Dataset::Open(o.data);
    cold = ChooseColdItems(*source, o.cold_items, o.cold_seed);
    // A run trained under this protocol is ranked on its own histories (no cold item in them).
    const std::string protocol = RunDir(o.run_dir).cold_start_data();
    if (!o.run_dir.empty() && o.baseline.empty() && IsColdStartDatasetOf(protocol, *source, o.cold_items, o.cold_seed)) {
      data = protocol;
    }
  }
  if (histories) *histories = data;
  auto ds = Dataset::Open(data);
  const std::vector<int64_t> counts = TrainItemCounts(*ds, comm);
  EvalRequest request{.data = data,
                      .split = o.split == "valid" ? Split::kValid : Split::kTest,
                      .batch_size = o.batch_size,
                      .item_counts = counts,
                      .cold = cold ? &*cold : nullptr,
                      .sample_users = o.sample_users,
                      .scoring = o.scoring,
                      .progress = o.progress};
  if (!o.baseline.empty()) return EvaluateBaseline(o.baseline, request, comm);
  const ItemCatalog catalog = LoadItemCatalog(*ds);
  OpenedModel opened = OpenModel(RunDir(o.run_dir).model(), o.model, catalog, LoadMode::kSameData, o.seed, comm);
  std::unique_ptr<ShardedIndex> ann;
  if (!o.ann_export.empty()) {
    const std::string dir = ResolveExport(o.ann_export);
    const ExportManifest m = ReadExportManifest(dir);
    // Ranks are item rows: the export must hold the evaluation data's items, row for row (an
    // export made with --add-items holds more).
    bool same = m.num_items == catalog.num_items;
    if (same) same = ReadExportedItems(dir, m).raw_ids == ds->ReadItemRawIds(0, catalog.num_items);
    if (!same) {
      Fail("--ann ", o.ann_export, ": export ", m.version, " holds the catalogue of ", m.data, " (", m.num_items,
           " items), not the item ids of ", data, " (", catalog.num_items,
           " items); evaluate an export of the evaluation data (an export made with --add-items also serves items "
           "the data does not have)");
    }
    ann = OpenExportIndex(dir, m);
  }
  request.ann = ann.get();
  return EvaluateModel(*opened.model, request, comm);
}

std::string EvalReportJson(const EvalOptions& o, const std::map<std::string, double>& m, const std::string& histories) {
  const bool baseline = !o.baseline.empty();
  JsonObject j;
  for (const auto& [k, v] : m) {
    if (k == "users" || k == "items" || k.ends_with(".users")) {
      j.Add(k, static_cast<int64_t>(v));
    } else {
      j.Add(k, v);
    }
  }
  j.Add("split", o.split).Add("model", baseline ? "baseline:" + o.baseline : "two_tower").Add("data", o.data);
  j.Add("protocol", "leave-one-out (" + o.split + " target = the user's " + (o.split == "test" ? "last" : "second-to-last") +
                        " event); ranked against all items; the user's earlier items are excluded; ties broken by item id; "
                        "HR@K = Recall@K (one target per user); at K = 10, 50, 200: coverage@K = distinct items in top-K lists / "
                        "items, novelty@K = mean -log2 training popularity share of listed items, popularity_bias@K = "
                        "mean popularity percentile of listed items (1 = most trained), diversity@K = 1 - mean cosine "
                        "of listed pairs (" + DiversityBasis(o.data, baseline) + "); hist_B.* = users with B training events" +
                        ColdStartProtocolText(o, histories) +
                        (o.sample_users > 0 ? "; a uniform sample of at most " + std::to_string(o.sample_users) +
                                                  " of the split's users (--eval-users; the same users for every model)"
                                            : std::string()));
  return j.str();
}

}  // namespace shardrec
