#include "train/evaluate.h"

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
#include "retrieval/index.h"
#include "train/checkpoint.h"
#include "train/item_data.h"
#include "train/metrics.h"
#include "train/trainer.h"

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

// Training events of row i: its history, less the validation event when the target is the test one.
int64_t TrainingEvents(const Batch& b, int64_t i, Split split) {
  return b.history_offsets[i + 1] - b.history_offsets[i] - (split == Split::kTest ? 1 : 0);
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

// Rank r's items under sharded scoring, as the export shards them.
std::pair<int64_t, int64_t> ItemRange(int64_t num_items, int world_size, int rank) {
  return {num_items * rank / world_size, num_items * (rank + 1) / world_size};
}

// Catalogue-sharded scoring, for catalogues whose vectors should not sit on every rank: rank r
// encodes only its items [I r / W, I (r + 1) / W) and scores every rank's users of a batch against
// them. For each user the ranks add up the target's rank among their items (all-reduce), and send
// their best kListLength back to the user's rank, which merges them by (score, id): the ranks and
// lists of scoring the whole catalogue in one place, from 1/W of its vectors per rank.
class ShardedScorer {
 public:
  // COLLECTIVE. `unknown` ([I] bool, optional) and `cold` as for EvaluateModel.
  ShardedScorer(TwoTowerModel& model, int64_t num_items, Communicator& comm, const at::Tensor& unknown, const ColdItems* cold)
      : comm_(comm), cold_(cold), num_items_(num_items) {
    std::tie(begin_, end_) = ItemRange(num_items, comm.world_size(), comm.rank());
    const int64_t chunk = 65536, most = (num_items + comm.world_size() - 1) / comm.world_size();
    const auto dev = c10::Device(comm.device());
    items_ = at::empty({end_ - begin_, model.config().dim}, at::TensorOptions().dtype(at::kFloat).device(dev));
    for (int64_t c = 0; c < std::max<int64_t>(1, (most + chunk - 1) / chunk); ++c) {  // the same calls on every rank
      const int64_t b = std::min(end_, begin_ + c * chunk), e = std::min(end_, b + chunk);
      at::Tensor v = model.EncodeDistinctItems(torch::arange(b, e, torch::TensorOptions().dtype(torch::kLong).device(dev)));
      if (e > b) items_.narrow(0, b - begin_, e - b).copy_(v.to(at::kFloat));
    }
    if (unknown.defined()) unknown_ = unknown.narrow(0, begin_, end_ - begin_).to(at::kCPU).contiguous();
  }

  // COLLECTIVE: on every rank for every batch, also one without rows. The results of this rank's
  // rows of `b`, whose user vectors are `users` [rows x dim].
  std::vector<UserResult> Rank(const Batch& b, Split split, const at::Tensor& users) {
    const int w = comm_.world_size();
    const auto dev = items_.device();
    const int64_t rows = b.rows, n = end_ - begin_;
    const auto longs = at::TensorOptions().dtype(at::kLong);
    // 1. Every rank gets every row of the batch: its user vector and target, and the history items
    //    in the receiving rank's range (the target is never excluded).
    const std::vector<int64_t> mine(static_cast<size_t>(w), rows);
    AllToAllResult u = comm_.AllToAll(users.to(dev, at::kFloat).contiguous().repeat({w, 1}), mine);
    const std::vector<int64_t> from = u.recv_splits;
    std::vector<int64_t> first(static_cast<size_t>(w) + 1, 0);  // row g of the gathered batch: rank r's rows start at first[r]
    for (int r = 0; r < w; ++r) first[r + 1] = first[r] + from[r];
    const int64_t g_rows = first[w];
    at::Tensor targets = comm_.AllToAll(torch::tensor(b.targets, longs).view({rows}).repeat({w}).to(dev), mine, from).output.cpu();
    std::vector<int64_t> pairs, pair_splits(static_cast<size_t>(w), 0);
    for (int q = 0; q < w; ++q) {
      const auto [qb, qe] = ItemRange(num_items_, w, q);
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t k = b.history_offsets[i]; k < b.history_offsets[i + 1]; ++k) {
          const int64_t e = b.history_items[k];
          if (e >= qb && e < qe && e != b.targets[i]) pairs.push_back(i), pairs.push_back(e), ++pair_splits[q];
        }
      }
    }
    AllToAllResult ex = comm_.AllToAll(torch::tensor(pairs, longs).view({-1, 2}).to(dev), pair_splits);
    const at::Tensor ex_cpu = ex.output.cpu().contiguous();
    // 2. Scores of every row against this rank's items, excluded and unknown items at -inf.
    at::Tensor scores = at::matmul(u.output, items_.t()).to(at::kCPU, at::kFloat).contiguous();
    constexpr float kOut = -std::numeric_limits<float>::infinity();
    if (unknown_.defined() && n > 0) scores.masked_fill_(unknown_.unsqueeze(0), kOut);
    float* s = scores.data_ptr<float>();
    const int64_t* t = targets.data_ptr<int64_t>();
    std::vector<std::vector<int64_t>> excluded(static_cast<size_t>(g_rows));  // local columns
    {
      const int64_t* p = ex_cpu.data_ptr<int64_t>();
      int64_t at_pair = 0;
      for (int r = 0; r < w; ++r) {
        for (int64_t k = 0; k < ex.recv_splits[r]; ++k, ++at_pair) {
          const int64_t g = first[r] + p[2 * at_pair], col = p[2 * at_pair + 1] - begin_;
          CHECK(g >= first[r] && g < first[r + 1] && col >= 0 && col < n);
          excluded[g].push_back(col);
        }
      }
    }
    // The rank of a cold target among the cold items is counted before the exclusions (which are
    // skipped explicitly there), as RankBatch does.
    at::Tensor target_scores = at::zeros({g_rows}, at::kFloat);
    for (int64_t g = 0; g < g_rows; ++g) {
      if (t[g] >= begin_ && t[g] < end_) target_scores.data_ptr<float>()[g] = s[g * n + t[g] - begin_];
    }
    target_scores = target_scores.to(dev);
    comm_.AllReduce(target_scores, ReduceOp::kSum);  // one rank holds each target: x + 0 = x
    target_scores = target_scores.cpu();
    const float* st = target_scores.data_ptr<float>();
    at::Tensor counts = at::zeros({2, g_rows}, longs);  // [0]: items above the target, [1]: cold items above it
    int64_t* above = counts.data_ptr<int64_t>();
    int64_t* cold_above = above + g_rows;
    std::vector<uint8_t> skip(static_cast<size_t>(n), 0);
    for (int64_t g = 0; g < g_rows; ++g) {
      const float* row = s + g * n;
      const int64_t tl = t[g] - begin_;  // the target's column (outside [0, n) on other ranks)
      if (cold_ && cold_->cold[static_cast<size_t>(t[g])]) {
        for (int64_t c : excluded[g]) skip[c] = 1;
        const uint8_t* cold = cold_->cold.data() + begin_;
        for (int64_t j = 0; j < n; ++j) {
          cold_above[g] += cold[j] && j != tl && !skip[j] && (row[j] > st[g] || (row[j] == st[g] && j < tl));
        }
        for (int64_t c : excluded[g]) skip[c] = 0;
      }
      float* mut = s + g * n;
      for (int64_t c : excluded[g]) mut[c] = kOut;
      for (int64_t j = 0; j < n; ++j) above[g] += (row[j] > st[g]) || (row[j] == st[g] && j < tl);
    }
    counts = counts.to(dev);
    comm_.AllReduce(counts, ReduceOp::kSum);
    counts = counts.cpu();
    // 3. This rank's best kListLength of every row, back to the row's rank: ids (-1 pads a shorter
    //    list) and scores.
    const std::vector<std::vector<int64_t>> lists = TopLists(scores);
    const int64_t L = kListLength;
    at::Tensor list_ids = at::full({g_rows, L}, -1, longs), list_scores = at::full({g_rows, L}, kOut, at::kFloat);
    int64_t* ids_out = list_ids.data_ptr<int64_t>();
    float* scores_out = list_scores.data_ptr<float>();
    for (int64_t g = 0; g < g_rows; ++g) {
      for (size_t k = 0; k < lists[g].size(); ++k) {
        const int64_t c = lists[g][k];
        ids_out[g * L + static_cast<int64_t>(k)] = begin_ + c;
        scores_out[g * L + static_cast<int64_t>(k)] = s[g * n + c];
      }
    }
    const std::vector<int64_t> back(from.begin(), from.end());
    const at::Tensor got_ids = comm_.AllToAll(list_ids.to(dev), back, mine).output.cpu().contiguous();
    const at::Tensor got_scores = comm_.AllToAll(list_scores.to(dev), back, mine).output.cpu().contiguous();
    // 4. Merge the W lists of each of this rank's rows.
    std::vector<UserResult> out(static_cast<size_t>(rows));
    const int64_t me = first[comm_.rank()];
    const int64_t* above_all = counts.data_ptr<int64_t>();
    for (int64_t i = 0; i < rows; ++i) {
      struct Entry {
        float score;
        int64_t id;
      };
      std::vector<Entry> all;
      for (int r = 0; r < w; ++r) {
        const int64_t at_row = (r * rows + i) * L;
        for (int64_t k = 0; k < L; ++k) {
          const int64_t id = got_ids.data_ptr<int64_t>()[at_row + k];
          const float sc = got_scores.data_ptr<float>()[at_row + k];
          if (id >= 0 && sc != kOut) all.push_back({sc, id});
        }
      }
      std::sort(all.begin(), all.end(), [](const Entry& a, const Entry& c) { return a.score > c.score || (a.score == c.score && a.id < c.id); });
      if (static_cast<int64_t>(all.size()) > L) all.resize(static_cast<size_t>(L));
      UserResult& r = out[i];
      r.user = b.users[i];
      r.target = b.targets[i];
      r.rank = above_all[me + i];
      if (cold_ && cold_->cold[static_cast<size_t>(r.target)]) r.cold_rank = above_all[g_rows + me + i];
      r.history = TrainingEvents(b, i, split);
      for (const Entry& e : all) r.top.push_back(e.id);
    }
    return out;
  }

  // COLLECTIVE. The unit vectors [n x dim] (CPU) of any items, from the ranks that hold them (the
  // lists' vectors for diversity where the data has no categories).
  at::Tensor UnitVectors(const std::vector<int64_t>& ids) {
    const int w = comm_.world_size();
    const auto dev = items_.device();
    const int64_t d = items_.size(1);
    std::vector<int> owner(ids.size());
    std::vector<int64_t> splits(static_cast<size_t>(w), 0);
    for (size_t k = 0; k < ids.size(); ++k) {
      CHECK(ids[k] >= 0 && ids[k] < num_items_) << "item " << ids[k];
      int r = static_cast<int>(std::min<int64_t>(w - 1, ids[k] * w / std::max<int64_t>(1, num_items_)));
      while (ItemRange(num_items_, w, r).first > ids[k]) --r;
      while (ItemRange(num_items_, w, r).second <= ids[k]) ++r;
      owner[k] = r;
      ++splits[r];
    }
    std::vector<size_t> order(ids.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t c) { return owner[a] < owner[c]; });
    std::vector<int64_t> sorted;
    for (size_t k : order) sorted.push_back(ids[k]);
    AllToAllResult asked = comm_.AllToAll(torch::tensor(sorted, torch::kLong).view({-1}).to(dev), splits);
    const at::Tensor rows = (asked.output - begin_).to(dev);
    at::Tensor v = items_.index_select(0, rows);
    v = v / v.norm(2, 1, true).clamp_min(1e-12);
    const at::Tensor got = comm_.AllToAll(v.contiguous(), asked.recv_splits, splits).output.cpu().contiguous();
    std::vector<int64_t> place(order.begin(), order.end());
    return at::empty({static_cast<int64_t>(ids.size()), d}, at::kFloat).index_copy_(0, torch::tensor(place, torch::kLong), got);
  }

 private:
  Communicator& comm_;
  const ColdItems* cold_;
  int64_t num_items_;
  int64_t begin_ = 0, end_ = 0;
  at::Tensor items_;    // [end - begin x dim] output vectors of this rank's items, on the device
  at::Tensor unknown_;  // [end - begin] bool, CPU (undefined: none)
};

