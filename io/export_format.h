// Exported embeddings (docs/formats.md): ROOT/<version>/ holds item vectors sharded by dense-id
// range and user vectors sharded likewise (HDF5: ids, raw ids, titles, vectors, L2-normalised under cosine scores) and a
// manifest.json written last. A version is published by renaming its directory into place, then
// ROOT/LATEST (a one-line file naming the version) is replaced atomically: the serving tier never
// sees a partial version. Layout in docs/formats.md; Python reads it with h5py and json.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/json.h"

namespace shardrec {

// 3: the manifest carries its own checksum (common/manifest.h) and its version is its directory's
// name; 2: the ANN index is a directory of its own (index.g<N>/, retrieval/export_index.h); 1 named
// index files and search knobs here (still read: its index is ignored and search is exact). Formats
// 1 and 2 are read with the version taken from the directory's name.
inline constexpr int64_t kExportFormatVersion = 3;
// The item and user shard files' own layout (unchanged by export format 2).
inline constexpr int64_t kVectorShardFormatVersion = 1;

struct VectorShard {
  std::vector<int64_t> ids;           // dense ids
  std::vector<std::string> raw_ids;   // the data's own ids
  std::vector<std::string> titles;    // items, when known (else empty)
  std::vector<float> vectors;         // [n x dim], L2-normalised unless the model scores by dot product
  int64_t dim = 0;
};

// Writes a shard file as its rows come, in bounded memory (one HDF5 chunk per column): an export
// of 10M vectors never holds them. The file is complete only after Close(); a writer destroyed
// before (a failed write) leaves a partial file for the caller to remove.
class VectorShardWriter {
 public:
  VectorShardWriter(const std::string& path, const std::string& kind, int64_t dim, bool with_titles);
  ~VectorShardWriter();
  VectorShardWriter(const VectorShardWriter&) = delete;
  VectorShardWriter& operator=(const VectorShardWriter&) = delete;
  // Rows: ids [n], raw ids [n], titles [n] (exactly when with_titles), vectors [n x dim].
  void Append(const std::vector<int64_t>& ids, const std::vector<std::string>& raw_ids,
              const std::vector<std::string>& titles, const float* vectors);
  int64_t rows() const;
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
// Reads a shard (without `vectors` unless `with_vectors`), its first `max_rows` rows when >= 0; a
// damaged file is a UserError naming it.
VectorShard ReadVectorShard(const std::string& path, bool with_vectors = true, int64_t max_rows = -1);

// Rows [begin, end) of a shard's vectors ([end - begin x dim]), without the rest of the file; a
// damaged file or a range outside it is a UserError naming it.
std::vector<float> ReadShardVectors(const std::string& path, int64_t begin, int64_t end);

struct ExportShard {
  std::string file;
  int64_t begin = 0, end = 0;  // dense id range
};

struct ExportManifest {
  int64_t format_version = kExportFormatVersion;
  std::string version;
  std::string source;        // the model directory it came from
  std::string data;          // the dataset it describes
  int64_t dim = 0;
  std::string metric = "inner_product";
  std::string normalization = "l2";  // "l2" (cosine model) or "none" (--score dot)
  int64_t num_items = 0, num_users = 0;
  std::vector<ExportShard> item_shards, user_shards;
  std::map<std::string, double> eval;  // the run's eval.json metrics, when present
  std::map<std::string, FileDigest> files;  // name -> size and CRC-32C
  // The current ANN index generation, a directory of the version ("index.g<N>", "" = none); its
  // own manifest holds the factory, the search knobs and the recall (retrieval/export_index.h).
  std::string index_dir;
  bool legacy_index = false;  // a format-1 manifest named index files: not read (exact search)
  // Lineage, written by `shardrec publish` (absent otherwise): the version served when this one was
  // made ("" on the first), the data fingerprint, and the gate: both evaluations on the same
  // holdout, the decision and whether it was forced.
  bool has_lineage = false;
  std::string parent;
  std::string data_fingerprint;
  std::map<std::string, double> gate_candidate, gate_served;
  std::string gate_decision;  // "published", "refused", "forced"
};

// [{"file", "begin", "end"}] and back (UserError naming `key` on a malformed entry).
std::string ExportShardsToJson(const std::vector<ExportShard>& shards);
std::vector<ExportShard> ExportShardsFromJson(const JsonValue& array, const std::string& key);

// The catalogue side of the item shards: raw ids and titles (empty when the export has none), by
// dense id; a shard that disagrees with the manifest is a UserError naming it.
struct ExportedItems {
  std::vector<std::string> raw_ids, titles;
};
ExportedItems ReadExportedItems(const std::string& version_dir, const ExportManifest& manifest);

// Computes the size and CRC-32C of the shard files, writes manifest.json atomically.
void WriteExportManifest(const std::string& dir, ExportManifest manifest);
// Reads and verifies (the manifest's own checksum, every field, the version against the directory's
// name, sizes and checksums of every file it reads; format 1's index files are ignored): UserError
// naming the file otherwise.
ExportManifest ReadExportManifest(const std::string& dir);
// "index-<r>[.g<G>].faiss": an index file of format 1, beside the shards.
bool IsLegacyIndexFile(const std::string& name);
// A version name must be a plain directory name of the root that nothing else uses: 1 to 128 of
// [A-Za-z0-9._+@-], not starting with '.' or '-' (staging and marker files start with '.'), and not
// "LATEST". Anything else is a UserError naming `what` (the flag or file it came from).
void CheckVersionName(const std::string& version, const std::string& what);
// ROOT/<version> for ROOT (through ROOT/LATEST) or a version directory itself.
std::string ResolveExport(const std::string& root_or_version);
// The version ROOT/LATEST names ("" when there is none).
std::string ReadLatest(const std::string& root);
// Points ROOT/LATEST at `version` (atomically: temp file + fsync + rename); it must be complete.
void SetLatest(const std::string& root, const std::string& version);

}  // namespace shardrec
