// The search kernels (retrieval/inner_product.h) against independent oracles: the documented
// summation order written out here, a double-precision sum, a full sort of every score, and FAISS's
// own indexes searched as FAISS builds them.
#include "retrieval/inner_product.h"

#include <faiss/Index.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "retrieval/faiss_index.h"
#include "tests/test_util.h"

namespace shardrec {
namespace {

// The order retrieval/inner_product.h documents, term by term (volatile: nothing fused or reordered).
float DocumentedOrder(const float* a, const float* b, int64_t d) {
  const int64_t d16 = d / 16 * 16;
  volatile float s[16] = {};
  for (int64_t i = 0; i < d16; ++i) {
    volatile float p = a[i] * b[i];
    s[i % 16] = s[i % 16] + p;
  }
  for (int w = 8; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) s[j] = s[j] + s[j + w];
  }
  volatile float sum = s[0];
  for (int64_t i = d16; i < d; ++i) {
    volatile float p = a[i] * b[i];
    sum = sum + p;
  }
  return sum;
}

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

TEST(InnerProduct, FollowsTheDocumentedOrderBitForBitAtEveryLengthAndAlignment) {
  const std::vector<float> a = Random(300, 1, 3.0f), b = Random(300, 2, 0.01f);
  for (int64_t d = 0; d <= 150; ++d) {
    for (int64_t off = 0; off < 8; ++off) {
      const float got = InnerProduct(a.data() + off, b.data() + 7 - off, d);
      const uint32_t want = std::bit_cast<uint32_t>(DocumentedOrder(a.data() + off, b.data() + 7 - off, d));
      ASSERT_EQ(std::bit_cast<uint32_t>(got), want) << "d " << d << ", offset " << off;
      ASSERT_EQ(std::bit_cast<uint32_t>(InnerProductScalar(a.data() + off, b.data() + 7 - off, d)), want) << "d " << d;
      double exact = 0;
      for (int64_t i = 0; i < d; ++i) exact += static_cast<double>(a[off + i]) * b[7 - off + i];
      ASSERT_NEAR(got, exact, 1e-5 * (1 + std::abs(exact)));
    }
  }
  EXPECT_EQ(InnerProduct(a.data(), b.data(), 0), 0.0f);
  const float ones[3] = {1, 2, 3};
  EXPECT_EQ(InnerProduct(ones, ones, 3), 14.0f);  // by hand
  std::printf("InnerProduct on %s\n", InnerProductUsesAvx() ? "AVX" : "scalar code");
#if defined(__x86_64__)
  EXPECT_EQ(InnerProductUsesAvx(), static_cast<bool>(__builtin_cpu_supports("avx")));  // the vector path is the one tested here
#endif
}

// Every row scored, sorted best first (ties: the lower row first): the top k must be these.
TEST(TopKInnerProduct, EqualsAFullSortOfEveryScore) {
  const int64_t n = 997, dim = 37;
  std::vector<float> base = Random(n * dim, 3), q = Random(dim, 4);
  // Rows 10 and 500 are the same vector: a tie, which the earlier row wins.
  std::copy_n(base.begin() + 10 * dim, dim, base.begin() + 500 * dim);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::vector<float> score(n);
  for (int64_t r = 0; r < n; ++r) score[r] = DocumentedOrder(q.data(), base.data() + r * dim, dim);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return score[x] > score[y]; });
  ASSERT_EQ(score[10], score[500]);
  for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{10}, int64_t{100}, n, n + 5}) {
    std::vector<float> s(k);
    std::vector<int64_t> id(k);
    TopKInnerProduct(q.data(), base.data(), n, dim, k, s.data(), id.data());
    for (int64_t i = 0; i < k; ++i) {
      if (i < n) {
        ASSERT_EQ(id[i], order[i]) << "k " << k << ", rank " << i;
        ASSERT_EQ(s[i], score[order[i]]);
      } else {
        ASSERT_EQ(id[i], -1);
        ASSERT_EQ(s[i], -FLT_MAX);
      }
    }
  }
  // The tie at the edge: with k covering row 10 but not both, row 10 is kept, not row 500.
  const auto at = std::find(order.begin(), order.end(), int64_t{10}) - order.begin();
  std::vector<float> s(at + 1);
  std::vector<int64_t> id(at + 1);
  TopKInnerProduct(q.data(), base.data(), n, dim, at + 1, s.data(), id.data());
  EXPECT_NE(std::find(id.begin(), id.end(), int64_t{10}), id.end());
  EXPECT_EQ(std::find(id.begin(), id.end(), int64_t{500}), id.end());
}

