#include "retrieval/index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexRefine.h>
#include <faiss/index_factory.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>
#include <glog/logging.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/rng.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

// FAISS's serialisation into a FileWriter: every write checked, the file published whole or not at
// all (FAISS's own file writer does not check its close, so a full disk left truncated indexes).
struct IndexFileWriter : faiss::IOWriter {
  explicit IndexFileWriter(FileWriter& out) : out(out) {}
  size_t operator()(const void* ptr, size_t size, size_t nitems) override {
    out.Append(ptr, size * nitems);
    return nitems;
  }
  FileWriter& out;
};

void WriteIndexFile(const faiss::Index& index, const std::string& path) {
  FileWriter out(path);
  IndexFileWriter writer(out);
  faiss::write_index(&index, &writer);
  out.Commit();
}

// Up to `want` of the n rows of `vectors` [n x dim], a uniform sample without replacement (partial
// Fisher-Yates, fixed seed) kept in row order; all rows when n <= want.
std::vector<float> SampleRows(const std::vector<float>& vectors, int64_t n, int64_t dim, int64_t want, uint64_t seed) {
  if (n <= want) return vectors;
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[i] = i;
  Rng rng(seed);
  for (int64_t i = 0; i < want; ++i) std::swap(rows[i], rows[i + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n - i)))]);
  rows.resize(static_cast<size_t>(want));
  std::sort(rows.begin(), rows.end());
  std::vector<float> out(static_cast<size_t>(want * dim));
  for (int64_t i = 0; i < want; ++i) std::copy_n(vectors.begin() + rows[i] * dim, dim, out.begin() + i * dim);
  return out;
}

void SetSearchParams(faiss::Index* index, int64_t ef_search, int64_t nprobe, int64_t refine) {
  if (auto* h = dynamic_cast<faiss::IndexHNSW*>(index)) h->hnsw.efSearch = static_cast<int>(ef_search);
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index)) ivf->nprobe = static_cast<size_t>(nprobe);
  // "...,RFlat": the base index proposes refine x k candidates, re-ranked on exact vectors.
  if (auto* r = dynamic_cast<faiss::IndexRefine*>(index)) {
    r->k_factor = static_cast<float>(refine);
    SetSearchParams(r->base_index, ef_search, nprobe, refine);
  }
}

// Top-k of several shards merged by score (ties: lower id first).
std::vector<Hit> Merge(std::vector<Hit> all, int64_t k) {
  std::sort(all.begin(), all.end(), [](const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); });
  if (static_cast<int64_t>(all.size()) > k) all.resize(static_cast<size_t>(k));
  return all;
}

// Fills shard s's best n hits for the query: scores and shard-local labels (-1 = none).
using ShardSearch = std::function<void(size_t s, int64_t n, float* scores, faiss::Index::idx_t* labels)>;

// Top-k over the shards [begin[s], begin[s] + sizes[s]), merged by score, skipping `exclude`.
std::vector<Hit> SearchShards(const std::vector<int64_t>& begin, const std::vector<int64_t>& sizes,
                              const ShardSearch& search, int64_t k, const std::unordered_set<int64_t>& exclude) {
  std::vector<Hit> all;
  const int64_t want = k + static_cast<int64_t>(exclude.size());
  for (size_t s = 0; s < begin.size(); ++s) {
    const int64_t n = std::min<int64_t>(want, sizes[s]);
    if (n <= 0) continue;
    std::vector<float> d(static_cast<size_t>(n));
    std::vector<faiss::Index::idx_t> l(static_cast<size_t>(n));
    search(s, n, d.data(), l.data());
    for (int64_t i = 0; i < n; ++i) {
      if (l[i] < 0) continue;
      const int64_t id = begin[s] + l[i];
      if (!exclude.count(id)) all.push_back({id, d[i]});
    }
  }
  return Merge(std::move(all), k);
}

// SearchShards over one FAISS index per shard.
std::vector<Hit> SearchIndexes(const std::vector<std::unique_ptr<faiss::Index>>& shards, const std::vector<int64_t>& begin,
                               const float* q, int64_t k, const std::unordered_set<int64_t>& exclude) {
  std::vector<int64_t> sizes;
  for (const auto& ix : shards) sizes.push_back(ix->ntotal);
  return SearchShards(begin, sizes, [&](size_t s, int64_t n, float* d, faiss::Index::idx_t* l) { shards[s]->search(1, q, n, d, l); },
                      k, exclude);
}

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

}  // namespace

