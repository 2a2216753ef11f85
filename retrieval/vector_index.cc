#include "retrieval/vector_index.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "retrieval/inner_product.h"

namespace shardrec {
namespace {

class ExactIndex : public VectorIndex {
 public:
  ExactIndex(std::vector<float> vectors, int64_t dim) : vectors_(std::move(vectors)), dim_(dim) {
    CHECK_GT(dim, 0);
    CHECK_EQ(static_cast<int64_t>(vectors_.size()) % dim, 0);
  }
  int64_t size() const override { return static_cast<int64_t>(vectors_.size()) / dim_; }
  int64_t dim() const override { return dim_; }
  std::string name() const override { return "exact"; }

  std::vector<Hit> Search(const float* q, int64_t k) const override {
    const int64_t n = std::min(k, size());
    if (n <= 0) return {};
    std::vector<float> d(static_cast<size_t>(n));
    std::vector<int64_t> l(static_cast<size_t>(n));
    TopKInnerProduct(q, vectors_.data(), size(), dim_, n, d.data(), l.data());
    std::vector<Hit> hits;
    for (int64_t i = 0; i < n; ++i) {
      if (l[i] >= 0) hits.push_back({l[i], d[i]});
    }
    return hits;
  }

 private:
  std::vector<float> vectors_;
  int64_t dim_;
};

}  // namespace

std::unique_ptr<VectorIndex> NewExactIndex(std::vector<float> vectors, int64_t dim) {
  return std::make_unique<ExactIndex>(std::move(vectors), dim);
}

void SortHits(std::vector<Hit>& hits) {
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); });
}

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

}  // namespace shardrec
