// ANN index benchmark for exports: build time, memory (serialised index bytes, and the growth of the
// process's resident set while the index is built and held), queries/s and recall@10 against exact
// search (measured in the same run) for FAISS (Flat = exact, IVF-Flat, IVF-PQ, HNSW) and hnswlib,
// at 100k and 1M items, with 1 and 2 threads. Vectors: L2-normalised mixture of 256 Gaussian
// clusters in `dim` dimensions (embedding-like); queries: held-out points of the same mixture.
//   index_bench [--items 100000,1000000 --dim 64 --queries 1000]
// With --kernels 1, instead: single-query search (the path of `shardrec query` and `serve`) of the
// same Flat, IVF-Flat and HNSW32 index on FAISS's own inner product and on ShardRec's
// (retrieval/inner_product.h), one thread, queries/s of each and whether the top 10 agree.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <hnswlib/hnswlib.h>
#include <malloc.h>
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/rng.h"
#include "retrieval/inner_product.h"

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<float> MakeVectors(int64_t n, int64_t d, uint64_t seed) {
  const int clusters = 256;
  shardrec::Rng centers(42);
  std::vector<float> c(static_cast<size_t>(clusters * d));
  for (auto& x : c) x = static_cast<float>(centers.Normal());
  shardrec::Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = static_cast<int64_t>(rng.Below(clusters));
    double norm = 0;
    for (int64_t j = 0; j < d; ++j) {
      float x = c[k * d + j] + 0.7f * static_cast<float>(rng.Normal());
      v[i * d + j] = x;
      norm += x * x;
    }
    for (int64_t j = 0; j < d; ++j) v[i * d + j] /= static_cast<float>(std::sqrt(norm));
  }
  return v;
}

double Recall(const std::vector<faiss::Index::idx_t>& got, const std::vector<faiss::Index::idx_t>& truth, int64_t nq, int k) {
  double r = 0;
  for (int64_t q = 0; q < nq; ++q) {
    std::unordered_set<faiss::Index::idx_t> t(truth.begin() + q * k, truth.begin() + (q + 1) * k);
    int f = 0;
    for (int i = 0; i < k; ++i) f += t.count(got[q * k + i]);
    r += static_cast<double>(f) / k;
  }
  return r / nq;
}

