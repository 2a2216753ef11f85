#include "model/keyed_mask.h"

#include <ATen/Parallel.h>
#include <ATen/core/PhiloxRNGEngine.h>
#include <ATen/ops/empty.h>

#include <glog/logging.h>

#include "common/rng.h"

namespace shardrec {
namespace {

// The threshold on a 24-bit uniform below which an element is kept.
uint32_t KeepBelow(double p) {
  CHECK(p >= 0.0 && p < 1.0) << p;
  return static_cast<uint32_t>((1.0 - p) * static_cast<double>(1u << 24) + 0.5);
}

}  // namespace

at::Tensor KeyedKeepMask(const std::vector<int64_t>& shape, const std::vector<int64_t>& full, const at::Tensor& row_keys,
                             uint64_t seed, uint64_t site, double p) {
  CHECK_GE(shape.size(), 2u);
  CHECK_EQ(full.size() + 1, shape.size());
  const int64_t rows = shape[0], inner = shape.back();
  CHECK_EQ(row_keys.numel(), rows);
  CHECK(row_keys.device().is_cpu() && row_keys.scalar_type() == at::kLong);
  for (size_t i = 0; i < full.size(); ++i) CHECK_LE(shape[i + 1], full[i]);
  // A row's elements in runs along the last dimension: run o starts at `starts[o]` in the full layout.
  std::vector<int64_t> starts(1, 0);
  for (size_t i = 0; i + 1 < full.size(); ++i) {
    std::vector<int64_t> next;
    next.reserve(starts.size() * static_cast<size_t>(shape[i + 1]));
    for (int64_t s : starts) {
      for (int64_t j = 0; j < shape[i + 1]; ++j) next.push_back(s * full[i] + j);
    }
    starts = std::move(next);
  }
  for (int64_t& s : starts) s *= full.back();
  const uint64_t key = HashKeys({seed, site});
  const uint32_t below = KeepBelow(p);
  at::Tensor out = at::empty(shape, at::kFloat);
  float* o = out.data_ptr<float>();
  const int64_t* keys = row_keys.const_data_ptr<int64_t>();
  const int64_t per_row = static_cast<int64_t>(starts.size()) * inner;
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = o + r * per_row;
      for (size_t run = 0; run < starts.size(); ++run) {
        const uint64_t at = static_cast<uint64_t>(starts[run]);
        at::philox_engine gen(key, static_cast<uint64_t>(keys[r]), at / 4);
        for (uint64_t skip = at % 4; skip > 0; --skip) gen();
        float* dst = row + static_cast<int64_t>(run) * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] = (gen() >> 8) < below ? 1.0f : 0.0f;
      }
    }
  });
  return out;
}

at::Tensor KeyedKeep(const at::Tensor& ids, uint64_t seed, uint64_t site, double p) {
  const at::Tensor host = ids.cpu().to(at::kLong).contiguous().view({-1});
  const uint64_t key = HashKeys({seed, site});
  const uint32_t below = KeepBelow(p);
  at::Tensor out = at::empty({host.numel()}, at::kBool);
  bool* o = out.data_ptr<bool>();
  const int64_t* x = host.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i) o[i] = (at::philox_engine(key, static_cast<uint64_t>(x[i]), 0)() >> 8) < below;
  return out;
}

}  // namespace shardrec
