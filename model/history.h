// A batch of user histories as the user tower reads them: the one place where host-side histories
// (item ids and timestamps) become tensors, for training, evaluation, export, recall and query alike.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace shardrec {

// Bucket of a time gap in seconds: 0 for the first event (and negative gaps), then
// 1 + floor(log2(1 + gap/60)), capped at buckets - 1.
int64_t GapBucket(int64_t gap_seconds, int64_t buckets);

// A request time nobody gave (an exported user vector, `query` without --at).
inline constexpr int64_t kUnknownTime = std::numeric_limits<int64_t>::min();

// Context features (ModelConfig::context): rows of one embedding table, five per position. An
// event brings the hour of day and the day of week (UTC) of its own time, and of the request it
// precedes (the next event's time, or the request time after the last event) with the gap to it.
// A request feature takes the first row of its range when the request time is unknown; those rows
// stay zero, so an unknown request adds nothing.
struct ContextRows {
  static constexpr int64_t kEventHour = 0;      // 24 rows
  static constexpr int64_t kEventDay = 24;      // 7 rows, Monday first
  static constexpr int64_t kRequestHour = 31;   // 1 + 24 rows
  static constexpr int64_t kRequestDay = 56;    // 1 + 7 rows
  static constexpr int64_t kRequestGap = 64;    // 1 + kRequestGapBuckets rows
  static constexpr int64_t kRequestGapBuckets = 23;
  static constexpr int64_t kTotal = 88;
  static constexpr int64_t kPerPosition = 5;
};
// The five context rows of an event at `time` (unix seconds) followed by a request at `request`
// (kUnknownTime: unknown). The request gap bucket is GapBucket(request - time, kRequestGapBuckets).
void ContextIndices(int64_t time, int64_t request, int64_t out[ContextRows::kPerPosition]);

// What MakeHistoryBatch computes besides the items (ModelConfig::history_features()).
struct HistoryFeatures {
  int64_t time_buckets = 0;  // gap buckets between events; 0 = none
  bool context = false;      // ContextRows per position
};

// rows histories, left-aligned in a [rows x width] layout; row i holds lengths[i] >= 0 events.
struct HistoryBatch {
  int64_t rows = 0;
  int64_t width = 0;
  at::Tensor items;    // int64 [rows x width]; padding positions hold -1
  at::Tensor lengths;  // int64 [rows]
  at::Tensor gaps;     // int64 [rows x width] gap buckets (0 at the first event and padding), or undefined
  at::Tensor context;  // int64 [rows x width x ContextRows::kPerPosition], or undefined
  // int64 [rows] on the host, training only: each row's key for its dropout masks (its place in the
  // global batch, model/keyed_mask.h); undefined = 0 .. rows - 1.
  at::Tensor keys;

  // The same histories with each item replaced by its row in `sorted_ids` (sorted, distinct, and
  // holding every item of the histories); padding stays -1.
  HistoryBatch IndexedBy(const at::Tensor& sorted_ids) const;
};

// items: [rows x width] (values at padding positions are ignored); timestamps: [rows x width] or
// empty (no time features); lengths: [rows]; requests: [rows], the request time after each
// history's last event (kUnknownTime where unknown), or empty (all unknown). Gaps are computed
// when timestamps are given and features.time_buckets > 0, context when timestamps are given and
// features.context. Filled on the host in one pass, then moved to `device` once.
HistoryBatch MakeHistoryBatch(int64_t rows, int64_t width, std::span<const int64_t> items,
                              std::span<const int64_t> timestamps, std::span<const int64_t> lengths,
                              std::span<const int64_t> requests, const HistoryFeatures& features,
                              const c10::Device& device);

// Histories given one by one (a user's events, as export, query and explanations have them), each
// kept to its last `max_len` events and laid out left-aligned for MakeHistoryBatch: the one place
// that trims and flattens histories outside the reader. Not thread-safe.
class HistoryBuilder {
 public:
  // `timestamps`: whether every history added brings its events' times.
  HistoryBuilder(int64_t max_len, bool timestamps) : max_len_(max_len), timestamps_(timestamps) {}
  // Adds a history (oldest event first; `timestamps` empty or one per item) and the request time
  // after it. Returns how many of its events are kept (the last ones).
  int64_t Add(std::span<const int64_t> items, std::span<const int64_t> timestamps, int64_t request = kUnknownTime);
  int64_t Add(std::span<const int32_t> items, std::span<const int64_t> timestamps, int64_t request = kUnknownTime);
  int64_t rows() const { return static_cast<int64_t>(lengths_.size()); }
  // The histories added, [rows x width] with width the longest kept (at least 1).
  HistoryBatch Build(const HistoryFeatures& features, const c10::Device& device) const;

 private:
  template <typename T>
  int64_t AddAny(std::span<const T> items, std::span<const int64_t> timestamps, int64_t request);
  int64_t max_len_;
  bool timestamps_;
  std::vector<int64_t> items_, stamps_;  // each history's kept events, one after another
  std::vector<int64_t> lengths_, requests_;
};

}  // namespace shardrec
