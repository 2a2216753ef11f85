#include "eval/sharded_scorer.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "io/cold_start.h"

namespace shardrec {
namespace {

constexpr float kOut = -std::numeric_limits<float>::infinity();

}  // namespace

int64_t TrainingEvents(const Batch& b, int64_t i, Split split) {
  return b.history_offsets[i + 1] - b.history_offsets[i] - (split == Split::kTest ? 1 : 0);
}

ShardedScorer::ShardedScorer(TwoTowerModel& model, int64_t num_items, Communicator& comm, const at::Tensor& unknown,
                             const ColdItems* cold)
    : comm_(comm), cold_(cold), num_items_(num_items) {
  std::tie(begin_, end_) = RankRange(num_items, comm.world_size(), comm.rank());
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

std::vector<UserResult> ShardedScorer::Rank(const Batch& b, Split split, const at::Tensor& users) {
  const Gathered g = Gather(b, users);
  at::Tensor scores;
  const at::Tensor counts = CountAbove(g, scores);
  return MergeLists(b, split, g, scores, counts);
}

// Every rank gets every row of the batch: its user vector and target, and the history items in the
// receiving rank's range (the target is never excluded).
ShardedScorer::Gathered ShardedScorer::Gather(const Batch& b, const at::Tensor& users) {
  const int w = comm_.world_size();
  const auto dev = items_.device();
  const int64_t rows = b.rows, n = end_ - begin_;
  const auto longs = at::TensorOptions().dtype(at::kLong);
  Gathered g;
  const std::vector<int64_t> mine(static_cast<size_t>(w), rows);
  AllToAllResult u = comm_.AllToAll(users.to(dev, at::kFloat).contiguous().repeat({w, 1}), mine);
  g.users = u.output;
  g.from = u.recv_splits;
  g.first.assign(static_cast<size_t>(w) + 1, 0);
  for (int r = 0; r < w; ++r) g.first[r + 1] = g.first[r] + g.from[r];
  g.targets = comm_.AllToAll(torch::tensor(b.targets, longs).view({rows}).repeat({w}).to(dev), mine, g.from).output.cpu();
  std::vector<int64_t> pairs, pair_splits(static_cast<size_t>(w), 0);
  for (int q = 0; q < w; ++q) {
    const auto [qb, qe] = RankRange(num_items_, w, q);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t k = b.history_offsets[i]; k < b.history_offsets[i + 1]; ++k) {
        const int64_t e = b.history_items[k];
        if (e >= qb && e < qe && e != b.targets[i]) pairs.push_back(i), pairs.push_back(e), ++pair_splits[q];
      }
    }
  }
  AllToAllResult ex = comm_.AllToAll(torch::tensor(pairs, longs).view({-1, 2}).to(dev), pair_splits);
  const at::Tensor ex_cpu = ex.output.cpu().contiguous();
  g.excluded.resize(static_cast<size_t>(g.rows()));  // local columns
  const int64_t* p = ex_cpu.data_ptr<int64_t>();
  int64_t at_pair = 0;
  for (int r = 0; r < w; ++r) {
    for (int64_t k = 0; k < ex.recv_splits[r]; ++k, ++at_pair) {
      const int64_t row = g.first[r] + p[2 * at_pair], col = p[2 * at_pair + 1] - begin_;
      CHECK(row >= g.first[r] && row < g.first[r + 1] && col >= 0 && col < n);
      g.excluded[row].push_back(col);
    }
  }
  return g;
}

