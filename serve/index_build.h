// `shardrec index`: builds the next ANN index generation of an export version (one FAISS index per
// item shard, retrieval/export_index.h), measures its recall against exact search and switches the
// version's manifest to it.
#pragma once

#include <cstdint>
#include <string>

#include "retrieval/faiss_index.h"

namespace shardrec {

struct IndexOptions {
  std::string factory = "auto";  // FAISS factory string; auto: Flat below 100k items per shard, else IVF<4 sqrt(n)>,Flat
  SearchKnobs knobs;             // stored with the index; every search of it uses them
  int64_t queries = 1000;        // user vectors used to measure recall against exact search
  // Vectors that train an index needing training (IVF k-means, PQ codebooks), a uniform sample of
  // the shard; 0: max(100000, 64 x IVF lists). k-means cost grows with it, recall barely.
  int64_t train_vectors = 0;
  // A version this one derives from (a stream's previous version): a shard whose index kind can
  // replace rows (IVF, serve/../retrieval/faiss_index.h) and whose id range starts where the
  // parent's did and covers it is its index updated in place (the rows whose vectors changed and
  // the rows added, no k-means); any other shard is built anew. "" = build every shard.
  std::string parent;
};

struct IndexReport {
  std::string factory;
  std::string dir;  // the generation's directory name ("index.g<N>")
  double recall10 = 0, recall100 = 0;
  int64_t queries = 0;
  int64_t train_vectors = 0;  // over all shards (0: the index needs no training)
  double build_seconds = 0;
  double exact_qps = 0, index_qps = 0;  // single queries, one thread
  int64_t updated_shards = 0, updated_rows = 0;  // with a parent: shards updated in place, their rows replaced or added
};

// UserError naming the flag of a knob below 1 or a negative --train-vectors.
void CheckIndexOptions(const IndexOptions& options);

// Builds VERSION/index.g<N+1>/ through a StagedDir (whole or absent), measures recall@10/@100 of the
// merged search against exact search, points the manifest at it, and removes generations older
// than the one it replaced (that one stays for readers of the previous manifest).
IndexReport BuildExportIndex(const std::string& version_dir, const IndexOptions& options);

}  // namespace shardrec
