#include "serve/index_build.h"

#include <faiss/utils/distances.h>
#include <omp.h>

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"
#include "distributed/inprocess.h"
#include "distributed/staged_dir.h"
#include "io/export_format.h"
#include "retrieval/export_index.h"
#include "retrieval/inner_product.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

// Sets OpenMP's thread count for the scope, and restores it on the way out (an exception too).
class ThreadCount {
 public:
  explicit ThreadCount(int n) : before_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(before_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int before_;
};

// Exact search one query at a time scans a whole shard per query: the queries/s figure is taken on
// this many (the ground truth for recall is one batched search of every query).
constexpr int64_t kExactTimedQueries = 20;

// By measurement (docs/results.md, bench/index_bench): exact search is as fast as any index below
// ~100k items; above, IVF-Flat with 4 sqrt(n) lists and nprobe 32 kept recall@10 at 1.0 while
// 6-13x faster than exact at 1M, where this FAISS's HNSW32 reached 0.94 at 2-3x.
std::string ChooseFactory(const std::string& factory, const ExportManifest& m) {
  int64_t largest = 0;
  for (const auto& s : m.item_shards) largest = std::max(largest, s.end - s.begin);
  return factory != "auto" ? factory
         : largest < 100000 ? "Flat"
                            : "IVF" + std::to_string(static_cast<int64_t>(4 * std::sqrt(double(largest)))) + ",Flat";
}

// Up to `want` user-tower vectors of the export (a prefix of the user shards), the queries recall
// is measured with.
std::vector<float> ReadRecallQueries(const std::string& dir, const ExportManifest& m, int64_t want) {
  std::vector<float> queries;
  for (const auto& sh : m.user_shards) {
    const int64_t have = static_cast<int64_t>(queries.size()) / std::max<int64_t>(1, m.dim);
    if (have >= want) break;
    VectorShard u = ReadVectorShard(dir + "/" + sh.file, /*with_vectors=*/true, /*max_rows=*/want - have);
    queries.insert(queries.end(), u.vectors.begin(), u.vectors.end());
  }
  return queries;
}

// Recall of the index against exact search, shard by shard: the per-shard hits are merged per
// query after the last shard, as a search over the sharded index merges them.
class RecallMeasure {
 public:
  RecallMeasure(std::vector<float> queries, int64_t nq, int64_t dim)
      : queries_(std::move(queries)), nq_(nq), dim_(dim), exact100_(static_cast<size_t>(nq)), index10_(exact100_.size()),
        index100_(exact100_.size()), returned_(exact100_.size()) {}

  // Searches shard `sh` (its vectors and its built index) for every query, exactly and through
  // the index.
  void AddShard(const ExportShard& sh, const std::vector<float>& vectors, const VectorIndex& ix) {
    AddExact(sh, vectors);
    // Each recall@K comes from a k = K search of the index (a deeper search can find more: HNSW's
    // breadth and RFlat's candidates grow with k); the exact top-100 holds the exact top-10.
    // Queries/s: exact search vs the index at k = 10, single queries on one thread (exact search
    // timed on the first kExactTimedQueries queries: one at a time it scans the whole shard).
    const ThreadCount one_thread(1);
    const int64_t n = sh.end - sh.begin, k10 = std::min<int64_t>(10, n);
    std::vector<float> d(static_cast<size_t>(std::max<int64_t>(k10, 1)));
    std::vector<int64_t> l(d.size());
    for (int64_t q = 0; q < nq_; ++q) {
      const float* qv = queries_.data() + q * dim_;
      if (q < kExactTimedQueries && k10 > 0) {  // exact search of one query, on the shard's own vectors
        const auto t0 = Clock::now();
        TopKInnerProduct(qv, vectors.data(), n, dim_, k10, d.data(), l.data());
        t_exact_ += std::chrono::duration<double>(Clock::now() - t0).count();
      }
      auto t1 = Clock::now();
      auto got10 = ix.Search(qv, 10);
      auto t2 = Clock::now();
      auto got100 = ix.Search(qv, 100);
      t_index_ += std::chrono::duration<double>(t2 - t1).count();
      for (auto* got : {&got10, &got100}) {
        for (Hit& h : *got) {
          const float* row = vectors.data() + h.id * dim_;
          h.id += sh.begin;
          returned_[q].emplace(h.id, std::inner_product(qv, qv + dim_, row, 0.0f));
        }
      }
      index10_[q].insert(index10_[q].end(), got10.begin(), got10.end());
      index100_[q].insert(index100_[q].end(), got100.begin(), got100.end());
    }
  }

