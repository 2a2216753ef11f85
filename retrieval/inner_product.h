// Inner products on the vector unit, for every search ShardRec runs (docs/retrieval.md, "Search
// kernels"). The FAISS that ShardRec links may be a generic build whose inner product is a scalar
// loop (Debian's is); these kernels replace it inside the indexes ShardRec opens, with one summation
// order on every CPU, so a score is the same bits with or without AVX.
#pragma once

#include <cstdint>
#include <memory>

namespace faiss {
struct Index;
}

namespace shardrec {

// sum_i a[i] * b[i], in this order: 16 partial sums, partial j adding the products of the i = j
// (mod 16) below d rounded down to 16, in increasing i (each product rounded, then added; no fused
// multiply-add); then partial j + partial j+8, those j + j+4, j + j+2, j + j+1 (a pairwise tree);
// then the remaining products added in increasing i. AVX where the CPU has it, else scalar: the
// same bits either way.
float InnerProduct(const float* a, const float* b, int64_t d);
// The same sum without vector instructions (what InnerProduct runs on a CPU without AVX).
float InnerProductScalar(const float* a, const float* b, int64_t d);

// The k rows of `base` [n x dim] with the largest inner product with `query`, best first, into
// scores[k] and ids[k] (ids -1 and scores -FLT_MAX past n; a score that is NaN or not above
// -FLT_MAX never counts). Of equal scores the lower row ranks first, at the k-th place too: a later
// row that ties it stays out. (FAISS's own heap, which ranks IVF lists and batches of 20 or more
// queries, orders equal scores differently; ShardedIndex and the server sort ties by id anyway.)
void TopKInnerProduct(const float* query, const float* base, int64_t n, int64_t dim, int64_t k, float* scores,
                      int64_t* ids);

// Whether InnerProduct runs on AVX on this CPU (for logs and benchmarks).
bool InnerProductUsesAvx();

// Puts these kernels inside `index` (an inner-product index as FAISS builds or reads it): an exact
// (Flat) index and an IVF's flat coarse quantizer search through TopKInnerProduct for fewer than
// FAISS's BLAS threshold (20) of queries at once (more stay on FAISS's matrix product); an IVF-Flat
// scans its lists, and an HNSW-Flat walks its graph, with InnerProduct at any batch size; the base
// of a ...,RFlat index gets the same. Other types (IVF-PQ and IVF-SQ lists, RFlat's re-ranking,
// IDMap or transform wrappers, range searches of a Flat index) keep FAISS's kernels. FAISS writes
// the result exactly as before (the classes derive from FAISS's, with no field of their own); a
// FAISS clone_index of it would come back with FAISS's classes.
void UseInnerProductKernels(std::unique_ptr<faiss::Index>& index);

}  // namespace shardrec
