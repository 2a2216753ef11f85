#include "eval/evaluate.h"

#include <torch/torch.h>

#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"
#include "common/process_memory.h"
#include "io/cold_start.h"
#include "io/dataset.h"
#include "model/footprint.h"
#include "retrieval/sharded_index.h"
#include "model/catalogue.h"
#include "eval/sharded_scorer.h"
#include "eval/metrics.h"

namespace shardrec {
namespace {

// A rank scores its piece of a batch against the whole catalogue at once ([rows x items] floats):
// the global batch shrinks so that a piece's scores stay within kScoreBytes (metrics are per user,
// so the batch size does not change them).
constexpr int64_t kScoreBytes = int64_t{512} << 20;

int64_t EvalBatchSize(int64_t batch_size, int64_t num_items, int world_size) {
  const int64_t rows = std::max<int64_t>(1, kScoreBytes / (std::max<int64_t>(1, num_items) * 4));
  return std::min(batch_size, rows * world_size);
}

SequenceReader EvalReader(const std::string& data, Split split, int64_t batch_size, int64_t max_len,
                          Communicator& comm, int64_t num_items, int64_t sample_users = 0) {
  ReaderOptions ro;
  ro.sample_users = sample_users;
  ro.split = split;
  ro.global_batch_size = EvalBatchSize(batch_size, num_items, comm.world_size());
  ro.max_len = max_len;
  ro.shuffle = false;
  ro.rank = comm.rank();
  ro.world_size = comm.world_size();
  ro.full_history = true;
  return SequenceReader(data, ro);
}

// The request after each history is its target's time: when the user came back.
HistoryBatch BatchHistories(const Batch& b, const HistoryFeatures& features, const c10::Device& dev) {
  std::vector<int64_t> lengths(b.lengths.begin(), b.lengths.end());
  return MakeHistoryBatch(b.rows, b.width, b.items, b.timestamps, lengths, b.target_timestamps, features, dev);
}

// Rank `scores` [B x I] for one eval batch and collect per-user results. `cold` (optional, [I]):
// a cold target is also ranked among the cold items alone (UserResult::cold_rank).
void RankBatch(const Batch& b, Split split, const at::Tensor& scores, std::vector<UserResult>* out,
               const ColdItems* cold = nullptr) {
  std::vector<std::vector<int64_t>> excluded(b.rows);
  for (int64_t i = 0; i < b.rows; ++i) {
    excluded[i].assign(b.history_items.begin() + b.history_offsets[i], b.history_items.begin() + b.history_offsets[i + 1]);
  }
  auto r = RankTargets(scores, b.users, b.targets, excluded);
  for (int64_t i = 0; i < b.rows; ++i) r[i].history = TrainingEvents(b, i, split);
  if (cold) {
    const at::Tensor cpu = scores.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t n = cpu.size(1);
    for (int64_t i = 0; i < b.rows; ++i) {
      const int64_t t = b.targets[i];
      if (!cold->cold[static_cast<size_t>(t)]) continue;
      // The user's earlier items are excluded here too (a cold validation event stays in the test
      // history, and a model trained on everything is ranked on every event).
      const std::unordered_set<int64_t> skip(excluded[i].begin(), excluded[i].end());
      const float* s = cpu.data_ptr<float>() + i * n;
      int64_t rank = 0;
      for (int64_t j = 0; j < n; ++j) {
        rank += cold->cold[static_cast<size_t>(j)] && j != t && !skip.count(j) && (s[j] > s[t] || (s[j] == s[t] && j < t));
      }
      r[i].cold_rank = rank;
    }
  }
  out->insert(out->end(), r.begin(), r.end());
}

// The index's top kListLength for each row of `queries` [B x dim], history excluded.
void RankBatchWithIndex(const Batch& b, Split split, const at::Tensor& queries, const ShardedIndex& ann,
                        std::vector<UserResult>* out) {
  at::Tensor q = queries.to(torch::kCPU).contiguous();
  for (int64_t i = 0; i < b.rows; ++i) {
    std::unordered_set<int64_t> exclude(b.history_items.begin() + b.history_offsets[i],
                                        b.history_items.begin() + b.history_offsets[i + 1]);
    exclude.erase(b.targets[i]);
    auto hits = ann.Search(q[i].data_ptr<float>(), kListLength, exclude);
    UserResult r;
    r.user = b.users[i];
    r.rank = 1000000000;
    r.history = TrainingEvents(b, i, split);
    r.target = b.targets[i];
    for (size_t k = 0; k < hits.size(); ++k) {
      if (hits[k].id == b.targets[i]) r.rank = static_cast<int64_t>(k);
      r.top.push_back(hits[k].id);
    }
    out->push_back(r);
  }
}

bool UseShardedScoring(EvalScoring scoring, const TwoTowerModel& model, int64_t num_items, int world_size) {
  if (world_size < 2 || scoring == EvalScoring::kReplicated) return false;
  if (scoring == EvalScoring::kSharded) return true;
  const int64_t copies = model.config().separate_input_vectors ? 2 : 1;
  return EvaluationShardsCatalogue(static_cast<double>(num_items * model.config().dim * 4 * copies), world_size);
}

// What the list metrics need: training counts, and the data's categories for diversity where it
// has them, else `item_vectors` (undefined: no diversity), or with `list_vector_dim` > 0 the
// vectors each result brings (sharded scoring).
ListContext MakeListContext(const std::string& data, std::span<const int64_t> counts, const at::Tensor& item_vectors,
                            const ColdItems* cold, int64_t list_vector_dim = 0) {
  ListContext c{.num_items = static_cast<int64_t>(counts.size()), .item_counts = {counts.begin(), counts.end()}};
  if (cold) {
    c.cold = cold->cold;
    c.cold_popularity_rank = ColdPopularityRanks(*cold);
  }
  auto ds = Dataset::Open(data);
  const DatasetInfo& info = ds->info();
  if (info.has_categories && info.num_categories > 0) {
    auto cats = ds->ReadItemCategories(0, info.num_items);
    c.num_categories = info.num_categories;
    c.category_offsets = cats.offsets;
    c.category_values.assign(cats.values.begin(), cats.values.end());
  } else if (list_vector_dim > 0) {
    c.list_vectors = true;
    c.list_vector_dim = list_vector_dim;
  } else {
    c.vectors = item_vectors;
  }
  return c;
}

// Calls fn(batch, user vectors [rows x dim], catalogue vectors) for every batch of the split;
// returns the catalogue vectors (encoded once, on every rank).
template <typename Fn>
at::Tensor ForEachEvalBatch(TwoTowerModel& model, const std::string& data, Split split, int64_t batch_size,
                      Communicator& comm, Fn&& fn, int64_t sample_users = 0, const EvalProgress& progress = {}) {
  const c10::Device dev(comm.device());
  const bool was_training = model.is_training();
  model.train(false);
  torch::NoGradGuard no_grad;
  SequenceReader reader = EvalReader(data, split, batch_size, model.config().max_len, comm, model.catalog().num_items, sample_users);
  const ItemVectors items = EncodeCatalogue(model, reader.info().num_items);
  int64_t batches_done = 0, users_done = 0;
  while (auto b = reader.Next()) {
    users_done += b->global_rows;
    if (b->rows > 0) {
      fn(*b, model.EncodeHistory(BatchHistories(*b, model.config().history_features(), dev), items.input), items.output);
    }
    if (progress) progress(++batches_done, reader.num_batches(), users_done);
  }
  model.train(was_training);
  return items.output;
}

}  // namespace

ItemVectors EncodeCatalogue(TwoTowerModel& model, int64_t num_items) {
  torch::NoGradGuard no_grad;
  // Written chunk by chunk into one matrix (no list of chunks to concatenate), and one matrix for
  // both sides when the vectors are tied: at 20M x 64 each copy is 5 GB on every rank.
  const bool tied = !model.config().separate_input_vectors;
  ItemVectors all;
  const int64_t chunk = 65536;
  for (int64_t b = 0; b < num_items; b += chunk) {
    const int64_t n = std::min(num_items - b, chunk);
    const at::Tensor ids = torch::arange(b, b + n, torch::kLong);
    ItemVectors v = model.EncodeItemVectors(ids, ids);
    if (!all.output.defined()) {
      all.output = at::empty({num_items, v.output.size(1)}, v.output.options());
      all.input = tied ? all.output : at::empty({num_items, v.input.size(1)}, v.input.options());
    }
    all.output.narrow(0, b, n).copy_(v.output);
    if (!tied) all.input.narrow(0, b, n).copy_(v.input);
  }
  return all;
}

namespace {

// EvaluateModel under sharded scoring.
std::map<std::string, double> EvaluateSharded(TwoTowerModel& model, const EvalRequest& q, Communicator& comm) {
  const c10::Device dev(comm.device());
  const bool was_training = model.is_training();
  model.train(false);
  torch::NoGradGuard no_grad;
  SequenceReader reader = EvalReader(q.data, q.split, q.batch_size, model.config().max_len, comm, model.catalog().num_items, q.sample_users);
  const bool categories = reader.info().has_categories && reader.info().num_categories > 0;
  const int64_t list_dim = categories ? 0 : model.config().dim;
  MetricsAccumulator exact(MakeListContext(q.data, q.item_counts, at::Tensor(), q.cold, list_dim));
  std::optional<MetricsAccumulator> approximate;
  if (q.ann) approximate.emplace(MakeListContext(q.data, q.item_counts, at::Tensor(), q.cold, list_dim));
  ShardedScorer scorer(model, reader.info().num_items, comm, q.unknown, q.cold);
  int64_t batches_done = 0, users_done = 0;
  while (auto b = reader.Next()) {
    // Collective on every rank, also for a piece without rows.
    const at::Tensor users = model.EncodeHistory(BatchHistories(*b, model.config().history_features(), dev));
    std::vector<UserResult> results = scorer.Rank(*b, q.split, users), listed;
    if (q.ann && b->rows > 0) RankBatchWithIndex(*b, q.split, users, *q.ann, &listed);
    if (!categories) {  // diversity by the listed items' vectors, fetched from their ranks
      std::vector<int64_t> ids;
      for (const auto* set : {&results, &listed}) {
        for (const UserResult& r : *set) ids.insert(ids.end(), r.top.begin(), r.top.end());
      }
      const at::Tensor v = scorer.UnitVectors(ids);
      int64_t at = 0;
      for (auto* set : {&results, &listed}) {
        for (UserResult& r : *set) {
          r.top_vectors = v.narrow(0, at, static_cast<int64_t>(r.top.size())).contiguous();
          at += static_cast<int64_t>(r.top.size());
        }
      }
    }
    exact.Add(results);
    if (q.ann) approximate->Add(listed);
    users_done += b->global_rows;
    ReleaseFreeMemory();  // a batch takes seconds here (common/process_memory.h)
    if (q.progress) q.progress(++batches_done, reader.num_batches(), users_done);
  }
  model.train(was_training);
  auto m = exact.Reduce(comm);
  if (q.ann) {
    for (const auto& [k, v] : approximate->Reduce(comm)) m["ann_" + k] = v;
  }
  return m;
}

}  // namespace

std::map<std::string, double> EvaluateModel(TwoTowerModel& model, const EvalRequest& q, Communicator& comm) {
  if (UseShardedScoring(q.scoring, model, model.catalog().num_items, comm.world_size())) {
    return EvaluateSharded(model, q, comm);
  }
  // Each batch's results are reduced to per-user figures at once (lists are not kept).
  std::optional<MetricsAccumulator> exact, approximate;
  auto start = [&](const at::Tensor& catalogue) {
    if (exact) return;
    exact.emplace(MakeListContext(q.data, q.item_counts, catalogue, q.cold));
    if (q.ann) approximate.emplace(MakeListContext(q.data, q.item_counts, catalogue, q.cold));
  };
  const at::Tensor mask = q.unknown.defined() ? q.unknown.to(c10::Device(comm.device())).unsqueeze(0) : at::Tensor();
  const at::Tensor catalogue =
      ForEachEvalBatch(model, q.data, q.split, q.batch_size, comm, [&](const Batch& b, const at::Tensor& users, const at::Tensor& items) {
    start(items);
    at::Tensor scores = torch::matmul(users, items.t());
    if (mask.defined()) scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
    std::vector<UserResult> results;
    RankBatch(b, q.split, scores, &results, q.cold);
    exact->Add(results);
    if (!q.ann) return;
    results.clear();
    RankBatchWithIndex(b, q.split, users, *q.ann, &results);
    approximate->Add(results);
  }, q.sample_users, q.progress);
  start(catalogue);  // a rank without users
  auto m = exact->Reduce(comm);
  if (q.ann) {
    for (const auto& [k, v] : approximate->Reduce(comm)) m["ann_" + k] = v;
  }
  return m;
}

SplitUserVectors EvaluationUserVectors(TwoTowerModel& model, const std::string& data, Split split,
                                       int64_t batch_size, Communicator& comm) {
  SplitUserVectors out;
  std::vector<at::Tensor> parts;
  ForEachEvalBatch(model, data, split, batch_size, comm, [&](const Batch& b, const at::Tensor& users, const at::Tensor&) {
    out.users.insert(out.users.end(), b.users.begin(), b.users.end());
    parts.push_back(users.cpu());
  });
  out.vectors = parts.empty() ? torch::zeros({0, model.config().dim}) : torch::cat(parts);
  return out;
}

namespace {

// Item-to-item transitions (previous -> next) of every training sequence. A baseline-only
// shortcut: every rank reads all training events to build the table.
std::unordered_map<int64_t, std::unordered_map<int64_t, float>> Transitions(const Dataset& ds) {
  std::unordered_map<int64_t, std::unordered_map<int64_t, float>> next;
  ForEachTrainSequence(ds, 0, ds.info().num_users, [&](std::span<const int32_t> seq) {
    for (size_t k = 1; k < seq.size(); ++k) next[seq[k - 1]][seq[k]] += 1;
  });
  return next;
}

}  // namespace

std::map<std::string, double> EvaluateBaseline(const std::string& baseline, const EvalRequest& q, Communicator& comm) {
  if (baseline != "pop" && baseline != "cooc") Fail("--baseline: expected pop or cooc, got '", baseline, "'");
  auto ds = Dataset::Open(q.data);
  at::Tensor pop = torch::tensor(std::vector<int64_t>(q.item_counts.begin(), q.item_counts.end()), torch::kLong).to(torch::kFloat);
  const auto next = baseline == "cooc" ? Transitions(*ds) : decltype(Transitions(*ds))();
  SequenceReader reader = EvalReader(q.data, q.split, q.batch_size, 1, comm, ds->info().num_items, q.sample_users);
  // Popularity breaks ties (and ranks everything the transitions do not reach), scaled below 1.
  const at::Tensor tie = pop / (pop.max().item<float>() + 1.0f);
  // Baselines have no item vectors: diversity by categories only.
  MetricsAccumulator acc(MakeListContext(q.data, q.item_counts, at::Tensor(), q.cold));
  while (auto b = reader.Next()) {
    if (b->rows == 0) continue;
    at::Tensor scores = tie.unsqueeze(0).repeat({b->rows, 1});
    for (int64_t i = 0; i < b->rows && !next.empty(); ++i) {
      auto it = next.find(b->history_items[b->history_offsets[i + 1] - 1]);
      if (it == next.end()) continue;
      float* s = scores[i].data_ptr<float>();
      for (const auto& [j, c] : it->second) s[j] += c;
    }
    std::vector<UserResult> results;
    RankBatch(*b, q.split, scores, &results);
    acc.Add(results);
  }
  return acc.Reduce(comm);
}

EvalScoring ParseEvalScoring(const std::string& name) {
  if (name == "auto") return EvalScoring::kAuto;
  if (name == "replicated") return EvalScoring::kReplicated;
  if (name == "sharded") return EvalScoring::kSharded;
  Fail("--eval-scoring: expected auto, replicated or sharded, got '", name, "'");
}

}  // namespace shardrec