  // Recall@10 and @100 and queries/s into `rep`, after the last shard.
  void Finish(IndexReport& rep) {
    double hit10 = 0, hit100 = 0;
    for (int64_t q = 0; q < nq_; ++q) {
      const auto want = Top(std::move(exact100_[q]), 100);
      for (int k : {10, 100}) {
        const auto got = Top(std::move(k == 10 ? index10_[q] : index100_[q]), k);
        (k == 10 ? hit10 : hit100) += RecallAtK(want, got, returned_[q], k);
      }
    }
    rep.queries = nq_;
    rep.recall10 = nq_ ? hit10 / nq_ : 0;
    rep.recall100 = nq_ ? hit100 / nq_ : 0;
    rep.exact_qps = t_exact_ > 0 ? static_cast<double>(std::min<int64_t>(nq_, kExactTimedQueries)) / t_exact_ : 0;
    rep.index_qps = t_index_ > 0 ? nq_ / t_index_ : 0;
  }

 private:
  static std::vector<Hit> Top(std::vector<Hit> all, int64_t k) {
    SortHits(all);
    if (static_cast<int64_t>(all.size()) > k) all.resize(static_cast<size_t>(k));
    return all;
  }

  // The exact top-100 of every query, in one batched product (BLAS): the ground truth.
  void AddExact(const ExportShard& sh, const std::vector<float>& vectors) {
    const int64_t n = sh.end - sh.begin, k_exact = std::min<int64_t>(100, n);
    if (k_exact <= 0 || nq_ <= 0) return;
    std::vector<float> d(static_cast<size_t>(nq_ * k_exact));
    std::vector<int64_t> l(d.size());
    faiss::knn_inner_product(queries_.data(), vectors.data(), static_cast<size_t>(dim_), static_cast<size_t>(nq_),
                             static_cast<size_t>(n), static_cast<size_t>(k_exact), d.data(), l.data());
    for (int64_t q = 0; q < nq_; ++q) {
      for (int64_t i = q * k_exact; i < (q + 1) * k_exact; ++i) {
        if (l[i] >= 0) exact100_[q].push_back({sh.begin + l[i], d[i]});
      }
    }
  }

  std::vector<float> queries_;
  int64_t nq_, dim_;
  std::vector<std::vector<Hit>> exact100_, index10_, index100_;
  // The exact score of every item the index returned, per query (for ties at the K-th place).
  std::vector<std::unordered_map<int64_t, float>> returned_;
  double t_exact_ = 0, t_index_ = 0;
};

// Generations other than `keep` and `previous` go: a reader holds the manifest it read, which names
// one of the two. Format 1's index files go at the re-index after the one that replaced them
// (`legacy_replaced`: the manifest this build read was format 1, so a reader may still hold it).
void RemoveOldGenerations(const std::string& dir, const std::string& keep, const std::string& previous, bool legacy_replaced) {
  for (const auto& name : ListDirectory(dir)) {
    const bool old_generation = ParseIndexDirName(name, nullptr) && name != keep && name != previous;
    if (old_generation || (IsLegacyIndexFile(name) && !legacy_replaced)) RemoveAll(dir + "/" + name);
  }
}

// The parent version's index of shard `s` with the rows whose vectors differ from the parent's, and
// the rows added, replaced in place (IndexOptions::parent); null where that cannot be done.
std::unique_ptr<FaissIndex> UpdateParentShardOrThrow(const std::string& parent, size_t s, const ExportShard& sh, const SearchKnobs& knobs,
                                                     const std::vector<float>& vectors, IndexReport& rep);
std::unique_ptr<FaissIndex> UpdateParentShard(const std::string& parent, size_t s, const ExportShard& sh, const SearchKnobs& knobs,
                                              const std::vector<float>& vectors, IndexReport& rep) {
  if (parent.empty()) return nullptr;
  try {
    return UpdateParentShardOrThrow(parent, s, sh, knobs, vectors, rep);
  } catch (const UserError& e) {  // the parent retired or damaged meanwhile: built anew
    LOG(WARNING) << "index: shard " << s << " built anew, not from " << parent << ": " << e.what();
    return nullptr;
  }
}

std::unique_ptr<FaissIndex> UpdateParentShardOrThrow(const std::string& parent, size_t s, const ExportShard& sh, const SearchKnobs& knobs,
                                                     const std::vector<float>& vectors, IndexReport& rep) {
  const ExportManifest pm = ReadExportManifest(parent);
  if (pm.index_dir.empty() || s >= pm.item_shards.size() || pm.dim * (sh.end - sh.begin) != static_cast<int64_t>(vectors.size())) return nullptr;
  const IndexManifest pix = ReadIndexManifest(parent + "/" + pm.index_dir);
  const ExportShard& ps = pm.item_shards[s];
  if (pix.factory != rep.factory || s >= pix.shards.size() || ps.begin != sh.begin || ps.end > sh.end) return nullptr;
  std::unique_ptr<FaissIndex> ix = FaissIndex::Read(parent + "/" + pm.index_dir + "/" + pix.shards[s].file, pix.factory, knobs);
  const VectorShard old = ReadVectorShard(parent + "/" + ps.file);
  const int64_t dim = pm.dim, n = sh.end - sh.begin, kept = ps.end - ps.begin;
  if (static_cast<int64_t>(old.vectors.size()) != kept * dim || ix->size() != kept) return nullptr;
  std::vector<int64_t> ids;
  std::vector<float> changed;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = vectors.data() + i * dim;
    if (i < kept && std::equal(row, row + dim, old.vectors.data() + i * dim)) continue;
    ids.push_back(i);
    changed.insert(changed.end(), row, row + dim);
  }
  if (!ix->Update(ids, changed)) return nullptr;
  ++rep.updated_shards;
  rep.updated_rows += static_cast<int64_t>(ids.size());
  return ix;
}