double RecallAtK(const std::vector<Hit>& exact, const std::vector<Hit>& got,
                 const std::unordered_map<int64_t, float>& exact_score, int64_t k) {
  const size_t n = static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(exact.size())));
  if (n == 0) return 1.0;
  std::unordered_set<int64_t> truth;
  for (size_t i = 0; i < n; ++i) truth.insert(exact[i].id);
  const float kth = exact[n - 1].score, tie = kth - 1e-5f * std::max(1.0f, std::abs(kth));
  std::unordered_set<int64_t> found;
  for (size_t i = 0; i < got.size() && static_cast<int64_t>(i) < k; ++i) {
    const auto e = exact_score.find(got[i].id);
    if (truth.count(got[i].id) || (e != exact_score.end() && e->second >= tie)) found.insert(got[i].id);
  }
  return static_cast<double>(std::min(found.size(), n)) / static_cast<double>(n);
}

ShardedIndex::~ShardedIndex() = default;

std::unique_ptr<ShardedIndex> ShardedIndex::Open(const std::string& dir, bool exact) {
  // Single queries: FAISS parallelises over queries, and an OpenMP team per query costs far more
  // than it saves (measured: HNSW 85 vs 9000 queries/s with a busy second process).
  omp_set_num_threads(1);
  std::unique_ptr<ShardedIndex> idx(new ShardedIndex());
  idx->manifest_ = ReadExportManifest(dir);
  const ExportManifest& m = idx->manifest_;
  idx->raw_ids_.resize(static_cast<size_t>(m.num_items));
  // The vectors stay in memory only when exact search answers the queries (no second copy beside
  // an ANN index).
  const bool use_exact = exact || m.index_factory.empty();
  bool any_title = false;
  for (size_t s = 0; s < m.item_shards.size(); ++s) {  // consecutive id ranges (ReadExportManifest)
    const ExportShard& sh = m.item_shards[s];
    VectorShard v = ReadVectorShard(dir + "/" + sh.file, /*with_vectors=*/use_exact);
    if (v.dim != m.dim || static_cast<int64_t>(v.ids.size()) != sh.end - sh.begin) {
      Fail(dir, "/", sh.file, ": holds ", v.ids.size(), " x ", v.dim, ", the manifest says ", sh.end - sh.begin, " x ", m.dim);
    }
    for (size_t i = 0; i < v.ids.size(); ++i) {
      const int64_t id = sh.begin + static_cast<int64_t>(i);
      idx->raw_ids_[id] = v.raw_ids[i];
      if (!v.titles.empty()) {
        if (idx->titles_.empty()) idx->titles_.resize(static_cast<size_t>(m.num_items));
        idx->titles_[id] = v.titles[i];
        any_title = true;
      }
    }
    idx->shard_begin_.push_back(sh.begin);
    idx->shard_size_.push_back(sh.end - sh.begin);
    if (use_exact) {  // shards are consecutive id ranges: append in order
      if (idx->vectors_.empty()) {
        idx->vectors_ = std::move(v.vectors);  // no second copy of a single shard while loading
      } else {
        idx->vectors_.insert(idx->vectors_.end(), v.vectors.begin(), v.vectors.end());
      }
    } else {
      const std::string f = dir + "/" + IndexFileName(s, m.index_generation);
      faiss::Index* raw = nullptr;
      try {
        raw = faiss::read_index(f.c_str());
      } catch (const std::exception& e) {
        Fail(f, ": cannot read the FAISS index (damaged?): ", e.what());
      }
      std::unique_ptr<faiss::Index> ix(raw);
      if (ix->d != m.dim || ix->ntotal != sh.end - sh.begin) Fail(f, ": index does not match its shard");
      SetSearchParams(ix.get(), m.index_ef_search, m.index_nprobe, m.index_refine);
      idx->indexes_.push_back(std::move(ix));
    }
  }
  if (!any_title) idx->titles_.clear();
  return idx;
}

