#include "retrieval/sharded_index.h"

#include <glog/logging.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace shardrec {

ShardedIndex::ShardedIndex(std::vector<std::unique_ptr<VectorIndex>> shards, std::vector<int64_t> begin)
    : shards_(std::move(shards)), begin_(std::move(begin)) {
  CHECK_EQ(shards_.size(), begin_.size());
  CHECK(!shards_.empty());
  dim_ = shards_[0]->dim();
  for (size_t s = 0; s < shards_.size(); ++s) {
    CHECK_EQ(shards_[s]->dim(), dim_);
    CHECK(s == 0 || begin_[s] >= begin_[s - 1] + shards_[s - 1]->size()) << "shard " << s << " overlaps its predecessor";
    size_ = std::max(size_, begin_[s] + shards_[s]->size());
  }
}

std::string ShardedIndex::name() const { return shards_[0]->name(); }

std::vector<Hit> ShardedIndex::Search(const float* q, int64_t k, const std::unordered_set<int64_t>& exclude) const {
  // Each shard's best k + |exclude| hold the best k that are not excluded; no shard has more than
  // size_ rows, so asking for more cannot find more (and k near INT64_MAX does not overflow).
  if (k <= 0) return {};
  const int64_t want = std::min(k, size_) + std::min(static_cast<int64_t>(exclude.size()), size_);
  std::vector<Hit> all;
  for (size_t s = 0; s < shards_.size(); ++s) {
    for (const Hit& h : shards_[s]->Search(q, want)) {
      const int64_t id = begin_[s] + h.id;
      if (!exclude.count(id)) all.push_back({id, h.score});
    }
  }
  SortHits(all);
  if (static_cast<int64_t>(all.size()) > k) all.resize(static_cast<size_t>(std::max<int64_t>(k, 0)));
  return all;
}

std::vector<std::vector<Hit>> ShardedIndex::SearchMany(const float* queries, int64_t n, int64_t k,
                                                       const std::vector<std::unordered_set<int64_t>>& exclude,
                                                       int threads) const {
  CHECK_EQ(static_cast<int64_t>(exclude.size()), n);
  std::vector<std::vector<Hit>> out(static_cast<size_t>(n));
  // Each query is the single-query search, so the answers are those of Search, bit for bit
  // (FAISS parallelises a batch differently from one query, and its exact-search scores can differ
  // in the last bit between the two). Threads take blocks of queries in turn.
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int t = static_cast<int>(std::clamp<int64_t>(threads > 0 ? threads : cores, 1, std::max<int64_t>(1, n)));
  // Blocks of up to 16 queries, small enough that a small batch (a server's) still spreads over
  // every thread.
  const int64_t block = std::clamp<int64_t>(n / (4 * t), 1, 16);
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mu;
  auto work = [&] {
    omp_set_num_threads(1);  // per thread in OpenMP: FAISS's regions inside stay on this thread
    try {
      for (int64_t b; (b = next.fetch_add(block)) < n;) {
        for (int64_t i = b; i < std::min(n, b + block); ++i) out[i] = Search(queries + i * dim_, k, exclude[i]);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mu);
      if (!failure) failure = std::current_exception();
      next = n;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
  return out;
}

}  // namespace shardrec
