#include "retrieval/faiss_index.h"

#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <glog/logging.h>

#include <algorithm>
#include <exception>
#include <tuple>
#include <typeinfo>

#include "common/error.h"
#include "common/file_util.h"
#include "common/rng.h"
#include "common/strings.h"
#include "retrieval/inner_product.h"

namespace shardrec {
namespace {

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

void SetKnobs(faiss::Index* index, const SearchKnobs& k) {
  if (auto* h = dynamic_cast<faiss::IndexHNSW*>(index)) h->hnsw.efSearch = static_cast<int>(k.ef_search);
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index)) ivf->nprobe = static_cast<size_t>(k.nprobe);
  if (auto* r = dynamic_cast<faiss::IndexRefine*>(index)) {
    r->k_factor = static_cast<float>(k.refine);
    SetKnobs(r->base_index, k);
  }
}

// Whether `index` has the structure `factory` builds (the class at each level, an IVF's list count,
// an HNSW's links per node, the metric): a manifest that names another factory is damaged.
bool SameStructure(const faiss::Index* index, const faiss::Index* built) {
  if (typeid(*index) != typeid(*built) || index->metric_type != built->metric_type || index->d != built->d) return false;
  if (const auto* a = dynamic_cast<const faiss::IndexIVF*>(index)) {
    return a->nlist == dynamic_cast<const faiss::IndexIVF*>(built)->nlist;
  }
  if (const auto* a = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    const auto* b = dynamic_cast<const faiss::IndexHNSW*>(built);
    return a->hnsw.nb_neighbors(1) == b->hnsw.nb_neighbors(1);
  }
  if (const auto* a = dynamic_cast<const faiss::IndexRefine*>(index)) {
    return SameStructure(a->base_index, dynamic_cast<const faiss::IndexRefine*>(built)->base_index);
  }
  return true;
}

}  // namespace

void CheckSearchKnobs(const SearchKnobs& k, const std::string& where) {
  for (const auto& [name, value, most] : {std::tuple<const char*, int64_t, int64_t>{"ef-search", k.ef_search, kMaxSearchBreadth},
                                          {"nprobe", k.nprobe, kMaxSearchBreadth}, {"refine", k.refine, kMaxRefine}}) {
    if (value < 1 || value > most) Fail(where, name, ": ", value, " is not in [1, ", most, "]");
  }
}

FaissIndex::FaissIndex(std::unique_ptr<faiss::Index> index, std::string factory, const SearchKnobs& knobs)
    : index_(std::move(index)), factory_(std::move(factory)), knobs_(knobs) {
  UseInnerProductKernels(index_);
  SetKnobs(index_.get(), knobs_);
}

FaissIndex::~FaissIndex() = default;

