#include "retrieval/inner_product.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/distances.h>
#include <glog/logging.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <typeinfo>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// This file is compiled with -ffp-contract=off (retrieval/CMakeLists.txt): a multiply and an add
// never fuse, so the scalar and the vector paths round alike.

namespace shardrec {
namespace {

// The products from `from` to d added to `sum` in increasing i (the documented tail).
float AddTail(const float* a, const float* b, int64_t from, int64_t d, float sum) {
  for (int64_t i = from; i < d; ++i) sum += a[i] * b[i];
  return sum;
}

#if defined(__x86_64__)
// Partials 0-7 in `lo`, 8-15 in `hi`; the tree adds lanes j + 8, then the 128-bit halves (j + 4),
// then the high pair onto the low (j + 2), then lane 1 onto lane 0: InnerProductScalar's order.
__attribute__((target("avx"))) float InnerProductAvx(const float* a, const float* b, int64_t d) {
  const int64_t d16 = d & ~int64_t{15};
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int64_t i = 0; i < d16; i += 16) {
    lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8)));
  }
  const __m256 t = _mm256_add_ps(lo, hi);
  __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  u = _mm_add_ps(u, _mm_movehl_ps(u, u));
  u = _mm_add_ss(u, _mm_shuffle_ps(u, u, 1));
  return AddTail(a, b, d16, d, _mm_cvtss_f32(u));
}

bool CpuHasAvx() { return __builtin_cpu_supports("avx"); }
#else
float InnerProductAvx(const float* a, const float* b, int64_t d) { return InnerProductScalar(a, b, d); }
bool CpuHasAvx() { return false; }
#endif

const bool kAvx = CpuHasAvx();

using idx_t = faiss::Index::idx_t;

// FAISS's distance computer over a flat inner-product storage (HNSW's graph walk), on InnerProduct.
class IpComputer : public faiss::FlatCodesDistanceComputer {
 public:
  IpComputer(const float* base, int64_t dim)
      : faiss::FlatCodesDistanceComputer(reinterpret_cast<const uint8_t*>(base), static_cast<size_t>(dim) * sizeof(float)),
        dim_(dim) {}
  void set_query(const float* x) override { query_ = x; }
  float distance_to_code(const uint8_t* code) override {
    return InnerProduct(query_, reinterpret_cast<const float*>(code), dim_);
  }
  float symmetric_dis(idx_t i, idx_t j) override {
    const float* base = reinterpret_cast<const float*>(codes);
    return InnerProduct(base + j * dim_, base + i * dim_, dim_);
  }

 private:
  const float* query_ = nullptr;
  int64_t dim_;
};

// An exact inner-product index whose searches of a few queries (under FAISS's BLAS threshold, where
// FAISS would loop over its scalar inner product) run TopKInnerProduct; larger batches stay on
// FAISS's matrix product. It takes the vectors of `from` (left empty).
struct FlatIpIndex : faiss::IndexFlatIP {
  explicit FlatIpIndex(faiss::IndexFlat& from) : faiss::IndexFlatIP(from.d) {
    codes.swap(from.codes);
    ntotal = from.ntotal;
    from.ntotal = 0;
    verbose = from.verbose;
  }
  void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override {
    if (k <= 0 || n >= faiss::distance_compute_blas_threshold || (params != nullptr && params->sel != nullptr)) {
      faiss::IndexFlatIP::search(n, x, k, distances, labels, params);
      return;
    }
    for (idx_t i = 0; i < n; ++i) TopKInnerProduct(x + i * d, get_xb(), ntotal, d, k, distances + i * k, labels + i * k);
  }
  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override { return new IpComputer(get_xb(), d); }
};

// Scans an IVF-Flat list on InnerProduct, with the heap rule of FAISS's own scanner.
class IpListScanner : public faiss::InvertedListScanner {
 public:
  IpListScanner(int64_t dim, bool store_pairs) : faiss::InvertedListScanner(store_pairs, nullptr), dim_(dim) {
    keep_max = true;
    code_size = static_cast<size_t>(dim) * sizeof(float);
  }
  void set_query(const float* x) override { query_ = x; }
  void set_list(idx_t list, float /*coarse_dis*/) override { list_no = list; }
  float distance_to_code(const uint8_t* code) const override {
    return InnerProduct(query_, reinterpret_cast<const float*>(code), dim_);
  }
  size_t scan_codes(size_t n, const uint8_t* codes, const idx_t* ids, float* scores, idx_t* labels,
                    size_t k) const override {
    const float* v = reinterpret_cast<const float*>(codes);
    size_t updates = 0;
    for (size_t j = 0; j < n; ++j, v += dim_) {
      const float s = InnerProduct(query_, v, dim_);
      if (s > scores[0]) {
        faiss::minheap_replace_top(k, scores, labels, s, Label(ids, j));
        ++updates;
      }
    }
    return updates;
  }
  void scan_codes_range(size_t n, const uint8_t* codes, const idx_t* ids, float radius,
                        faiss::RangeQueryResult& result) const override {
    const float* v = reinterpret_cast<const float*>(codes);
    for (size_t j = 0; j < n; ++j, v += dim_) {
      const float s = InnerProduct(query_, v, dim_);
      if (s > radius) result.add(s, Label(ids, j));
    }
  }

