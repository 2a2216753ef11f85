// Random masks keyed by what they apply to (docs/training.md, "Dropout and world size"): whether
// an element of a training row is dropped depends on the step's seed, the dropout site, the row's
// key (its place in the global batch) and the element's place in the row's full-size layout, never
// on which rank, batch piece, length group or padded width computes it. So 1, 2 and 4 ranks draw
// the same masks, and a row padded to another width keeps the same mask on its real positions.
//
// Generator: Philox4x32-10 (ATen's philox_engine) with key = HashKeys({seed, site}), subsequence =
// the row's key and counter = the element's index in the full layout / 4; the element's uniform is
// the top 24 bits of its 32-bit output / 2^24, and it is kept when that is below 1 - p.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace shardrec {

// A dropout mask shaped `shape` = [rows, d1, ..., dk]: 1 where kept, 0 where dropped, as float on
// the host (inverted dropout multiplies by it and by 1 / (1 - p)). `full` = [f1, ..., fk] (each
// fi >= di) numbers a row's elements in row-major order of the full extents; `row_keys`: int64
// [rows] on the host. p in [0, 1).
at::Tensor KeyedKeepMask(const std::vector<int64_t>& shape, const std::vector<int64_t>& full, const at::Tensor& row_keys,
                             uint64_t seed, uint64_t site, double p);

// One keep decision per id (bool [n] on the host, `ids` int64 on any device): id x is kept with
// probability 1 - p, decided by (seed, site, x) alone.
at::Tensor KeyedKeep(const at::Tensor& ids, uint64_t seed, uint64_t site, double p);

}  // namespace shardrec
