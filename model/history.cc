#include "model/history.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace shardrec {

int64_t GapBucket(int64_t gap_seconds, int64_t buckets) {
  if (gap_seconds < 0) return 0;
  const int64_t b = 1 + static_cast<int64_t>(std::floor(std::log2(1.0 + gap_seconds / 60.0)));
  return std::min(b, buckets - 1);
}

void ContextIndices(int64_t time, int64_t request, int64_t out[ContextRows::kPerPosition]) {
  // Floor division, so times before 1970 land in the right hour and day; 1970-01-01 was a Thursday.
  auto floor_div = [](int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); };
  auto hour = [&](int64_t t) { return floor_div(t, 3600) - floor_div(t, 86400) * 24; };
  auto day = [&](int64_t t) { const int64_t d = (floor_div(t, 86400) + 3) % 7; return d < 0 ? d + 7 : d; };
  out[0] = ContextRows::kEventHour + hour(time);
  out[1] = ContextRows::kEventDay + day(time);
  if (request == kUnknownTime) {
    out[2] = ContextRows::kRequestHour;
    out[3] = ContextRows::kRequestDay;
    out[4] = ContextRows::kRequestGap;
    return;
  }
  out[2] = ContextRows::kRequestHour + 1 + hour(request);
  out[3] = ContextRows::kRequestDay + 1 + day(request);
  // A gap so large that request - time overflows is as good as the largest (or a negative) one.
  int64_t gap = 0;
  if (__builtin_sub_overflow(request, time, &gap)) gap = request > time ? std::numeric_limits<int64_t>::max() : -1;
  out[4] = ContextRows::kRequestGap + 1 + GapBucket(gap, ContextRows::kRequestGapBuckets);
}

HistoryBatch HistoryBatch::IndexedBy(const at::Tensor& sorted_ids) const {
  HistoryBatch h = *this;
  h.items = at::where(items >= 0, at::searchsorted(sorted_ids, items.clamp_min(0)), items);
  return h;
}

HistoryBatch MakeHistoryBatch(int64_t rows, int64_t width, std::span<const int64_t> items,
                              std::span<const int64_t> timestamps, std::span<const int64_t> lengths,
                              std::span<const int64_t> requests, const HistoryFeatures& features,
                              const c10::Device& device) {
  CHECK_EQ(static_cast<int64_t>(items.size()), rows * width);
  CHECK_EQ(static_cast<int64_t>(lengths.size()), rows);
  const bool gaps = !timestamps.empty() && features.time_buckets > 0;
  const bool context = !timestamps.empty() && features.context;
  if (!timestamps.empty()) CHECK_EQ(static_cast<int64_t>(timestamps.size()), rows * width);
  if (!requests.empty()) CHECK_EQ(static_cast<int64_t>(requests.size()), rows);
  at::Tensor ids = at::empty({rows, width}, at::kLong), g, c;
  int64_t* id = ids.data_ptr<int64_t>();
  int64_t* gp = nullptr;
  int64_t* cp = nullptr;
  if (gaps) {
    g = at::zeros({rows, width}, at::kLong);
    gp = g.data_ptr<int64_t>();
  }
  if (context) {
    c = at::empty({rows, width, ContextRows::kPerPosition}, at::kLong);
    cp = c.data_ptr<int64_t>();
  }
  for (int64_t i = 0; i < rows; ++i) {
    CHECK(lengths[i] >= 0 && lengths[i] <= width) << "history length " << lengths[i] << " outside [0, " << width << "]";
    for (int64_t k = 0; k < width; ++k) id[i * width + k] = k < lengths[i] ? items[i * width + k] : -1;
    const int64_t* ts = gaps || context ? timestamps.data() + i * width : nullptr;
    if (gaps) {
      for (int64_t k = 1; k < lengths[i]; ++k) gp[i * width + k] = GapBucket(ts[k] - ts[k - 1], features.time_buckets);
    }
    if (context) {
      // Position k's request is the next event; after the last event, the row's request time.
      // Padding positions (never read by a real one under causal attention) repeat the last event.
      const int64_t last = requests.empty() ? kUnknownTime : requests[i];
      for (int64_t k = 0; k < width; ++k) {
        const int64_t t = lengths[i] == 0 ? 0 : ts[std::min(k, lengths[i] - 1)];
        ContextIndices(t, k + 1 < lengths[i] ? ts[k + 1] : last, cp + (i * width + k) * ContextRows::kPerPosition);
      }
    }
  }
  HistoryBatch h;
  h.rows = rows;
  h.width = width;
  h.items = ids.to(device);
  h.lengths = at::tensor(std::vector<int64_t>(lengths.begin(), lengths.end()), at::kLong).to(device);
  if (gaps) h.gaps = g.to(device);
  if (context) h.context = c.to(device);
  return h;
}

template <typename T>
int64_t HistoryBuilder::AddAny(std::span<const T> items, std::span<const int64_t> timestamps, int64_t request) {
  CHECK(timestamps.size() == (timestamps_ ? items.size() : 0)) << "history of " << items.size() << " items, "
                                                               << timestamps.size() << " timestamps";
  const int64_t n = static_cast<int64_t>(items.size()), keep = std::min(max_len_, n);
  items_.insert(items_.end(), items.end() - keep, items.end());
  if (timestamps_) stamps_.insert(stamps_.end(), timestamps.end() - keep, timestamps.end());
  lengths_.push_back(keep);
  requests_.push_back(request);
  return keep;
}

int64_t HistoryBuilder::Add(std::span<const int64_t> items, std::span<const int64_t> timestamps, int64_t request) {
  return AddAny(items, timestamps, request);
}

int64_t HistoryBuilder::Add(std::span<const int32_t> items, std::span<const int64_t> timestamps, int64_t request) {
  return AddAny(items, timestamps, request);
}

HistoryBatch HistoryBuilder::Build(const HistoryFeatures& features, const c10::Device& device) const {
  const int64_t rows = this->rows();
  int64_t width = 1;
  for (int64_t l : lengths_) width = std::max(width, l);
  std::vector<int64_t> flat(static_cast<size_t>(rows * width), -1), stamps;
  if (timestamps_) stamps.assign(flat.size(), 0);
  int64_t at = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < lengths_[r]; ++k, ++at) {
      flat[r * width + k] = items_[at];
      if (timestamps_) stamps[r * width + k] = stamps_[at];
    }
  }
  const bool any_request = std::any_of(requests_.begin(), requests_.end(), [](int64_t t) { return t != kUnknownTime; });
  return MakeHistoryBatch(rows, width, flat, stamps, lengths_, any_request ? requests_ : std::vector<int64_t>(), features,
                          device);
}

}  // namespace shardrec
