// Sharded approximate nearest-neighbour search over an export (docs/retrieval.md): one FAISS index
// per item shard, inner product on the exported vectors; a query fans out to every shard and the
// per-shard top-K lists are merged by score. Exact search (FAISS IndexFlatIP) is the oracle.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "io/export_format.h"

namespace faiss {
struct Index;
}

namespace shardrec {

struct IndexOptions {
  std::string factory = "auto";  // FAISS factory string; auto: Flat below 100k items per shard, else IVF<4 sqrt(n)>,Flat
  int64_t queries = 1000;        // user vectors used to measure recall against exact search
  int64_t ef_search = 128;       // HNSW search breadth
  int64_t nprobe = 32;           // IVF lists probed
  int64_t refine = 4;            // "...,RFlat" factories: candidates re-ranked exactly = refine x k
  // Vectors that train an index needing training (IVF k-means, PQ codebooks), a uniform sample of
  // the shard; 0: max(100000, 64 x IVF lists). k-means cost grows with it, recall barely.
  int64_t train_vectors = 0;
};

struct IndexReport {
  std::string factory;
  double recall10 = 0, recall100 = 0;
  int64_t queries = 0;
  int64_t train_vectors = 0;  // over all shards (0: the index needs no training)
  double build_seconds = 0;
  double exact_qps = 0, index_qps = 0;  // single queries, one thread
};

// Builds index-<shard>.faiss for every item shard of `version_dir`, measures recall@10/@100 of the
// merged search against exact search, and rewrites the manifest with the index section.
IndexReport BuildExportIndex(const std::string& version_dir, const IndexOptions& options);

struct Hit {
  int64_t id = 0;  // dense item id
  float score = 0;
};

// The recall protocol of one query: the share of the exact top-k (`exact`, best first) found in
// the index's first k hits (`got`). A returned item outside the exact top-k whose exact score
// (`exact_score`, by item id) ties the k-th exact score within 1e-5 (relative) counts as found: an
// inner product computed in a batch or one query at a time differs in the last bits, which can
// order near-ties either way. 1 when there is nothing to find; each item counts once.
double RecallAtK(const std::vector<Hit>& exact, const std::vector<Hit>& got,
                 const std::unordered_map<int64_t, float>& exact_score, int64_t k);

// Read-only after Open; Search is safe to call from several threads.
class ShardedIndex {
 public:
  // Loads the item shards and, unless `exact` or absent, the index files. Verifies the manifest.
  static std::unique_ptr<ShardedIndex> Open(const std::string& version_dir, bool exact = false);
  ~ShardedIndex();

  // Top-k items by inner product with `query` [dim], best first, skipping ids in `exclude`.
  std::vector<Hit> Search(const float* query, int64_t k, const std::unordered_set<int64_t>& exclude = {}) const;
  // Search for n queries [n x dim] on `threads` threads (0: as many as cores); answer i is exactly
  // Search(queries + i * dim, k, exclude[i]).
  std::vector<std::vector<Hit>> SearchMany(const float* queries, int64_t n, int64_t k,
                                           const std::vector<std::unordered_set<int64_t>>& exclude, int threads) const;

  const ExportManifest& manifest() const { return manifest_; }
  int64_t dim() const { return manifest_.dim; }
  const std::string& raw_id(int64_t item) const { return raw_ids_[item]; }
  const std::string& title(int64_t item) const;  // "" when unknown
  // [items x dim], dense-id order, when exact search answers the queries (`exact`, or no index);
  // empty when an ANN index does (the index holds what it needs).
  const std::vector<float>& vectors() const { return vectors_; }
  bool approximate() const { return !indexes_.empty(); }

 private:
  ShardedIndex() = default;
  ExportManifest manifest_;
  std::vector<std::string> raw_ids_, titles_;
  std::vector<float> vectors_;
  std::vector<int64_t> shard_begin_, shard_size_;
  std::vector<std::unique_ptr<faiss::Index>> indexes_;  // per shard; empty = exact search on vectors_
};

}  // namespace shardrec