// What the list metrics need: training counts, and the data's categories for diversity where it
// has them, else `item_vectors` (undefined: no diversity), or with `list_vector_dim` > 0 the
// vectors each result brings (sharded scoring).
ListContext MakeListContext(const std::string& data, const std::vector<int64_t>& counts, const at::Tensor& item_vectors,
                            const ColdItems* cold, int64_t list_vector_dim = 0) {
  ListContext c{.num_items = static_cast<int64_t>(counts.size()), .item_counts = counts};
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
std::map<std::string, double> EvaluateSharded(TwoTowerModel& model, const std::string& data, Split split, int64_t batch_size,
                                              Communicator& comm, const std::vector<int64_t>& counts, const ShardedIndex* ann,
                                              const at::Tensor& unknown, const ColdItems* cold, int64_t sample_users,
                                              const EvalProgress& progress) {
  const c10::Device dev(comm.device());
  const bool was_training = model.is_training();
  model.train(false);
  torch::NoGradGuard no_grad;
  SequenceReader reader = EvalReader(data, split, batch_size, model.config().max_len, comm, model.catalog().num_items, sample_users);
  const bool categories = reader.info().has_categories && reader.info().num_categories > 0;
  const int64_t list_dim = categories ? 0 : model.config().dim;
  MetricsAccumulator exact(MakeListContext(data, counts, at::Tensor(), cold, list_dim));
  std::optional<MetricsAccumulator> approximate;
  if (ann) approximate.emplace(MakeListContext(data, counts, at::Tensor(), cold, list_dim));
  ShardedScorer scorer(model, reader.info().num_items, comm, unknown, cold);
  int64_t batches_done = 0, users_done = 0;
  while (auto b = reader.Next()) {
    // Collective on every rank, also for a piece without rows.
    const at::Tensor users = model.EncodeHistory(BatchHistories(*b, model.config().history_features(), dev));
    std::vector<UserResult> results = scorer.Rank(*b, split, users), listed;
    if (ann && b->rows > 0) RankBatchWithIndex(*b, split, users, *ann, &listed);
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
    if (ann) approximate->Add(listed);
    users_done += b->global_rows;
    ReleaseFreeMemory();  // a batch takes seconds here (common/process_memory.h)
    if (progress) progress(++batches_done, reader.num_batches(), users_done);
  }
  model.train(was_training);
  auto m = exact.Reduce(comm);
  if (ann) {
    for (const auto& [k, v] : approximate->Reduce(comm)) m["ann_" + k] = v;
  }
  return m;
}

}  // namespace