at::Tensor ShardedScorer::CountAbove(const Gathered& g, at::Tensor& scores) {
  const auto dev = items_.device();
  const int64_t n = end_ - begin_, g_rows = g.rows();
  const auto longs = at::TensorOptions().dtype(at::kLong);
  scores = at::matmul(g.users, items_.t()).to(at::kCPU, at::kFloat).contiguous();
  if (unknown_.defined() && n > 0) scores.masked_fill_(unknown_.unsqueeze(0), kOut);
  float* s = scores.data_ptr<float>();
  const int64_t* t = g.targets.data_ptr<int64_t>();
  // The rank of a cold target among the cold items is counted before the exclusions (which are
  // skipped explicitly there), as the replicated ranking does.
  at::Tensor target_scores = at::zeros({g_rows}, at::kFloat);
  for (int64_t r = 0; r < g_rows; ++r) {
    if (t[r] >= begin_ && t[r] < end_) target_scores.data_ptr<float>()[r] = s[r * n + t[r] - begin_];
  }
  target_scores = target_scores.to(dev);
  comm_.AllReduce(target_scores, ReduceOp::kSum);  // one rank holds each target: x + 0 = x
  target_scores = target_scores.cpu();
  const float* st = target_scores.data_ptr<float>();
  at::Tensor counts = at::zeros({2, g_rows}, longs);  // [0]: items above the target, [1]: cold items above it
  int64_t* above = counts.data_ptr<int64_t>();
  int64_t* cold_above = above + g_rows;
  std::vector<uint8_t> skip(static_cast<size_t>(n), 0);
  for (int64_t r = 0; r < g_rows; ++r) {
    const float* row = s + r * n;
    const int64_t tl = t[r] - begin_;  // the target's column (outside [0, n) on other ranks)
    if (cold_ && cold_->cold[static_cast<size_t>(t[r])]) {
      for (int64_t c : g.excluded[r]) skip[c] = 1;
      const uint8_t* cold = cold_->cold.data() + begin_;
      for (int64_t j = 0; j < n; ++j) {
        cold_above[r] += cold[j] && j != tl && !skip[j] && (row[j] > st[r] || (row[j] == st[r] && j < tl));
      }
      for (int64_t c : g.excluded[r]) skip[c] = 0;
    }
    float* mut = s + r * n;
    for (int64_t c : g.excluded[r]) mut[c] = kOut;
    for (int64_t j = 0; j < n; ++j) above[r] += (row[j] > st[r]) || (row[j] == st[r] && j < tl);
  }
  counts = counts.to(dev);
  comm_.AllReduce(counts, ReduceOp::kSum);
  return counts.cpu();
}

std::vector<UserResult> ShardedScorer::MergeLists(const Batch& b, Split split, const Gathered& g,
                                                  const at::Tensor& scores, const at::Tensor& counts) {
  const int w = comm_.world_size();
  const auto dev = items_.device();
  const int64_t rows = b.rows, n = end_ - begin_, g_rows = g.rows();
  const auto longs = at::TensorOptions().dtype(at::kLong);
  const float* s = scores.data_ptr<float>();
  // This rank's best kListLength of every row, back to the row's rank: ids (-1 pads a shorter list)
  // and scores.
  const std::vector<std::vector<int64_t>> lists = TopLists(scores);
  const int64_t L = kListLength;
  at::Tensor list_ids = at::full({g_rows, L}, -1, longs), list_scores = at::full({g_rows, L}, kOut, at::kFloat);
  int64_t* ids_out = list_ids.data_ptr<int64_t>();
  float* scores_out = list_scores.data_ptr<float>();
  for (int64_t r = 0; r < g_rows; ++r) {
    for (size_t k = 0; k < lists[r].size(); ++k) {
      const int64_t c = lists[r][k];
      ids_out[r * L + static_cast<int64_t>(k)] = begin_ + c;
      scores_out[r * L + static_cast<int64_t>(k)] = s[r * n + c];
    }
  }
  const std::vector<int64_t> mine(static_cast<size_t>(w), rows);
  const at::Tensor got_ids = comm_.AllToAll(list_ids.to(dev), g.from, mine).output.cpu().contiguous();
  const at::Tensor got_scores = comm_.AllToAll(list_scores.to(dev), g.from, mine).output.cpu().contiguous();
  // Merge the W lists of each of this rank's rows.
  std::vector<UserResult> out(static_cast<size_t>(rows));
  const int64_t me = g.first[comm_.rank()];
  const int64_t* above_all = counts.data_ptr<int64_t>();
  struct Entry {
    float score;
    int64_t id;
  };
  for (int64_t i = 0; i < rows; ++i) {
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

at::Tensor ShardedScorer::UnitVectors(const std::vector<int64_t>& ids) {
  const int w = comm_.world_size();
  const auto dev = items_.device();
  const int64_t d = items_.size(1);
  std::vector<int> owner(ids.size());
  std::vector<int64_t> splits(static_cast<size_t>(w), 0);
  for (size_t k = 0; k < ids.size(); ++k) {
    CHECK(ids[k] >= 0 && ids[k] < num_items_) << "item " << ids[k];
    int r = static_cast<int>(std::min<int64_t>(w - 1, ids[k] * w / std::max<int64_t>(1, num_items_)));
    while (RankRange(num_items_, w, r).first > ids[k]) --r;
    while (RankRange(num_items_, w, r).second <= ids[k]) ++r;
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

}  // namespace shardrec