std::unique_ptr<FaissIndex> FaissIndex::Build(const std::string& factory, const SearchKnobs& knobs,
                                              const std::vector<float>& vectors, int64_t dim, int64_t train_vectors,
                                              uint64_t seed) {
  std::unique_ptr<faiss::Index> ix;
  try {
    ix.reset(faiss::index_factory(static_cast<int>(dim), factory.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    Fail("--factory: FAISS cannot build '", factory, "': ", e.what());
  }
  const int64_t n = static_cast<int64_t>(vectors.size()) / dim;
  int64_t trained = 0;
  if (!ix->is_trained) {
    if (n < 1) Fail("--factory ", factory, " needs training vectors but the shard is empty");
    const faiss::Index* base = ix.get();
    if (const auto* r = dynamic_cast<const faiss::IndexRefine*>(base)) base = r->base_index;
    const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(base);
    const int64_t want = train_vectors > 0 ? train_vectors
                                           : std::max<int64_t>(100000, 64 * (ivf ? static_cast<int64_t>(ivf->nlist) : 0));
    const std::vector<float> sample = SampleRows(vectors, n, dim, want, seed);
    trained = static_cast<int64_t>(sample.size()) / dim;
    ix->train(trained, sample.data());
  }
  ix->add(n, vectors.data());
  std::unique_ptr<FaissIndex> out(new FaissIndex(std::move(ix), factory, knobs));
  out->trained_on_ = trained;
  return out;
}

std::unique_ptr<FaissIndex> FaissIndex::Read(const std::string& path, const std::string& factory, const SearchKnobs& knobs) {
  faiss::Index* raw = nullptr;
  try {
    raw = faiss::read_index(path.c_str());
  } catch (const std::exception& e) {
    Fail(path, ": cannot read the FAISS index (damaged?): ", e.what());
  }
  std::unique_ptr<faiss::Index> owned(raw), built;
  try {
    // Built empty from the factory, then written and read back: the classes a read produces (FAISS
    // reads an inner-product "Flat" back as IndexFlatIP, say), to compare like with like.
    std::unique_ptr<faiss::Index> fresh(faiss::index_factory(owned->d, factory.c_str(), faiss::METRIC_INNER_PRODUCT));
    faiss::VectorIOWriter w;
    faiss::write_index(fresh.get(), &w);
    faiss::VectorIOReader r;
    r.data = std::move(w.data);
    built.reset(faiss::read_index(&r));
  } catch (const std::exception& e) {
    Fail(path, ": its manifest's factory ", Quote(factory), " is not one FAISS builds (damaged?): ", e.what());
  }
  if (!SameStructure(owned.get(), built.get())) {
    Fail(path, ": the index is not a ", Quote(factory), " index, as its manifest says (damaged?)");
  }
  raw = owned.release();
  return std::unique_ptr<FaissIndex>(new FaissIndex(std::unique_ptr<faiss::Index>(raw), factory, knobs));
}

bool FaissIndex::Update(const std::vector<int64_t>& ids, const std::vector<float>& vectors) {
  // Kinds whose inverted lists take removals (FAISS's fast-scan lists, for one, do not).
  auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get());
  const bool replaceable = dynamic_cast<faiss::IndexIVFFlat*>(ivf) || dynamic_cast<faiss::IndexIVFPQ*>(ivf) ||
                           dynamic_cast<faiss::IndexIVFScalarQuantizer*>(ivf);
  if (!replaceable || dynamic_cast<faiss::IndexIVFPQFastScan*>(ivf)) return false;
  CHECK_EQ(static_cast<int64_t>(vectors.size()), static_cast<int64_t>(ids.size()) * dim());
  std::vector<faiss::Index::idx_t> present;
  for (int64_t id : ids) {
    CHECK_GE(id, 0);
    if (id < size()) present.push_back(id);
  }
  const int64_t total = size() + static_cast<int64_t>(ids.size() - present.size());
  for (int64_t id : ids) CHECK_LT(id, total) << "rows added past the end must follow it";
  if (!present.empty()) {
    const faiss::IDSelectorBatch gone(present.size(), present.data());
    CHECK_EQ(static_cast<int64_t>(ivf->remove_ids(gone)), static_cast<int64_t>(present.size()));
  }
  std::vector<faiss::Index::idx_t> labels(ids.begin(), ids.end());
  ivf->add_with_ids(static_cast<faiss::Index::idx_t>(ids.size()), vectors.data(), labels.data());
  return true;
}

void FaissIndex::Write(const std::string& path) const {
  FileWriter out(path);
  IndexFileWriter writer(out);
  faiss::write_index(index_.get(), &writer);
  out.Commit();
}

int64_t FaissIndex::size() const { return index_->ntotal; }
int64_t FaissIndex::dim() const { return index_->d; }

std::vector<Hit> FaissIndex::Search(const float* q, int64_t k) const {
  const int64_t n = std::min(k, size());
  if (n <= 0) return {};
  std::vector<float> d(static_cast<size_t>(n));
  std::vector<faiss::Index::idx_t> l(static_cast<size_t>(n));
  index_->search(1, q, n, d.data(), l.data());
  std::vector<Hit> hits;
  for (int64_t i = 0; i < n; ++i) {
    if (l[i] >= 0) hits.push_back({l[i], d[i]});
  }
  return hits;
}

}  // namespace shardrec