std::map<std::string, double> EvaluateModel(TwoTowerModel& model, const std::string& data, Split split,
                                            int64_t batch_size, Communicator& comm,
                                            const std::vector<int64_t>& counts, const ShardedIndex* ann,
                                            const at::Tensor& unknown, const ColdItems* cold, int64_t sample_users,
                                            EvalScoring scoring, const EvalProgress& progress) {
  if (UseShardedScoring(scoring, model, model.catalog().num_items, comm.world_size())) {
    return EvaluateSharded(model, data, split, batch_size, comm, counts, ann, unknown, cold, sample_users, progress);
  }
  // Each batch's results are reduced to per-user figures at once (lists are not kept).
  std::optional<MetricsAccumulator> exact, approximate;
  auto start = [&](const at::Tensor& catalogue) {
    if (exact) return;
    exact.emplace(MakeListContext(data, counts, catalogue, cold));
    if (ann) approximate.emplace(MakeListContext(data, counts, catalogue, cold));
  };
  const at::Tensor mask = unknown.defined() ? unknown.to(c10::Device(comm.device())).unsqueeze(0) : at::Tensor();
  const at::Tensor catalogue =
      ForEachEvalBatch(model, data, split, batch_size, comm, [&](const Batch& b, const at::Tensor& users, const at::Tensor& items) {
    start(items);
    at::Tensor scores = torch::matmul(users, items.t());
    if (mask.defined()) scores.masked_fill_(mask, -std::numeric_limits<float>::infinity());
    std::vector<UserResult> results;
    RankBatch(b, split, scores, &results, cold);
    exact->Add(results);
    if (!ann) return;
    results.clear();
    RankBatchWithIndex(b, split, users, *ann, &results);
    approximate->Add(results);
  }, sample_users, progress);
  start(catalogue);  // a rank without users
  auto m = exact->Reduce(comm);
  if (ann) {
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

std::map<std::string, double> EvaluateBaseline(const EvalOptions& o, Communicator& comm, const ColdItems* cold) {
  auto ds = Dataset::Open(o.data);
  const Split split = o.split == "valid" ? Split::kValid : Split::kTest;
  std::vector<int64_t> counts = TrainItemCounts(*ds, comm);
  at::Tensor pop = torch::tensor(counts, torch::kLong).to(torch::kFloat);
  if (o.baseline != "pop" && o.baseline != "cooc") Fail("--baseline: expected pop or cooc, got '", o.baseline, "'");
  const auto next = o.baseline == "cooc" ? Transitions(*ds) : decltype(Transitions(*ds))();
  SequenceReader reader = EvalReader(o.data, split, o.batch_size, 1, comm, ds->info().num_items, o.sample_users);
  // Popularity breaks ties (and ranks everything the transitions do not reach), scaled below 1.
  const at::Tensor tie = pop / (pop.max().item<float>() + 1.0f);
  // Baselines have no item vectors: diversity by categories only.
  MetricsAccumulator acc(MakeListContext(o.data, counts, at::Tensor(), cold));
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
    RankBatch(*b, split, scores, &results);
    acc.Add(results);
  }
  return acc.Reduce(comm);
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
    const std::string protocol = ColdStartDataPath(o.run_dir);
    if (!o.run_dir.empty() && o.baseline.empty() && IsColdStartDatasetOf(protocol, *source, o.cold_items, o.cold_seed)) {
      data = protocol;
    }
  }
  if (histories) *histories = data;
  if (!o.baseline.empty()) return EvaluateBaseline(o, comm, cold ? &*cold : nullptr);
  auto ds = Dataset::Open(data);
  ItemCatalog catalog = LoadItemCatalog(*ds);
  const std::vector<int64_t> counts = TrainItemCounts(*ds, comm);
  TwoTowerModel model(o.model, catalog, PlanItemTables(o.model, catalog, comm), &comm, o.seed);
  LoadModel(model, o.run_dir + "/model", comm);
  std::unique_ptr<ShardedIndex> ann;
  if (!o.ann_export.empty()) {
    ann = ShardedIndex::Open(ResolveExport(o.ann_export));
    // Ranks are item rows: the export must hold the evaluation data's items, row for row (an
    // export made with --add-items holds more).
    const ExportManifest& m = ann->manifest();
    bool same = m.num_items == catalog.num_items;
    if (same) {
      const std::vector<std::string> raw = ds->ReadItemRawIds(0, catalog.num_items);
      for (int64_t i = 0; same && i < catalog.num_items; ++i) same = ann->raw_id(i) == raw[static_cast<size_t>(i)];
    }
    if (!same) {
      Fail("--ann ", o.ann_export, ": export ", m.version, " holds the catalogue of ", m.data, " (", m.num_items,
           " items), not the item ids of ", data, " (", catalog.num_items,
           " items); evaluate an export of the evaluation data (an export made with --add-items also serves items "
           "the data does not have)");
    }
  }
  return EvaluateModel(model, data, o.split == "valid" ? Split::kValid : Split::kTest, o.batch_size, comm, counts,
                       ann.get(), {}, cold ? &*cold : nullptr, o.sample_users, o.scoring, o.progress);
}

}  // namespace shardrec