std::vector<Hit> ShardedIndex::Search(const float* q, int64_t k, const std::unordered_set<int64_t>& exclude) const {
  if (!indexes_.empty()) return SearchIndexes(indexes_, shard_begin_, q, k, exclude);
  const size_t dim = static_cast<size_t>(manifest_.dim);
  return SearchShards(shard_begin_, shard_size_,
                      [&](size_t s, int64_t n, float* d, faiss::Index::idx_t* l) {
                        faiss::knn_inner_product(q, vectors_.data() + shard_begin_[s] * manifest_.dim, dim, 1,
                                                 static_cast<size_t>(shard_size_[s]), static_cast<size_t>(n), d, l);
                      },
                      k, exclude);
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
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mu;
  auto work = [&] {
    omp_set_num_threads(1);  // per thread in OpenMP: FAISS's regions inside stay on this thread
    try {
      for (int64_t b; (b = next.fetch_add(16)) < n;) {
        for (int64_t i = b; i < std::min(n, b + 16); ++i) out[i] = Search(queries + i * manifest_.dim, k, exclude[i]);
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

const std::string& ShardedIndex::title(int64_t item) const {
  static const std::string empty;
  return titles_.empty() ? empty : titles_[item];
}

namespace {

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

// A build that fails (a full disk) removes the files of its generation: the manifest, and the
// generation it names, stay as they were.
struct Unfinished {
  const std::string& dir;
  int64_t generation;
  bool done = false;
  ~Unfinished() {
    if (done) return;
    try {
      for (const auto& name : ListDirectory(dir)) {
        int64_t g = -1;
        if (ParseIndexFileName(name, nullptr, &g) && g == generation) RemoveAll(dir + "/" + name);
      }
    } catch (const UserError&) {  // an unreadable directory: the manifest still names the old files
    }
  }
};

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

// The index of shard `s` (n vectors), trained on a sample of them when the factory needs training.
std::unique_ptr<faiss::Index> BuildShardIndex(const std::string& factory, const IndexOptions& o, size_t s,
                                              const std::vector<float>& vectors, int64_t n, int64_t dim,
                                              IndexReport& rep) {
  std::unique_ptr<faiss::Index> ix;
  try {
    ix.reset(faiss::index_factory(static_cast<int>(dim), factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    Fail("--factory: FAISS cannot build '", factory, "': ", e.what());
  }
  if (!ix->is_trained) {
    if (n < 1) Fail("--factory ", factory, " needs training vectors but shard ", s, " is empty");
    const faiss::Index* base = ix.get();
    if (const auto* r = dynamic_cast<const faiss::IndexRefine*>(base)) base = r->base_index;
    const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(base);
    const int64_t want = o.train_vectors > 0 ? o.train_vectors
                                             : std::max<int64_t>(100000, 64 * (ivf ? static_cast<int64_t>(ivf->nlist) : 0));
    const std::vector<float> sample = SampleRows(vectors, n, dim, want, /*seed=*/static_cast<uint64_t>(s));
    ix->train(static_cast<int64_t>(sample.size()) / dim, sample.data());
    rep.train_vectors += static_cast<int64_t>(sample.size()) / dim;
  }
  ix->add(n, vectors.data());
  SetSearchParams(ix.get(), o.ef_search, o.nprobe, o.refine);
  return ix;
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
  void AddShard(const ExportShard& sh, const std::vector<float>& vectors, std::unique_ptr<faiss::Index> ix) {
    const int64_t n = sh.end - sh.begin;
    // The exact top-100 of every query, in one batched product (BLAS): the ground truth.
    const int64_t k_exact = std::min<int64_t>(100, n);
    if (k_exact > 0 && nq_ > 0) {
      std::vector<float> d(static_cast<size_t>(nq_ * k_exact));
      std::vector<faiss::Index::idx_t> l(d.size());
      faiss::knn_inner_product(queries_.data(), vectors.data(), static_cast<size_t>(dim_), static_cast<size_t>(nq_),
                               static_cast<size_t>(n), static_cast<size_t>(k_exact), d.data(), l.data());
      for (int64_t q = 0; q < nq_; ++q) {
        for (int64_t i = q * k_exact; i < (q + 1) * k_exact; ++i) {
          if (l[i] >= 0) exact100_[q].push_back({sh.begin + l[i], d[i]});
        }
      }
    }
    // Each recall@K comes from a k = K search of the index (a deeper search can find more: HNSW's
    // breadth and RFlat's candidates grow with k); the exact top-100 holds the exact top-10.
    // Queries/s: exact search vs the index at k = 10, single queries on one thread (exact search
    // timed on the first kExactTimedQueries queries: one at a time it scans the whole shard).
    const ThreadCount one_thread(1);
    std::vector<std::unique_ptr<faiss::Index>> built;
    built.push_back(std::move(ix));
    const std::vector<int64_t> begin = {sh.begin}, sizes = {n};
    for (int64_t q = 0; q < nq_; ++q) {
      const float* qv = queries_.data() + q * dim_;
      if (q < kExactTimedQueries) {
        const ShardSearch exact_q = [&](size_t, int64_t k, float* d, faiss::Index::idx_t* l) {
          faiss::knn_inner_product(qv, vectors.data(), static_cast<size_t>(dim_), 1, static_cast<size_t>(n),
                                   static_cast<size_t>(k), d, l);
        };
        const auto t0 = Clock::now();
        SearchShards(begin, sizes, exact_q, 10, {});
        t_exact_ += std::chrono::duration<double>(Clock::now() - t0).count();
      }
      auto t1 = Clock::now();
      auto got10 = SearchIndexes(built, begin, qv, 10, {});
      auto t2 = Clock::now();
      auto got100 = SearchIndexes(built, begin, qv, 100, {});
      t_index_ += std::chrono::duration<double>(t2 - t1).count();
      for (const auto* got : {&got10, &got100}) {
        for (const Hit& h : *got) {
          const float* row = vectors.data() + (h.id - sh.begin) * dim_;
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
      const auto want = Merge(std::move(exact100_[q]), 100);
      for (int k : {10, 100}) {
        const auto got = Merge(std::move(k == 10 ? index10_[q] : index100_[q]), k);
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
  std::vector<float> queries_;
  int64_t nq_, dim_;
  std::vector<std::vector<Hit>> exact100_, index10_, index100_;
  // The exact score of every item the index returned, per query (for ties at the K-th place).
  std::vector<std::unordered_map<int64_t, float>> returned_;
  double t_exact_ = 0, t_index_ = 0;
};

}  // namespace

IndexReport BuildExportIndex(const std::string& dir, const IndexOptions& o) {
  ExportManifest m = ReadExportManifest(dir);
  const int64_t old_generation = m.index_generation;
  const bool had_index = !m.index_factory.empty();
  const int64_t generation = old_generation + 1;
  IndexReport rep;
  rep.factory = ChooseFactory(o.factory, m);
  Unfinished unfinished{dir, generation};
  // Recall against exact search, with user-tower vectors as queries (read before the shards).
  std::vector<float> queries = ReadRecallQueries(dir, m, o.queries);
  const int64_t nq = std::min<int64_t>(o.queries, static_cast<int64_t>(queries.size()) / std::max<int64_t>(1, m.dim));
  RecallMeasure recall(std::move(queries), nq, m.dim);
  // Each shard in turn: read, build, write, and search for every query (exact and through the
  // index), then freed: the build holds one shard, never the catalogue.
  for (size_t s = 0; s < m.item_shards.size(); ++s) {
    const ExportShard& sh = m.item_shards[s];
    const auto shard_start = Clock::now();
    VectorShard v = ReadVectorShard(dir + "/" + sh.file);
    std::unique_ptr<faiss::Index> ix = BuildShardIndex(rep.factory, o, s, v.vectors, sh.end - sh.begin, m.dim, rep);
    // The next generation, beside the current one: readers keep using what their manifest names.
    WriteIndexFile(*ix, dir + "/" + IndexFileName(s, generation));
    rep.build_seconds += std::chrono::duration<double>(Clock::now() - shard_start).count();
    recall.AddShard(sh, v.vectors, std::move(ix));
  }
  recall.Finish(rep);
  m.index_generation = generation;
  m.index_factory = rep.factory;
  m.index_ef_search = o.ef_search;
  m.index_refine = o.refine;
  m.index_nprobe = o.nprobe;
  m.index_queries = nq;
  m.index_recall10 = rep.recall10;
  m.index_recall100 = rep.recall100;
  WriteExportManifest(dir, m);
  unfinished.done = true;
  // Generation G (the one just replaced) stays for readers that read the previous manifest; older
  // ones, and files of builds that died before switching the manifest, go.
  for (const auto& name : ListDirectory(dir)) {
    int64_t g = -1;
    if (ParseIndexFileName(name, nullptr, &g) && g != generation && (!had_index || g != old_generation)) {
      RemoveAll(dir + "/" + name);
    }
  }
  return rep;
}

}  // namespace shardrec
