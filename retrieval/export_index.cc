#include "retrieval/export_index.h"

#include <glog/logging.h>
#include <omp.h>

#include "common/error.h"
#include "common/manifest.h"
#include "common/strings.h"

namespace shardrec {

std::string IndexDirName(int64_t generation) { return "index.g" + std::to_string(generation); }

bool ParseIndexDirName(const std::string& name, int64_t* generation) {
  const std::string prefix = "index.g";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || name.size() > prefix.size() + 18) return false;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  const int64_t g = std::stoll(name.substr(prefix.size()));
  if (IndexDirName(g) != name) return false;  // canonical spelling only
  if (generation) *generation = g;
  return true;
}

void WriteIndexManifest(const std::string& dir, IndexManifest m) {
  m.format_version = kIndexFormatVersion;
  m.files.clear();
  for (const auto& s : m.shards) m.files[s.file] = DigestFile(dir + "/" + s.file);
  JsonObject knobs;
  knobs.Add("ef_search", m.knobs.ef_search).Add("nprobe", m.knobs.nprobe).Add("refine", m.knobs.refine);
  JsonObject o;
  o.Add("format", "shardrec.index").Add("format_version", m.format_version).Add("factory", m.factory)
      .Add("metric", "inner_product").Add("dim", m.dim).Add("search", knobs)
      .AddRaw("shards", ExportShardsToJson(m.shards)).Add("queries", m.queries).Add("recall@10", m.recall10)
      .Add("recall@100", m.recall100).Add("train_vectors", m.train_vectors)
      .Add("recall_protocol", "top-K of a k = K search of the index vs exact inner-product search over all items, for "
                              "the user-tower vectors of up to `queries` users (never item vectors as queries)")
      .Add("files", FileDigestsToJson(m.files));
  WriteManifestFile(dir + "/manifest.json", o);
}

IndexManifest ReadIndexManifest(const std::string& dir) {
  IndexManifest m;
  m.files = ReadVerifiedManifest(dir, "shardrec.index", kIndexFormatVersion, "an index generation", [&](const JsonValue& j) {
    m.format_version = j.at("format_version").integer();
    if (m.format_version >= 2 && !j.has(kManifestChecksumKey)) {
      Fail("no ", kManifestChecksumKey, " (format 2 records the manifest's own checksum)");
    }
    m.factory = j.at("factory").str();
    if (j.at("metric").str() != "inner_product") Fail("metric: ", Quote(j.at("metric").str()), " is not inner_product");
    m.dim = j.at("dim").integer();
    if (m.dim < 1) Fail("dim: ", m.dim, " is not >= 1");
    const JsonValue& k = j.at("search");
    m.knobs = {.ef_search = k.at("ef_search").integer(), .nprobe = k.at("nprobe").integer(), .refine = k.at("refine").integer()};
    CheckSearchKnobs(m.knobs, "search: ");
    m.shards = ExportShardsFromJson(j.at("shards"), "shards");
    m.queries = j.at("queries").integer();
    m.recall10 = j.at("recall@10").num();
    m.recall100 = j.at("recall@100").num();
    m.train_vectors = j.at("train_vectors").integer();
    if (m.queries < 0 || m.train_vectors < 0) Fail("queries ", m.queries, ", train_vectors ", m.train_vectors, ": counts cannot be negative");
    for (const double r : {m.recall10, m.recall100}) {
      if (!(r >= 0 && r <= 1)) Fail("recall@10 ", m.recall10, ", recall@100 ", m.recall100, ": recalls are in [0, 1]");
    }
    for (const auto& s : m.shards) {
      if (!j.at("files").has(s.file)) Fail("shards: ", Quote(s.file), " has no entry in files");
    }
  }, /*oldest_version=*/1);
  return m;
}