// Resident set of this process in MiB (/proc/self/statm), after returning freed heap to the system
// (with the fixed mmap threshold set in main, an earlier index's freed memory is not reused unseen).
double RssMiB() {
  malloc_trim(0);
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

int64_t IndexBytes(faiss::Index* ix) {
  faiss::VectorIOWriter w;
  faiss::write_index(ix, &w);
  return static_cast<int64_t>(w.data.size());
}

// The --kernels table for one size (see the top of the file).
void KernelTable(int64_t n, int64_t dim, int64_t nq, const std::vector<float>& base, const std::vector<float>& queries) {
  const int k = 10, nlist = static_cast<int>(4 * std::sqrt(static_cast<double>(n)));
  for (const std::string& factory : {std::string("Flat"), "IVF" + std::to_string(nlist) + ",Flat", std::string("HNSW32")}) {
    omp_set_num_threads(2);
    std::unique_ptr<faiss::Index> plain(faiss::index_factory(static_cast<int>(dim), factory.c_str(), faiss::METRIC_INNER_PRODUCT));
    if (!plain->is_trained) plain->train(std::min<int64_t>(n, 100000), base.data());
    plain->add(n, base.data());
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(plain.get())) ivf->nprobe = 32;
    if (auto* h = dynamic_cast<faiss::IndexHNSW*>(plain.get())) h->hnsw.efSearch = 128;
    faiss::VectorIOWriter w;  // the same index, a second copy, on ShardRec's kernels
    faiss::write_index(plain.get(), &w);
    faiss::VectorIOReader r;
    r.data = std::move(w.data);
    std::unique_ptr<faiss::Index> ours(faiss::read_index(&r));
    shardrec::UseInnerProductKernels(ours);
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(ours.get())) ivf->nprobe = 32;
    if (auto* h = dynamic_cast<faiss::IndexHNSW*>(ours.get())) h->hnsw.efSearch = 128;
    omp_set_num_threads(1);
    double qps[2];
    std::vector<faiss::Index::idx_t> got[2];
    std::vector<float> dist(k);
    for (int which = 0; which < 2; ++which) {
      const faiss::Index* ix = which == 0 ? plain.get() : ours.get();
      got[which].resize(static_cast<size_t>(nq * k));
      const auto t = Clock::now();
      for (int64_t q = 0; q < nq; ++q) ix->search(1, queries.data() + q * dim, k, dist.data(), got[which].data() + q * k);
      qps[which] = nq / Since(t);
    }
    std::printf("| %lld | %s | %.0f | %.0f | %.2fx | %.4f |\n", static_cast<long long>(n), factory.c_str(), qps[0], qps[1],
                qps[1] / qps[0], Recall(got[1], got[0], nq, k));
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 1 << 20);  // large blocks are mapped and unmapped, not kept in the heap
  std::vector<int64_t> sizes = {100000, 1000000};
  int64_t dim = 64, nq = 1000;
  bool kernels = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--dim") dim = std::stoll(v);
    if (k == "--queries") nq = std::stoll(v);
    if (k == "--kernels") kernels = std::stoll(v) != 0;
    if (k == "--items") {
      sizes.clear();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        sizes.push_back(std::stoll(v.substr(p, q - p)));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    }
  }
  if (kernels) {
    std::printf("| items | index | FAISS's kernel, queries/s | ShardRec's, queries/s | speed-up | same top 10 |\n"
                "|---|---|---|---|---|---|\n");
    for (int64_t n : sizes) KernelTable(n, dim, nq, MakeVectors(n, dim, 1), MakeVectors(nq, dim, 2));
    return 0;
  }
  const int k = 10;
  std::printf("| items | index | build s | index MiB | RSS +MiB | threads | queries/s | x exact | recall@10 |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t n : sizes) {
    std::vector<float> base = MakeVectors(n, dim, 1), queries = MakeVectors(nq, dim, 2);
    std::vector<faiss::Index::idx_t> truth(static_cast<size_t>(nq * k));
    std::vector<float> dist(static_cast<size_t>(nq * k));
    double rss = RssMiB();
    faiss::IndexFlatIP exact(dim);
    exact.add(n, base.data());
    const double exact_rss = RssMiB() - rss;
    double exact_qps[3] = {0, 0, 0};
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      auto t = Clock::now();
      exact.search(nq, queries.data(), k, dist.data(), truth.data());
      exact_qps[threads] = nq / Since(t);
      std::printf("| %lld | exact (FAISS Flat) | 0 | %.0f | %.0f | %d | %.0f | 1.0 | 1.0000 |\n", static_cast<long long>(n),
                  n * dim * 4.0 / (1 << 20), exact_rss, threads, exact_qps[threads]);
      std::fflush(stdout);
    }
    const int nlist = static_cast<int>(4 * std::sqrt(static_cast<double>(n)));
    struct Spec {
      std::string factory;
      int nprobe, ef;
    };
    std::vector<Spec> specs = {{"IVF" + std::to_string(nlist) + ",Flat", 32, 0},
                               {"IVF" + std::to_string(nlist) + ",PQ16", 32, 0},
                               {"IVF" + std::to_string(nlist) + ",PQ32", 32, 0},
                               {"HNSW32", 0, 128}};
    for (const Spec& s : specs) {
      omp_set_num_threads(2);
      rss = RssMiB();
      auto t = Clock::now();
      std::unique_ptr<faiss::Index> ix(faiss::index_factory(static_cast<int>(dim), s.factory.c_str(), faiss::METRIC_INNER_PRODUCT));
      if (!ix->is_trained) ix->train(std::min<int64_t>(n, 100000), base.data());
      ix->add(n, base.data());
      const double build = Since(t);
      if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(ix.get())) ivf->nprobe = s.nprobe;
      if (auto* h = dynamic_cast<faiss::IndexHNSW*>(ix.get())) h->hnsw.efSearch = s.ef;
      const double mib = IndexBytes(ix.get()) / double(1 << 20), grown = RssMiB() - rss;
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        std::vector<faiss::Index::idx_t> got(static_cast<size_t>(nq * k));
        auto q = Clock::now();
        ix->search(nq, queries.data(), k, dist.data(), got.data());
        const double qps = nq / Since(q);
        std::printf("| %lld | FAISS %s | %.1f | %.0f | %.0f | %d | %.0f | %.1f | %.4f |\n", static_cast<long long>(n),
                    s.factory.c_str(), build, mib, grown, threads, qps, qps / exact_qps[threads], Recall(got, truth, nq, k));
        std::fflush(stdout);
      }
    }
    // hnswlib (header-only, compiled with this project's flags), M = 16 (~HNSW32 links at layer 0), ef 128.
    {
      hnswlib::InnerProductSpace space(static_cast<size_t>(dim));
      rss = RssMiB();
      auto t = Clock::now();
      hnswlib::HierarchicalNSW<float> h(&space, static_cast<size_t>(n), 16, 200);
#pragma omp parallel for num_threads(2) schedule(dynamic, 1024)
      for (int64_t i = 0; i < n; ++i) h.addPoint(base.data() + i * dim, static_cast<size_t>(i));
      const double build = Since(t);
      h.setEf(128);
      const double mib = (n * (dim * 4.0 + 16 * 2 * 4 + 16)) / (1 << 20);  // vectors + level-0 links (approx.)
      const double grown = RssMiB() - rss;
      for (int threads : {1, 2}) {
        std::vector<faiss::Index::idx_t> got(static_cast<size_t>(nq * k), -1);
        auto q = Clock::now();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
        for (int64_t i = 0; i < nq; ++i) {
          auto res = h.searchKnn(queries.data() + i * dim, k);
          for (int j = k - 1; j >= 0 && !res.empty(); --j) {
            got[i * k + j] = static_cast<faiss::Index::idx_t>(res.top().second);
            res.pop();
          }
        }
        const double qps = nq / Since(q);
        std::printf("| %lld | hnswlib M16 ef128 | %.1f | %.0f | %.0f | %d | %.0f | %.1f | %.4f |\n", static_cast<long long>(n),
                    build, mib, grown, threads, qps, qps / exact_qps[threads], Recall(got, truth, nq, k));
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
