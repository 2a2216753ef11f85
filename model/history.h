// A batch of user histories as the user tower reads them: the one place where host-side histories
// (item ids and timestamps) become tensors, for training, evaluation, export, recall and query alike.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <span>

namespace shardrec {

// Bucket of a time gap in seconds: 0 for the first event (and negative gaps), then
// 1 + floor(log2(1 + gap/60)), capped at buckets - 1.
int64_t GapBucket(int64_t gap_seconds, int64_t buckets);

// rows histories, left-aligned in a [rows x width] layout; row i holds lengths[i] >= 0 events.
struct HistoryBatch {
  int64_t rows = 0;
  int64_t width = 0;
  at::Tensor items;    // int64 [rows x width]; padding positions hold -1
  at::Tensor lengths;  // int64 [rows]
  at::Tensor gaps;     // int64 [rows x width] gap buckets (0 at the first event and padding), or undefined

  // The first `width` positions (lengths capped at width): a training step's inputs.
  HistoryBatch Prefix(int64_t width) const;
  // The same histories with each item replaced by its row in `sorted_ids` (sorted, distinct, and
  // holding every item of the histories); padding stays -1.
  HistoryBatch IndexedBy(const at::Tensor& sorted_ids) const;
};

// items: [rows x width] (values at padding positions are ignored); timestamps: [rows x width] or
// empty (no gaps); lengths: [rows]. gaps are computed when timestamps are given and buckets > 0.
// Filled on the host in one pass, then moved to `device` once.
HistoryBatch MakeHistoryBatch(int64_t rows, int64_t width, std::span<const int64_t> items,
                              std::span<const int64_t> timestamps, std::span<const int64_t> lengths,
                              int64_t time_buckets, const c10::Device& device);

}  // namespace shardrec