 private:
  idx_t Label(const idx_t* ids, size_t j) const {
    return store_pairs ? static_cast<idx_t>(faiss::lo_build(static_cast<uint64_t>(list_no), j)) : ids[j];
  }
  const float* query_ = nullptr;
  int64_t dim_;
};

// An IVF-Flat inner-product index scanning with IpListScanner (a search with an id selector keeps
// FAISS's scanner). It takes the lists and the quantizer of `from` (which keeps neither).
struct IvfFlatIpIndex : faiss::IndexIVFFlat {
  explicit IvfFlatIpIndex(faiss::IndexIVFFlat& from) : faiss::IndexIVFFlat(from) {
    from.own_invlists = false;
    from.own_fields = false;
  }
  faiss::InvertedListScanner* get_InvertedListScanner(bool store_pairs, const faiss::IDSelector* sel) const override {
    if (sel != nullptr) return faiss::IndexIVFFlat::get_InvertedListScanner(store_pairs, sel);
    return new IpListScanner(d, store_pairs);
  }
};

bool IsPlainFlatIp(const faiss::Index* ix) {
  return (typeid(*ix) == typeid(faiss::IndexFlat) || typeid(*ix) == typeid(faiss::IndexFlatIP)) &&
         ix->metric_type == faiss::METRIC_INNER_PRODUCT;
}

}  // namespace

float InnerProductScalar(const float* a, const float* b, int64_t d) {
  const int64_t d16 = d & ~int64_t{15};
  float s[16] = {};
  for (int64_t i = 0; i < d16; i += 16) {
    for (int j = 0; j < 16; ++j) s[j] += a[i + j] * b[i + j];
  }
  for (int w = 8; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) s[j] += s[j + w];
  }
  return AddTail(a, b, d16, d, s[0]);
}

float InnerProduct(const float* a, const float* b, int64_t d) {
  return kAvx ? InnerProductAvx(a, b, d) : InnerProductScalar(a, b, d);
}

bool InnerProductUsesAvx() { return kAvx; }

void TopKInnerProduct(const float* query, const float* base, int64_t n, int64_t dim, int64_t k, float* scores,
                      int64_t* ids) {
  CHECK_GE(k, 0);
  // A heap of the best rows so far whose front is the worst of them: the lowest score, of equal
  // scores the later row. A row enters only if it is better than the front.
  struct Row {
    float score;
    int64_t id;
  };
  auto better = [](const Row& a, const Row& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); };
  std::vector<Row> heap;
  heap.reserve(static_cast<size_t>(std::min(k, n)));
  const float* row = base;
  for (int64_t r = 0; r < n && k > 0; ++r, row += dim) {
    const Row x{InnerProduct(query, row, dim), r};
    if (!(x.score > -FLT_MAX)) continue;  // NaN, -inf and -FLT_MAX never count (nor do they in FAISS)
    if (static_cast<int64_t>(heap.size()) < k) {
      heap.push_back(x);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(x, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = x;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);
  for (int64_t i = 0; i < k; ++i) {
    const bool have = i < static_cast<int64_t>(heap.size());
    scores[i] = have ? heap[i].score : -FLT_MAX;
    ids[i] = have ? heap[i].id : -1;
  }
}

void UseInnerProductKernels(std::unique_ptr<faiss::Index>& index) {
  faiss::Index* ix = index.get();
  if (ix == nullptr || ix->metric_type != faiss::METRIC_INNER_PRODUCT) return;
  if (IsPlainFlatIp(ix)) {
    index.reset(new FlatIpIndex(*static_cast<faiss::IndexFlat*>(ix)));
  } else if (auto* r = dynamic_cast<faiss::IndexRefine*>(ix); r != nullptr && r->own_fields) {
    std::unique_ptr<faiss::Index> base(r->base_index);
    r->base_index = nullptr;
    UseInnerProductKernels(base);
    r->base_index = base.release();
  } else if (auto* h = dynamic_cast<faiss::IndexHNSW*>(ix); h != nullptr && h->own_fields && IsPlainFlatIp(h->storage)) {
    faiss::Index* storage = new FlatIpIndex(*static_cast<faiss::IndexFlat*>(h->storage));
    delete h->storage;
    h->storage = storage;
  } else if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(ix)) {
    if (ivf->own_fields && IsPlainFlatIp(ivf->quantizer)) {
      faiss::Index* quantizer = new FlatIpIndex(*static_cast<faiss::IndexFlat*>(ivf->quantizer));
      delete ivf->quantizer;
      ivf->quantizer = quantizer;
    }
    if (typeid(*ix) == typeid(faiss::IndexIVFFlat)) index.reset(new IvfFlatIpIndex(*static_cast<faiss::IndexIVFFlat*>(ix)));
  }
}

}  // namespace shardrec
