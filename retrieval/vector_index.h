// The search interface (docs/retrieval.md), FAISS's Index narrowed to what recall needs: a fixed
// set of vectors labelled 0..size-1, searched by inner product. Exact search is the oracle every
// approximate index is measured against.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace shardrec {

struct Hit {
  int64_t id = 0;  // the row's label
  float score = 0;
};

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  virtual int64_t size() const = 0;
  virtual int64_t dim() const = 0;
  // Up to min(k, size) rows by inner product with `query` [dim], best first. Safe to call from
  // several threads at once.
  virtual std::vector<Hit> Search(const float* query, int64_t k) const = 0;
  // What answers: "exact" or the FAISS factory string.
  virtual std::string name() const = 0;
};

// Exact search over `vectors` [n x dim] (owned): a scan of every row per query (TopKInnerProduct, retrieval/inner_product.h).
std::unique_ptr<VectorIndex> NewExactIndex(std::vector<float> vectors, int64_t dim);

// Orders hits best first: higher score, then lower id (the order every merge uses).
void SortHits(std::vector<Hit>& hits);

// The recall protocol of one query: the share of the exact top-k (`exact`, best first) found in
// the index's first k hits (`got`). A returned item outside the exact top-k whose exact score
// (`exact_score`, by item id) ties the k-th exact score within 1e-5 (relative) counts as found: an
// inner product computed in a batch or one query at a time differs in the last bits, which can
// order near-ties either way. 1 when there is nothing to find; each item counts once.
double RecallAtK(const std::vector<Hit>& exact, const std::vector<Hit>& got,
                 const std::unordered_map<int64_t, float>& exact_score, int64_t k);

}  // namespace shardrec
