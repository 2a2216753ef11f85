#include "train/stream.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <glog/logging.h>

#include "common/error.h"
#include "common/rng.h"
#include "io/reader.h"

namespace shardrec {

UserHistories UserHistories::FromDataset(const Dataset& ds, int64_t until) {
  UserHistories h(ds.info().num_users);
  ForEachUserBlock(ds, [&](int64_t u, int64_t v, const std::vector<int32_t>& items, const std::vector<int64_t>& ts) {
    const auto& off = ds.user_offsets();
    for (int64_t w = u; w < v; ++w) {
      for (int64_t e = off[w] - off[u]; e < off[w + 1] - off[u]; ++e) {
        if (!ts.empty() && ts[e] >= until) break;  // a user's events are in time order
        h.items_[w].push_back(items[e]);
        h.times_[w].push_back(ts.empty() ? 0 : ts[e]);
      }
    }
  });
  return h;
}

void UserHistories::Append(const StreamEvent& e) {
  CHECK(e.user >= 0 && e.user < users()) << "user " << e.user << " of " << users();
  items_[e.user].push_back(e.item);
  times_[e.user].push_back(e.ts);
}

StreamLearner::StreamLearner(TwoTowerModel& model, RetrievalLoss& loss, TrainStep& step, UserHistories& histories,
                             std::vector<int64_t> item_counts, Communicator& comm, const StreamLearnerOptions& options,
                             int64_t first_step)
    : model_(model), loss_(loss), step_(step), histories_(histories), counts_(std::move(item_counts)), comm_(comm),
      options_(options), next_step_(first_step) {
  CheckOptions(options);
  CHECK_EQ(static_cast<int64_t>(counts_.size()), loss.num_items());
  is_replayable_.assign(static_cast<size_t>(histories.users()), false);
  for (int64_t u = 0; u < histories.users(); ++u) {
    if (histories.length(u) >= 2) replayable_.push_back(u), is_replayable_[u] = true;
  }
}

void StreamLearner::CheckOptions(const StreamLearnerOptions& o) {
  RequireFlag(o.batch_events >= 1 && o.batch_events <= (int64_t{1} << 24), "stream-batch", "1 to 2^24 events", o.batch_events);
  RequireFlag(std::isfinite(o.replay) && o.replay >= 0 && o.replay <= 64, "replay", "0 to 64 replay rows per fresh row", o.replay);
  RequireFlag(std::isfinite(o.lr) && o.lr > 0, "stream-lr", "a finite rate > 0", o.lr);
}

int64_t StreamLearner::MaxPositions(const StreamLearnerOptions& o, int64_t max_len, int64_t batch_rows) {
  const int64_t replay = static_cast<int64_t>(std::ceil(o.replay * static_cast<double>(o.batch_events)));
  return std::max(o.batch_events + replay * max_len, batch_rows * max_len);
}

void StreamLearner::Append(const StreamEvent& e) {
  const int64_t items = static_cast<int64_t>(counts_.size());
  CHECK(e.item >= 0 && e.item < items) << "item " << e.item << " of " << items;
  histories_.Append(e);
  if (counts_[e.item]++ == 0) counts_dirty_ = true;
  if (e.user >= static_cast<int64_t>(is_replayable_.size())) is_replayable_.resize(static_cast<size_t>(histories_.users()), false);
  if (histories_.length(e.user) == 2 && !is_replayable_[e.user]) {
    replayable_.push_back(e.user);
    is_replayable_[e.user] = true;
  }
}

void StreamLearner::Observe(std::span<const StreamEvent> events) {
  CHECK(pending_.empty()) << "Observe with events waiting to be learnt: Flush first";
  for (const StreamEvent& e : events) Append(e);
}

void StreamLearner::Add(std::span<const StreamEvent> events) {
  for (const StreamEvent& e : events) {
    Append(e);
    ++pending_[e.user];
    if (++pending_events_ >= options_.batch_events) Flush();
  }
}

void StreamLearner::Flush() {
  if (pending_.empty()) return;
  const int64_t max_len = model_.config().max_len;
  std::vector<Row> rows;
  // A user's new events, newest first, in rows of at most max_len targets each, every target with
  // up to max_len events before it as input. A history's very first event has nothing before it
  // and is input only.
  for (const auto& [user, n] : pending_) {
    int64_t end = histories_.length(user), left = n;
    while (left > 0) {
      const int64_t take = std::min(left, max_len), length = std::min(end, max_len + 1);
      const int64_t first = std::max<int64_t>(1, length - take);
      if (length >= 2) {
        rows.push_back({user, end, length, first});
        learnt_ += length - first;
      }
      end -= take;
      left -= take;
    }
  }
  pending_.clear();
  pending_events_ = 0;
  const int64_t fresh = static_cast<int64_t>(rows.size());
  const int64_t replay = replayable_.empty() ? 0 : std::llround(options_.replay * static_cast<double>(fresh));
  Rng rng(HashKeys({options_.seed, 0x5245504CULL, static_cast<uint64_t>(next_step_)}));
  std::vector<int64_t> fresh_users;
  for (int64_t i = 0; i < fresh; ++i) fresh_users.push_back(rows[i].user);  // ascending (map order)
  for (int64_t i = 0; i < replay; ++i) {
    const int64_t u = replayable_[rng.Below(replayable_.size())];
    if (std::binary_search(fresh_users.begin(), fresh_users.end(), u)) continue;  // its new events are not replayed
    rows.push_back({u, histories_.length(u), std::min(histories_.length(u), max_len + 1), 1});
  }
  replay_rows_ += static_cast<int64_t>(rows.size()) - fresh;
  if (!rows.empty()) Step(std::move(rows));
}

void StreamLearner::Epoch(int64_t batch_rows, uint64_t seed) {
  CHECK_GE(batch_rows, 1);
  Flush();
  const int64_t max_len = model_.config().max_len;
  std::vector<int64_t> users = replayable_;
  std::sort(users.begin(), users.end());
  Rng rng(HashKeys({seed, 0x45504F43ULL}));
  rng.Shuffle(users.begin(), users.end());
  for (size_t b = 0; b < users.size(); b += static_cast<size_t>(batch_rows)) {
    std::vector<Row> rows;
    for (size_t i = b; i < std::min(users.size(), b + static_cast<size_t>(batch_rows)); ++i) {
      const int64_t u = users[i];
      rows.push_back({u, histories_.length(u), std::min(histories_.length(u), max_len + 1), 1});
    }
    Step(std::move(rows));
  }
}

void StreamLearner::RefreshCounts(bool force) {
  if (!force && !counts_dirty_ && since_counts_ < options_.counts_every) return;
  loss_.SetItemCounts(counts_);
  counts_dirty_ = false;
  since_counts_ = 0;
}

// The global batch is `rows`; this rank trains its contiguous piece of them.
void StreamLearner::Step(std::vector<Row> rows) {
  RefreshCounts(false);
  const int64_t global = static_cast<int64_t>(rows.size());
  const int64_t begin = global * comm_.rank() / comm_.world_size(), end = global * (comm_.rank() + 1) / comm_.world_size();
  Batch b;
  b.global_rows = global;
  b.row_offset = begin;
  b.rows = end - begin;
  for (const Row& r : rows) b.global_positions += r.length - r.first_target;
  for (int64_t i = begin; i < end; ++i) b.width = std::max(b.width, rows[i].length);
  b.width = std::max<int64_t>(b.width, 1);
  b.items.assign(static_cast<size_t>(b.rows * b.width), -1);
  if (options_.timestamps) b.timestamps.assign(b.items.size(), 0);
  for (int64_t i = begin; i < end; ++i) {
    const Row& r = rows[i];
    const auto items = histories_.items(r.user), times = histories_.times(r.user);
    for (int64_t k = 0; k < r.length; ++k) {
      b.items[(i - begin) * b.width + k] = items[r.end - r.length + k];
      if (options_.timestamps) b.timestamps[(i - begin) * b.width + k] = times[r.end - r.length + k];
    }
    b.users.push_back(r.user);
    b.lengths.push_back(static_cast<int32_t>(r.length));
    b.first_targets.push_back(static_cast<int32_t>(r.first_target));
  }
  const double share = options_.full_rows > 0 ? std::min(1.0, static_cast<double>(global) / static_cast<double>(options_.full_rows)) : 1.0;
  step_.SetLr(options_.lr * share);
  at::Tensor sum = step_.Run(b, next_step_).to(at::kFloat).reshape({1});
  comm_.AllReduce(sum, ReduceOp::kSum);
  last_loss_ = static_cast<double>(sum.cpu().item<float>()) / static_cast<double>(std::max<int64_t>(1, b.global_positions));
  if (!std::isfinite(last_loss_)) {
    Fail("streaming diverged: the loss is ", last_loss_, " at step ", next_step_, "; lower --lr or --embedding-lr");
  }
  ++next_step_;
  ++steps_;
  ++since_counts_;
}

}  // namespace shardrec
