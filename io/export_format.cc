#include "io/export_format.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>

#include <glog/logging.h>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "io/h5.h"

namespace shardrec {
std::string ExportShardsToJson(const std::vector<ExportShard>& shards) {
  std::string out = "[";
  for (size_t i = 0; i < shards.size(); ++i) {
    JsonObject o;
    o.Add("file", shards[i].file).Add("begin", shards[i].begin).Add("end", shards[i].end);
    out += (i ? ", " : "") + o.str();
  }
  return out + "]";
}

std::vector<ExportShard> ExportShardsFromJson(const JsonValue& array, const std::string& key) {
  std::vector<ExportShard> out;
  if (array.type != JsonValue::kArray) Fail(key, ": not an array");
  for (const auto& s : array.array) out.push_back({s.at("file").str(), s.at("begin").integer(), s.at("end").integer()});
  return out;
}

struct VectorShardWriter::Impl {
  Impl(const std::string& path, int64_t dim, bool with_titles)
      : file(h5::File::Create(path)), dim(dim), ids(std::in_place, &file, "/ids"),
        vectors(std::in_place, &file, "/vectors", std::max<int64_t>(1, dim)), raw(std::in_place, &file, "/raw_ids") {
    if (with_titles) titles.emplace(&file, "/titles");
  }
  h5::File file;  // destroyed after the appenders (declared first)
  int64_t dim;
  std::optional<h5::Appender<int64_t>> ids;
  std::optional<h5::Appender<float>> vectors;
  std::optional<h5::StringAppender> raw, titles;
  bool with_titles() const { return titles.has_value(); }
};

VectorShardWriter::VectorShardWriter(const std::string& path, const std::string& kind, int64_t dim, bool with_titles)
    : impl_(std::make_unique<Impl>(path, dim, with_titles)) {
  impl_->file.SetAttr("/", "format", std::string("shardrec.export.") + kind);
  impl_->file.SetAttr("/", "format_version", kVectorShardFormatVersion);
  impl_->file.SetAttr("/", "dim", dim);
}

VectorShardWriter::~VectorShardWriter() = default;

void VectorShardWriter::Append(const std::vector<int64_t>& ids, const std::vector<std::string>& raw_ids,
                               const std::vector<std::string>& titles, const float* vectors) {
  CHECK(impl_->ids) << "Append after Close";
  CHECK_EQ(raw_ids.size(), ids.size());
  CHECK_EQ(titles.size(), impl_->with_titles() ? ids.size() : 0);
  const int64_t n = static_cast<int64_t>(ids.size());
  impl_->ids->Append(ids.data(), n);
  if (impl_->dim > 0) impl_->vectors->Append(vectors, n);
  for (const auto& r : raw_ids) impl_->raw->Append(r);
  for (const auto& t : titles) impl_->titles->Append(t);
}

int64_t VectorShardWriter::rows() const { return impl_->ids ? impl_->ids->rows() : -1; }

void VectorShardWriter::Close() {
  impl_->ids->Flush();
  impl_->vectors->Flush();
  impl_->raw->Flush();
  if (impl_->titles) impl_->titles->Flush();
  impl_->ids.reset();
  impl_->vectors.reset();
  impl_->raw.reset();
  impl_->titles.reset();
  impl_->file.Close();
}

VectorShard ReadVectorShard(const std::string& path, bool with_vectors, int64_t max_rows) {
  h5::File f = h5::File::Open(path);
  VectorShard s;
  auto dim = f.GetIntAttr("/", "dim");
  if (!dim) Fail(path, ": not an export shard (no dim attribute)");
  s.dim = *dim;
  const std::vector<int64_t> id_shape = f.Shape("/ids");
  const int64_t rows = id_shape.empty() ? 0 : id_shape[0];
  const int64_t n = max_rows >= 0 ? std::min(rows, max_rows) : rows;
  s.ids = f.Read<int64_t>("/ids", 0, n);
  const std::vector<int64_t> shape = f.Shape("/vectors");
  const int64_t values = shape.empty() ? 0 : std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  if (values != rows * s.dim) Fail(path, ": /vectors does not hold ", rows, " x ", s.dim);
  if (with_vectors) s.vectors = n == rows ? f.ReadAll<float>("/vectors") : f.Read<float>("/vectors", 0, n);
  s.raw_ids = h5::ReadStrings(f, "/raw_ids", 0, n);
  if (f.Exists("/titles/offsets")) s.titles = h5::ReadStrings(f, "/titles", 0, n);
  return s;
}

std::vector<float> ReadShardVectors(const std::string& path, int64_t begin, int64_t end) {
  h5::File f = h5::File::Open(path);
  const auto dim = f.GetIntAttr("/", "dim");
  const std::vector<int64_t> shape = f.Shape("/vectors");
  if (!dim || shape.size() != 2 || shape[1] != *dim) Fail(path, ": not an export shard (no [rows x dim] /vectors)");
  return f.Read<float>("/vectors", begin, end);
}

void WriteExportManifest(const std::string& dir, ExportManifest m) {
  m.format_version = kExportFormatVersion;  // a version read from format 1 is written as this build's
  m.files.clear();
  std::vector<std::string> names;
  for (const auto& s : m.item_shards) names.push_back(s.file);
  for (const auto& s : m.user_shards) names.push_back(s.file);
  for (const auto& name : names) m.files[name] = DigestFile(dir + "/" + name);
  JsonObject eval;
  for (const auto& [k, v] : m.eval) eval.Add(k, v);
  JsonObject o;
  o.Add("format", "shardrec.export").Add("format_version", m.format_version).Add("version", m.version)
      .Add("source", m.source).Add("data", m.data).Add("dim", m.dim).Add("metric", m.metric)
      .Add("normalization", m.normalization).Add("num_items", m.num_items).Add("num_users", m.num_users)
      .AddRaw("item_shards", ExportShardsToJson(m.item_shards)).AddRaw("user_shards", ExportShardsToJson(m.user_shards))
      .Add("eval", eval).Add("files", FileDigestsToJson(m.files));
  if (!m.index_dir.empty()) {
    JsonObject idx;
    idx.Add("dir", m.index_dir);
    o.Add("index", idx);
  }
  if (m.has_lineage) {
    JsonObject cand, served, lineage;
    for (const auto& [k, v] : m.gate_candidate) cand.Add(k, v);
    for (const auto& [k, v] : m.gate_served) served.Add(k, v);
    lineage.Add("parent", m.parent).Add("data_fingerprint", m.data_fingerprint).Add("decision", m.gate_decision)
        .Add("candidate", cand).Add("served", served);
    o.Add("lineage", lineage);
  }
  WriteManifestFile(dir + "/manifest.json", o);
}

namespace {

// Every reader of an export relies on this: each shard is one of the version's own files (listed,
// so verified) and the shards cover the rows [0, rows) in order.
void CheckShards(const char* key, const std::vector<ExportShard>& shards, int64_t rows, const JsonValue& files) {
  if (shards.empty() && rows > 0) Fail(key, ": no shards for ", rows, " rows");
  for (size_t s = 0; s < shards.size(); ++s) {
    const ExportShard& sh = shards[s];
    if (!files.has(sh.file)) Fail(key, ": ", Quote(sh.file), " has no entry in files");
    if (sh.begin < 0 || sh.begin > sh.end || sh.end > rows) Fail(key, ": rows [", sh.begin, ", ", sh.end, ") are not within [0, ", rows, ")");
    const int64_t expected_begin = s == 0 ? 0 : shards[s - 1].end;
    if (sh.begin != expected_begin || (s + 1 == shards.size() && sh.end != rows)) {
      Fail(key, "[", s, "] covers [", sh.begin, ", ", sh.end, "); the shards must cover [0, ", rows, ") in order");
    }
  }
}

}  // namespace

bool IsLegacyIndexFile(const std::string& name) {
  return name.rfind("index-", 0) == 0 && name.size() > 12 && name.compare(name.size() - 6, 6, ".faiss") == 0;
}

ExportManifest ReadExportManifest(const std::string& dir) {
  ExportManifest m;
  m.files = ReadVerifiedManifest(dir, "shardrec.export", kExportFormatVersion, "an export version", [&](const JsonValue& j) {
    m.format_version = j.at("format_version").integer();
    m.version = j.at("version").str();
    m.source = j.at("source").str();
    m.data = j.at("data").str();
    m.dim = j.at("dim").integer();
    m.metric = j.at("metric").str();
    m.normalization = j.at("normalization").str();
    m.num_items = j.at("num_items").integer();
    m.num_users = j.at("num_users").integer();
    // Every field a reader acts on is checked: one flipped bit must not pass for another meaning.
    if (m.metric != "inner_product") Fail("metric: ", Quote(m.metric), " is not inner_product");
    if (m.normalization != "l2" && m.normalization != "none") Fail("normalization: ", Quote(m.normalization), " is not l2 or none");
    if (m.dim < 1) Fail("dim: ", m.dim, " is not >= 1");
    if (m.num_items < 0 || m.num_users < 0) Fail("num_items ", m.num_items, ", num_users ", m.num_users, ": counts cannot be negative");
    CheckVersionName(m.version, "version");
    // A version is its directory: a renamed or copied one would be served under another name.
    const std::string name = Basename(RealPath(dir));
    if (m.format_version >= 3) {
      if (!j.has(kManifestChecksumKey)) Fail("no ", kManifestChecksumKey, " (format 3 records the manifest's own checksum)");
      if (m.version != name) Fail("version: ", Quote(m.version), " is not its directory's name ", Quote(name));
    } else {
      m.version = name;  // formats 1 and 2 did not check it; rewritten as format 3 with this name
    }
    for (const char* key : {"item_shards", "user_shards"}) {
      const bool items = std::string(key) == "item_shards";
      auto& out = items ? m.item_shards : m.user_shards;
      out = ExportShardsFromJson(j.at(key), key);
      CheckShards(key, out, items ? m.num_items : m.num_users, j.at("files"));
    }
    for (const auto& [k, v] : j.at("eval").object) m.eval[k] = v.num();
    if (j.has("lineage")) {
      const JsonValue& l = j.at("lineage");
      m.has_lineage = true;
      m.parent = l.at("parent").str();
      m.data_fingerprint = l.at("data_fingerprint").str();
      m.gate_decision = l.at("decision").str();
      for (const auto& [k, v] : l.at("candidate").object) m.gate_candidate[k] = v.num();
      for (const auto& [k, v] : l.at("served").object) m.gate_served[k] = v.num();
    }
    if (j.has("index")) {
      if (m.format_version == 1) {
        m.legacy_index = true;
      } else {
        m.index_dir = j.at("index").at("dir").str();
        if (m.index_dir.empty() || m.index_dir.find('/') != std::string::npos || m.index_dir[0] == '.') {
          Fail("index: dir ", Quote(m.index_dir), " is not a directory of the version");
        }
      }
    }
  }, /*oldest_version=*/1,
  // Format 1's index files are not read (exact search answers), so not verified, nor listed again.
  [&](const std::string& name) { return m.legacy_index && IsLegacyIndexFile(name); });
  return m;
}

ExportedItems ReadExportedItems(const std::string& dir, const ExportManifest& m) {
  ExportedItems out;
  bool any_title = false;
  out.raw_ids.reserve(static_cast<size_t>(m.num_items));
  for (const ExportShard& sh : m.item_shards) {  // consecutive id ranges (ReadExportManifest)
    VectorShard v = ReadVectorShard(dir + "/" + sh.file, /*with_vectors=*/false);
    if (v.dim != m.dim || static_cast<int64_t>(v.ids.size()) != sh.end - sh.begin) {
      Fail(dir, "/", sh.file, ": holds ", v.ids.size(), " x ", v.dim, ", the manifest says ", sh.end - sh.begin, " x ", m.dim);
    }
    any_title = any_title || !v.titles.empty();
    v.titles.resize(v.raw_ids.size());  // a shard without titles: "" for each of its items
    for (size_t i = 0; i < v.ids.size(); ++i) {
      out.raw_ids.push_back(std::move(v.raw_ids[i]));
      out.titles.push_back(std::move(v.titles[i]));
    }
  }
  if (!any_title) out.titles.clear();
  return out;
}

void CheckVersionName(const std::string& v, const std::string& what) {
  const bool chars = std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '@' || c == '-';
  });
  if (v.empty() || v.size() > 128 || !chars || v[0] == '.' || v[0] == '-' || v == "LATEST") {
    Fail(what, ": ", Quote(v), " is not a version name (1 to 128 of letters, digits and . _ + @ -, not starting with . or -, "
         "not LATEST)");
  }
}

std::string ResolveExport(const std::string& root) {
  if (PathExists(root + "/manifest.json")) return root;
  const std::string v = ReadLatest(root);
  if (v.empty()) Fail(root, ": neither an export version (manifest.json) nor an export root (LATEST)");
  return root + "/" + v;
}

std::string ReadLatest(const std::string& root) {
  const std::string path = root + "/LATEST";
  if (!PathExists(path)) return "";
  std::string v = ReadFileToString(path);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
  if (v.empty() || v.find('/') != std::string::npos) Fail(path, ": does not name a version (damaged?)");
  return v;
}

void SetLatest(const std::string& root, const std::string& version) {
  CheckVersionName(version, root + "/LATEST");
  if (!PathExists(root + "/" + version + "/manifest.json")) Fail(root, "/", version, ": not a complete export version");
  WriteFileAtomically(root + "/LATEST", version + "\n");
}

}  // namespace shardrec
