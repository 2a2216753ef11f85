// A FAISS index behind VectorIndex (docs/retrieval.md): built from a factory string on inner
// product, searched with the knobs it carries, written and read as one checked file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "retrieval/vector_index.h"

namespace faiss {
struct Index;
}

namespace shardrec {

// How deep a search goes; each applies to the index types that have it.
struct SearchKnobs {
  int64_t ef_search = 128;  // HNSW search breadth
  int64_t nprobe = 32;      // IVF lists probed
  int64_t refine = 4;       // "...,RFlat": the base index proposes refine x k candidates, re-ranked exactly
};
// The knobs' ranges (FAISS keeps them as int and float): ef_search and nprobe in [1, 2^20], refine
// in [1, 1024]. CheckSearchKnobs: a UserError naming `where` and the knob otherwise.
inline constexpr int64_t kMaxSearchBreadth = int64_t{1} << 20, kMaxRefine = 1024;
void CheckSearchKnobs(const SearchKnobs& knobs, const std::string& where);

class FaissIndex : public VectorIndex {
 public:
  // Builds `factory` (a FAISS factory string, inner product) over `vectors` [n x dim]. An index that
  // needs training (IVF k-means, PQ codebooks) trains on a uniform sample of `train_vectors` rows
  // (0: max(100000, 64 x IVF lists)), drawn with `seed`. A factory FAISS cannot build is a
  // UserError naming it.
  static std::unique_ptr<FaissIndex> Build(const std::string& factory, const SearchKnobs& knobs,
                                           const std::vector<float>& vectors, int64_t dim, int64_t train_vectors,
                                           uint64_t seed);
  // Reads `path` (a damaged file is a UserError naming it) and searches with `knobs`.
  static std::unique_ptr<FaissIndex> Read(const std::string& path, const std::string& factory, const SearchKnobs& knobs);
  ~FaissIndex() override;

  // Replaces the vectors of rows `ids` (each < size(), or == size() + k for the k-th row added) by
  // `vectors` [ids x dim], in place: the trained quantizer and codebooks are kept, only those rows
  // are removed and encoded again (an IVF index, with or without PQ). False, and the index
  // unchanged, for a kind whose rows cannot be replaced (Flat renumbers on removal, HNSW cannot
  // remove, RFlat's refinement keeps rows by position): the caller builds it anew.
  bool Update(const std::vector<int64_t>& ids, const std::vector<float>& vectors);

  // Writes the index to `path`: every write checked, the file complete or absent.
  void Write(const std::string& path) const;

  int64_t size() const override;
  int64_t dim() const override;
  std::vector<Hit> Search(const float* query, int64_t k) const override;
  std::string name() const override { return factory_; }
  const SearchKnobs& knobs() const { return knobs_; }
  // Rows the build trained on (0: the index needs no training).
  int64_t trained_on() const { return trained_on_; }

 private:
  FaissIndex(std::unique_ptr<faiss::Index> index, std::string factory, const SearchKnobs& knobs);
  std::unique_ptr<faiss::Index> index_;
  std::string factory_;
  SearchKnobs knobs_;
  int64_t trained_on_ = 0;
};

}  // namespace shardrec
