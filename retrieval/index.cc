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

int64_t ShardedIndex::FindItem(const std::string& raw) const {
  for (size_t i = 0; i < raw_ids_.size(); ++i) {
    if (raw_ids_[i] == raw) return static_cast<int64_t>(i);
  }
  return -1;
}

IndexReport BuildExportIndex(const std::string& dir, const IndexOptions& o) {
  ExportManifest m = ReadExportManifest(dir);
  const int64_t old_generation = m.index_generation;
  const bool had_index = !m.index_factory.empty();
  const int64_t generation = old_generation + 1;
  IndexReport rep;
  int64_t largest = 0;
  for (const auto& s : m.item_shards) largest = std::max(largest, s.end - s.begin);
  // By measurement (docs/results.md, bench/index_bench): exact search is as fast as any index
  // below ~100k items; above, IVF-Flat with 4 sqrt(n) lists and nprobe 32 kept recall@10 at 1.0
  // while 6-13x faster than exact at 1M, where this FAISS's HNSW32 reached 0.94 at 2-3x.
  rep.factory = o.factory != "auto" ? o.factory
                : largest < 100000  ? "Flat"
                                    : "IVF" + std::to_string(static_cast<int64_t>(4 * std::sqrt(double(largest)))) + ",Flat";
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
  } unfinished{dir, generation};
  // Recall against exact search, with user-tower vectors as queries (read before the shards, a
  // prefix of the user shards only).
  std::vector<float> queries;
  for (const auto& sh : m.user_shards) {
    const int64_t have = static_cast<int64_t>(queries.size()) / std::max<int64_t>(1, m.dim);
    if (have >= o.queries) break;
    VectorShard u = ReadVectorShard(dir + "/" + sh.file, /*with_vectors=*/true, /*max_rows=*/o.queries - have);
    queries.insert(queries.end(), u.vectors.begin(), u.vectors.end());
  }
  const int64_t nq = std::min<int64_t>(o.queries, static_cast<int64_t>(queries.size()) / std::max<int64_t>(1, m.dim));
  // Each shard in turn: read, build, write, and search for every query (exact and through the
  // index), then freed: the build holds one shard, never the catalogue. The per-shard hits are
  // merged per query after the last shard, as a search over the sharded index merges them.
  std::vector<std::vector<Hit>> exact100(static_cast<size_t>(nq)), index10(exact100.size()), index100(exact100.size());
  // The exact score of every item the index returned, per query (for ties at the K-th place, below).
  std::vector<std::unordered_map<int64_t, float>> returned(exact100.size());
  double t_exact = 0, t_index = 0;
  for (size_t s = 0; s < m.item_shards.size(); ++s) {
    const ExportShard& sh = m.item_shards[s];
    const auto shard_start = Clock::now();
    VectorShard v = ReadVectorShard(dir + "/" + sh.file);
    std::unique_ptr<faiss::Index> ix;
    try {
      ix.reset(faiss::index_factory(static_cast<int>(m.dim), rep.factory.c_str(), faiss::METRIC_INNER_PRODUCT));
    } catch (const std::exception& e) {
      Fail("--factory: FAISS cannot build '", rep.factory, "': ", e.what());
    }
    const int64_t n = sh.end - sh.begin;
    if (!ix->is_trained) {
      if (n < 1) Fail("--factory ", rep.factory, " needs training vectors but shard ", s, " is empty");
      const faiss::Index* base = ix.get();
      if (const auto* r = dynamic_cast<const faiss::IndexRefine*>(base)) base = r->base_index;
      const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(base);
      const int64_t want = o.train_vectors > 0 ? o.train_vectors
                                               : std::max<int64_t>(100000, 64 * (ivf ? static_cast<int64_t>(ivf->nlist) : 0));
      const std::vector<float> sample = SampleRows(v.vectors, n, m.dim, want, /*seed=*/static_cast<uint64_t>(s));
      ix->train(static_cast<int64_t>(sample.size()) / m.dim, sample.data());
      rep.train_vectors += static_cast<int64_t>(sample.size()) / m.dim;
    }
    ix->add(n, v.vectors.data());
    SetSearchParams(ix.get(), o.ef_search, o.nprobe, o.refine);
    // The next generation, beside the current one: readers keep using what their manifest names.
    WriteIndexFile(*ix, dir + "/" + IndexFileName(s, generation));
    rep.build_seconds += std::chrono::duration<double>(Clock::now() - shard_start).count();
    // The exact top-100 of every query, in one batched product (BLAS): the ground truth.
    const int64_t k_exact = std::min<int64_t>(100, n);
    if (k_exact > 0 && nq > 0) {
      std::vector<float> d(static_cast<size_t>(nq * k_exact));
      std::vector<faiss::Index::idx_t> l(d.size());
      faiss::knn_inner_product(queries.data(), v.vectors.data(), static_cast<size_t>(m.dim), static_cast<size_t>(nq),
                               static_cast<size_t>(n), static_cast<size_t>(k_exact), d.data(), l.data());
      for (int64_t q = 0; q < nq; ++q) {
        for (int64_t i = q * k_exact; i < (q + 1) * k_exact; ++i) {
          if (l[i] >= 0) exact100[q].push_back({sh.begin + l[i], d[i]});
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
    for (int64_t q = 0; q < nq; ++q) {
      const float* qv = queries.data() + q * m.dim;
      if (q < kExactTimedQueries) {
        const ShardSearch exact_q = [&](size_t, int64_t k, float* d, faiss::Index::idx_t* l) {
          faiss::knn_inner_product(qv, v.vectors.data(), static_cast<size_t>(m.dim), 1, static_cast<size_t>(n),
                                   static_cast<size_t>(k), d, l);
        };
        const auto t0 = Clock::now();
        SearchShards(begin, sizes, exact_q, 10, {});
        t_exact += std::chrono::duration<double>(Clock::now() - t0).count();
      }
      auto t1 = Clock::now();
      auto got10 = SearchIndexes(built, begin, qv, 10, {});
      auto t2 = Clock::now();
      auto got100 = SearchIndexes(built, begin, qv, 100, {});
      t_index += std::chrono::duration<double>(t2 - t1).count();
      for (const auto* got : {&got10, &got100}) {
        for (const Hit& h : *got) {
          const float* row = v.vectors.data() + (h.id - sh.begin) * m.dim;
          returned[q].emplace(h.id, std::inner_product(qv, qv + m.dim, row, 0.0f));
        }
      }
      index10[q].insert(index10[q].end(), got10.begin(), got10.end());
      index100[q].insert(index100[q].end(), got100.begin(), got100.end());
    }
  }
  double hit10 = 0, hit100 = 0;
  for (int64_t q = 0; q < nq; ++q) {
    const auto want = Merge(std::move(exact100[q]), 100);
    for (int k : {10, 100}) {
      const auto got = Merge(std::move(k == 10 ? index10[q] : index100[q]), k);
      (k == 10 ? hit10 : hit100) += RecallAtK(want, got, returned[q], k);
    }
  }
  rep.queries = nq;
  rep.recall10 = nq ? hit10 / nq : 0;
  rep.recall100 = nq ? hit100 / nq : 0;
  rep.exact_qps = t_exact > 0 ? static_cast<double>(std::min<int64_t>(nq, kExactTimedQueries)) / t_exact : 0;
  rep.index_qps = t_index > 0 ? nq / t_index : 0;
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