// Each shard in turn: read, build, write, and search for every query (exact and through the
// index), then freed: the build holds one shard, never the catalogue.
IndexManifest BuildShards(const std::string& dir, const ExportManifest& m, const IndexOptions& o,
                          const std::string& out, IndexReport& rep) {
  std::vector<float> queries = ReadRecallQueries(dir, m, o.queries);
  const int64_t nq = std::min<int64_t>(o.queries, static_cast<int64_t>(queries.size()) / std::max<int64_t>(1, m.dim));
  RecallMeasure recall(std::move(queries), nq, m.dim);
  IndexManifest ix{.factory = rep.factory, .knobs = o.knobs, .dim = m.dim};
  for (size_t s = 0; s < m.item_shards.size(); ++s) {
    const ExportShard& sh = m.item_shards[s];
    const auto shard_start = Clock::now();
    VectorShard v = ReadVectorShard(dir + "/" + sh.file);
    if (v.dim != m.dim || static_cast<int64_t>(v.vectors.size()) != (sh.end - sh.begin) * m.dim) {
      Fail(dir, "/", sh.file, ": holds ", v.ids.size(), " x ", v.dim, ", the manifest says ", sh.end - sh.begin, " x ", m.dim);
    }
    std::unique_ptr<FaissIndex> one = UpdateParentShard(o.parent, s, sh, o.knobs, v.vectors, rep);
    try {
      if (!one) one = FaissIndex::Build(rep.factory, o.knobs, v.vectors, m.dim, o.train_vectors, /*seed=*/s);
    } catch (const UserError& e) {
      Fail(dir, "/", sh.file, " (item shard ", s, "): ", e.what());
    }
    rep.train_vectors += one->trained_on();
    const std::string file = "index-" + std::to_string(s) + ".faiss";
    one->Write(out + "/" + file);
    ix.shards.push_back({file, sh.begin, sh.end});
    rep.build_seconds += std::chrono::duration<double>(Clock::now() - shard_start).count();
    recall.AddShard(sh, v.vectors, *one);
  }
  recall.Finish(rep);
  ix.queries = rep.queries;
  ix.recall10 = rep.recall10;
  ix.recall100 = rep.recall100;
  ix.train_vectors = rep.train_vectors;
  return ix;
}

}  // namespace

void CheckIndexOptions(const IndexOptions& o) {
  CheckSearchKnobs(o.knobs, "--");
  if (o.train_vectors < 0) Fail("--train-vectors: must be >= 0 (0: auto), got ", o.train_vectors);
}

IndexReport BuildExportIndex(const std::string& dir, const IndexOptions& o) {
  CheckIndexOptions(o);
  ExportManifest m = ReadExportManifest(dir);
  const bool legacy = m.legacy_index;
  int64_t previous = 0;
  if (!m.index_dir.empty() && !ParseIndexDirName(m.index_dir, &previous)) {
    Fail(dir, "/manifest.json: index: dir ", Quote(m.index_dir), " is not an index generation (index.g<N>)");
  }
  IndexReport rep;
  rep.factory = ChooseFactory(o.factory, m);
  rep.dir = IndexDirName(previous + 1);
  // One process writes the generation; the StagedDir makes it whole or absent.
  InProcessGroup self(1, {});
  const auto comm = self.Rank(0);
  StagedDir out(dir + "/" + rep.dir, *comm, StagedDir::Existing::kReplace, "index generation");
  IndexManifest ix;
  out.Run([&] { ix = BuildShards(dir, m, o, out.path(), rep); });
  out.Commit([&] { WriteIndexManifest(out.path(), ix); });
  const std::string replaced = m.index_dir;
  m.index_dir = rep.dir;
  try {
    WriteExportManifest(dir, m);
  } catch (...) {  // the manifest still names the generation it named: this one never served
    try {
      RemoveAll(dir + "/" + rep.dir);
    } catch (const UserError&) {  // the build's own message is the one to report
    }
    throw;
  }
  RemoveOldGenerations(dir, rep.dir, replaced, legacy);
  return rep;
}

}  // namespace shardrec