namespace {

std::unique_ptr<ShardedIndex> OpenExact(const std::string& dir, const ExportManifest& m, const std::vector<bool>& wanted) {
  std::vector<std::unique_ptr<VectorIndex>> shards;
  std::vector<int64_t> begin;
  for (size_t s = 0; s < m.item_shards.size(); ++s) {  // consecutive id ranges (ReadExportManifest)
    if (!wanted[s]) continue;
    const ExportShard& sh = m.item_shards[s];
    // The vectors only: raw ids and titles are the catalogue's (ReadExportedItems), read by whoever needs them.
    std::vector<float> v = ReadShardVectors(dir + "/" + sh.file, 0, sh.end - sh.begin);
    if (static_cast<int64_t>(v.size()) != (sh.end - sh.begin) * m.dim) {
      Fail(dir, "/", sh.file, ": holds ", v.size(), " values, the manifest says ", sh.end - sh.begin, " x ", m.dim);
    }
    shards.push_back(NewExactIndex(std::move(v), m.dim));
    begin.push_back(sh.begin);
  }
  return std::make_unique<ShardedIndex>(std::move(shards), std::move(begin));
}

std::unique_ptr<ShardedIndex> OpenGeneration(const std::string& dir, const ExportManifest& m, const std::vector<bool>& wanted) {
  const std::string gen = dir + "/" + m.index_dir;
  const IndexManifest ix = ReadIndexManifest(gen);
  if (ix.dim != m.dim || ix.shards.size() != m.item_shards.size()) {
    Fail(gen, "/manifest.json: ", ix.shards.size(), " shards of dim ", ix.dim, "; the export has ", m.item_shards.size(),
         " of dim ", m.dim);
  }
  std::vector<std::unique_ptr<VectorIndex>> shards;
  std::vector<int64_t> begin;
  for (size_t s = 0; s < ix.shards.size(); ++s) {
    if (!wanted[s]) continue;
    const ExportShard& sh = ix.shards[s];
    const std::string f = gen + "/" + sh.file;
    if (sh.begin != m.item_shards[s].begin || sh.end != m.item_shards[s].end) {
      Fail(f, ": indexes items [", sh.begin, ", ", sh.end, "), the export's shard ", s, " holds [", m.item_shards[s].begin,
           ", ", m.item_shards[s].end, ")");
    }
    auto one = FaissIndex::Read(f, ix.factory, ix.knobs);
    if (one->dim() != m.dim || one->size() != sh.end - sh.begin) Fail(f, ": index does not match its shard");
    shards.push_back(std::move(one));
    begin.push_back(sh.begin);
  }
  return std::make_unique<ShardedIndex>(std::move(shards), std::move(begin));
}

}  // namespace

std::unique_ptr<ShardedIndex> OpenExportIndex(const std::string& dir, const ExportManifest& m, bool exact,
                                              const std::vector<int64_t>& only) {
  const int64_t count = static_cast<int64_t>(m.item_shards.size());
  std::vector<bool> wanted(m.item_shards.size(), only.empty());
  for (const int64_t s : only) {
    if (s < 0 || s >= count) Fail("shards: shard ", s, " out of range (export ", m.version, " has ", count, " item shards, 0 to ", count - 1, ")");
    if (wanted[static_cast<size_t>(s)]) Fail("shards: shard ", s, " named twice");
    wanted[static_cast<size_t>(s)] = true;
  }
  // Single queries: FAISS parallelises over queries, and an OpenMP team per query costs far more
  // than it saves (measured: HNSW 85 vs 9000 queries/s with a busy second process).
  omp_set_num_threads(1);
  if (m.legacy_index && !exact) {
    LOG(WARNING) << dir << ": its index was built by an older ShardRec (export format 1); searching exactly "
                 << "(run `shardrec index --export " << dir << "` to rebuild it)";
  }
  if (exact || m.index_dir.empty()) return OpenExact(dir, m, wanted);
  return OpenGeneration(dir, m, wanted);
}

}  // namespace shardrec
