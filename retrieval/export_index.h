// The search over an export version's items (docs/formats.md): its ANN index generation when it has
// one, else exact search over the item shards' vectors.
//
// A generation is a directory VERSION/index.g<N>/, committed whole (StagedDir): one FAISS file per
// item shard and a manifest.json (format "shardrec.index") naming the factory, the search knobs, the
// shard files and id ranges, the recall measured when it was built, and every file's size and
// CRC-32C. The export's manifest names the current generation; re-indexing writes the next one
// beside it and switches the export's manifest, so a reader finds the files its manifest names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/export_format.h"
#include "retrieval/faiss_index.h"
#include "retrieval/sharded_index.h"

namespace shardrec {

// 2: the manifest carries its own checksum (common/manifest.h); 1 (still read) did not.
inline constexpr int64_t kIndexFormatVersion = 2;

struct IndexManifest {
  int64_t format_version = kIndexFormatVersion;
  std::string factory;
  SearchKnobs knobs;
  std::vector<ExportShard> shards;  // one FAISS file per item shard, with the shard's id range
  int64_t dim = 0;
  // Recall against exact search when built (docs/retrieval.md): the user-tower vectors of up to
  // `queries` users.
  int64_t queries = 0;
  double recall10 = -1, recall100 = -1;
  int64_t train_vectors = 0;  // over all shards (0: the index needs no training)
  std::map<std::string, FileDigest> files;
};

// "index.g<generation>" and its inverse (true, and the generation, for a name IndexDirName makes).
std::string IndexDirName(int64_t generation);
bool ParseIndexDirName(const std::string& name, int64_t* generation);

// Computes the shard files' digests and writes DIR/manifest.json atomically.
void WriteIndexManifest(const std::string& dir, IndexManifest manifest);
// Reads and verifies (every file's size and checksum): a UserError naming the file otherwise.
IndexManifest ReadIndexManifest(const std::string& dir);

// The items of export version `version_dir` (manifest `m`) as one sharded search: the index
// generation the manifest names unless `exact` or there is none, else exact search over the item
// shards' vectors. A damaged or mismatched file is a UserError naming it.
// `only`: the item shards to open (their ids keep their place), e.g. one server's part of a
// catalogue spread over several (`shardrec serve --shards`); empty: all. A shard out of range or
// named twice is a UserError.
std::unique_ptr<ShardedIndex> OpenExportIndex(const std::string& version_dir, const ExportManifest& m, bool exact = false,
                                              const std::vector<int64_t>& only = {});

}  // namespace shardrec
