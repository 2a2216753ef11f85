#include "model/history.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <cmath>
#include <vector>

namespace shardrec {

int64_t GapBucket(int64_t gap_seconds, int64_t buckets) {
  if (gap_seconds < 0) return 0;
  const int64_t b = 1 + static_cast<int64_t>(std::floor(std::log2(1.0 + gap_seconds / 60.0)));
  return std::min(b, buckets - 1);
}

HistoryBatch HistoryBatch::Prefix(int64_t w) const {
  CHECK_LE(w, width);
  HistoryBatch h;
  h.rows = rows;
  h.width = w;
  h.items = items.narrow(1, 0, w);
  h.lengths = lengths.clamp_max(w);
  if (gaps.defined()) h.gaps = gaps.narrow(1, 0, w);
  return h;
}

HistoryBatch HistoryBatch::IndexedBy(const at::Tensor& sorted_ids) const {
  HistoryBatch h = *this;
  h.items = at::where(items >= 0, at::searchsorted(sorted_ids, items.clamp_min(0)), items);
  return h;
}

HistoryBatch MakeHistoryBatch(int64_t rows, int64_t width, std::span<const int64_t> items,
                              std::span<const int64_t> timestamps, std::span<const int64_t> lengths,
                              int64_t time_buckets, const c10::Device& device) {
  CHECK_EQ(static_cast<int64_t>(items.size()), rows * width);
  CHECK_EQ(static_cast<int64_t>(lengths.size()), rows);
  const bool gaps = !timestamps.empty() && time_buckets > 0;
  if (gaps) CHECK_EQ(static_cast<int64_t>(timestamps.size()), rows * width);
  at::Tensor ids = at::empty({rows, width}, at::kLong), g;
  int64_t* id = ids.data_ptr<int64_t>();
  int64_t* gp = nullptr;
  if (gaps) {
    g = at::zeros({rows, width}, at::kLong);
    gp = g.data_ptr<int64_t>();
  }
  for (int64_t i = 0; i < rows; ++i) {
    CHECK(lengths[i] >= 0 && lengths[i] <= width) << "history length " << lengths[i] << " outside [0, " << width << "]";
    for (int64_t k = 0; k < width; ++k) id[i * width + k] = k < lengths[i] ? items[i * width + k] : -1;
    if (!gaps) continue;
    const int64_t* ts = timestamps.data() + i * width;
    for (int64_t k = 1; k < lengths[i]; ++k) gp[i * width + k] = GapBucket(ts[k] - ts[k - 1], time_buckets);
  }
  HistoryBatch h;
  h.rows = rows;
  h.width = width;
  h.items = ids.to(device);
  h.lengths = at::tensor(std::vector<int64_t>(lengths.begin(), lengths.end()), at::kLong).to(device);
  if (gaps) h.gaps = g.to(device);
  return h;
}

}  // namespace shardrec
