// Fan-out search over item shards (docs/retrieval.md): shard s answers for the ids
// [begin[s], begin[s] + size), every shard is searched and the per-shard lists are merged by score.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "retrieval/vector_index.h"

namespace shardrec {

// Read-only after construction; Search is safe to call from several threads.
class ShardedIndex : public VectorIndex {
 public:
  // Shard s holds the ids [begin[s], begin[s] + shards[s]->size()); the ranges must not overlap.
  ShardedIndex(std::vector<std::unique_ptr<VectorIndex>> shards, std::vector<int64_t> begin);

  int64_t size() const override { return size_; }
  int64_t dim() const override { return dim_; }
  std::string name() const override;  // the shards' name (they all have the same)
  std::vector<Hit> Search(const float* query, int64_t k) const override { return Search(query, k, {}); }

  // Top-k items by inner product with `query` [dim], best first (ties: lower id first), skipping
  // ids in `exclude`.
  std::vector<Hit> Search(const float* query, int64_t k, const std::unordered_set<int64_t>& exclude) const;
  // Search for n queries [n x dim] on `threads` threads (0: as many as cores); answer i is exactly
  // Search(queries + i * dim, k, exclude[i]).
  std::vector<std::vector<Hit>> SearchMany(const float* queries, int64_t n, int64_t k,
                                           const std::vector<std::unordered_set<int64_t>>& exclude, int threads) const;

 private:
  std::vector<std::unique_ptr<VectorIndex>> shards_;
  std::vector<int64_t> begin_;
  int64_t size_ = 0, dim_ = 0;
};

}  // namespace shardrec