// The indexes ShardRec builds and reads answer as the same file read by FAISS alone (the same ids;
// scores within float rounding, which is all the kernels change), and a written index read back
// answers bit for bit as it did before the write.
TEST(InnerProductKernels, IndexesAnswerAsFaissOwnDoBeforeAndAfterAWrite) {
  testing::TempDir dir;
  const int64_t n = 3000, dim = 40, nq = 40, k = 10;
  std::vector<float> base = Random(n * dim, 5), queries = Random(nq * dim, 6);
  auto normalise = [&](std::vector<float>& v) {
    for (size_t r = 0; r < v.size() / dim; ++r) {
      double s = 0;
      for (int64_t i = 0; i < dim; ++i) s += double{v[r * dim + i]} * v[r * dim + i];
      for (int64_t i = 0; i < dim; ++i) v[r * dim + i] = static_cast<float>(v[r * dim + i] / std::sqrt(s));
    }
  };
  normalise(base);
  normalise(queries);
  const SearchKnobs knobs{.ef_search = 64, .nprobe = 4, .refine = 3};
  for (const std::string factory : {"Flat", "IVF32,Flat", "HNSW16", "IVF32,PQ8np"}) {
    SCOPED_TRACE(factory);
    auto ours = FaissIndex::Build(factory, knobs, base, dim, 0, 1);
    const std::string file = dir.File(factory + ".faiss");
    ours->Write(file);
    auto reread = FaissIndex::Read(file, factory, knobs);
    std::unique_ptr<faiss::Index> plain(faiss::read_index(file.c_str()));  // FAISS's own classes and kernels
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(plain.get())) ivf->nprobe = knobs.nprobe;
    if (auto* h = dynamic_cast<faiss::IndexHNSW*>(plain.get())) h->hnsw.efSearch = static_cast<int>(knobs.ef_search);
    int64_t differ = 0, bitwise = 0;
    for (int64_t q = 0; q < nq; ++q) {
      std::vector<float> d(k);
      std::vector<faiss::Index::idx_t> l(k);
      plain->search(1, queries.data() + q * dim, k, d.data(), l.data());
      const auto got = ours->Search(queries.data() + q * dim, k), again = reread->Search(queries.data() + q * dim, k);
      ASSERT_EQ(got.size(), static_cast<size_t>(k));
      ASSERT_EQ(again.size(), got.size());
      for (int64_t i = 0; i < k; ++i) {
        differ += got[i].id != l[i];
        EXPECT_NEAR(got[i].score, d[i], 2e-6);
        EXPECT_EQ(again[i].id, got[i].id);
        EXPECT_EQ(std::bit_cast<uint32_t>(again[i].score), std::bit_cast<uint32_t>(got[i].score));
        if (!factory.starts_with("IVF32,PQ")) {  // scored by InnerProduct itself (FAISS's sum differs in the last bits)
          const float own = InnerProduct(queries.data() + q * dim, base.data() + got[i].id * dim, dim);
          EXPECT_EQ(std::bit_cast<uint32_t>(got[i].score), std::bit_cast<uint32_t>(own)) << "rank " << i;
          bitwise += std::bit_cast<uint32_t>(got[i].score) == std::bit_cast<uint32_t>(d[i]);
        }
      }
    }
    EXPECT_EQ(differ, 0);
    if (!factory.starts_with("IVF32,PQ")) {
      EXPECT_LT(bitwise, nq * k);  // FAISS's own scores are not these: the kernel ran
    }
    // A range search of the IVF-Flat (its lists scanned by ShardRec's scanner) finds FAISS's set.
    if (factory == "IVF32,Flat") {
      faiss::RangeSearchResult mine(nq), theirs(nq);
      std::unique_ptr<faiss::Index> ours_raw(faiss::read_index(file.c_str()));
      UseInnerProductKernels(ours_raw);
      dynamic_cast<faiss::IndexIVF*>(ours_raw.get())->nprobe = knobs.nprobe;
      ours_raw->range_search(nq, queries.data(), 0.4f, &mine);
      plain->range_search(nq, queries.data(), 0.4f, &theirs);
      ASSERT_EQ(mine.lims[nq], theirs.lims[nq]);
      EXPECT_GT(mine.lims[nq], 0u);
      for (int64_t q = 0; q < nq; ++q) {
        std::vector<int64_t> a(mine.labels + mine.lims[q], mine.labels + mine.lims[q + 1]);
        std::vector<int64_t> b(theirs.labels + theirs.lims[q], theirs.labels + theirs.lims[q + 1]);
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        EXPECT_EQ(a, b) << "query " << q;
      }
    }
  }
  // Refinement: the candidates' exact re-ranking returns each item's exact score.
  auto refined = FaissIndex::Build("IVF32,Flat,RFlat", knobs, base, dim, 0, 1);
  for (int64_t q = 0; q < nq; ++q) {
    for (const Hit& h : refined->Search(queries.data() + q * dim, k)) {
      double exact = 0;
      for (int64_t i = 0; i < dim; ++i) exact += double{queries[q * dim + i]} * base[h.id * dim + i];
      ASSERT_NEAR(h.score, exact, 1e-5);
    }
  }
}

}  // namespace
}  // namespace shardrec
