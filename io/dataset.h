// The ShardRec dataset file (HDF5), format_version 1. Layout, types and invariants are documented
// in docs/formats.md; this header is the only code that knows the object names.
//
//   /                         attrs format="shardrec.dataset", format_version, num_users, num_items,
//                             num_events, has_timestamps, content_dim, num_categories, source,
//                             item_ids_fingerprint, fingerprint (16 hex digits each)
//   /users/event_offsets      int64 [U+1]   CSR: user u's events are [off[u], off[u+1])
//   /users/raw_ids            strings [U]   (CSR strings: offsets int64 [n+1] + bytes uint8)
//   /events/item              int32 [E]     dense item id in [0, I), sorted by (user, time)
//   /events/timestamp         int64 [E]     seconds; present iff has_timestamps
//   /items/raw_ids            strings [I]
//   /items/titles             strings [I]   optional ("" where unknown)
//   /items/categories         offsets int64 [I+1] + values int32 (dense category ids), optional
//   /items/content            float32 [I x content_dim], optional
//   /categories/names         strings [num_categories], optional
//   /oracle                   attrs (synthetic data only): hr@10, ndcg@10, popularity_hr@10, ...
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/h5.h"

namespace shardrec {

inline constexpr int64_t kDatasetFormatVersion = 1;
inline constexpr const char* kDatasetFormatName = "shardrec.dataset";

struct DatasetInfo {
  int64_t format_version = kDatasetFormatVersion;
  int64_t num_users = 0;
  int64_t num_items = 0;
  int64_t num_events = 0;
  bool has_timestamps = false;
  bool has_titles = false;
  bool has_categories = false;
  int64_t num_categories = 0;
  int64_t content_dim = 0;  // 0 = no content vectors
  std::string source;       // free text: how the file was made
};

struct DatasetWriterOptions {
  bool timestamps = false;
  bool titles = false;
  bool categories = false;
  int64_t content_dim = 0;
  std::string source;
  h5::CreateOptions storage{.chunk_elems = 1 << 14, .deflate_level = 4};
};

// Streams a dataset to disk in bounded memory. Users are added in dense-id order with their
// events already sorted by time; items likewise. The file appears at `path` only when Finish()
// succeeds (AtomicOutput); if the writer is destroyed first, nothing is left behind.
// Not thread-safe.
class DatasetWriter {
 public:
  static std::unique_ptr<DatasetWriter> Create(const std::string& path,
                                               const DatasetWriterOptions& options);
  ~DatasetWriter();

  // `timestamps` must be empty or match items.size(), per options.timestamps.
  void AddUser(std::string_view raw_id, std::span<const int32_t> items,
               std::span<const int64_t> timestamps = {});
  // `content` must have options.content_dim values (or be empty when content_dim == 0).
  void AddItem(std::string_view raw_id, std::string_view title = {},
               std::span<const int32_t> categories = {}, std::span<const float> content = {});
  void SetCategoryNames(const std::vector<std::string>& names);
  // Extra numeric attributes on a group, e.g. ("/oracle", "hr@10", 0.31).
  void SetAttribute(const std::string& group, const std::string& name, double value);
  void SetAttribute(const std::string& group, const std::string& name, const std::string& value);

  // Validates (every event's item < num_items, category ids < num_categories), writes the root
  // attributes and publishes the file. Throws UserError on failure (no file is left).
  DatasetInfo Finish();

  int64_t num_users() const;
  int64_t num_items() const;
  int64_t num_events() const;

 private:
  struct Impl;
  explicit DatasetWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Read-only view of a dataset file. Open() validates the format name, version and that array
// sizes agree with the root attributes; a mismatch is a UserError naming the file and the field.
// Reads are lazy (per slice); only the user offsets ([U+1] int64) are kept in memory.
// Not thread-safe: use one Dataset per thread.
class Dataset {
 public:
  // Events per chunk of the arrays a writer creates (older files have the writer's storage chunk,
  // 16,384 by default).
  static constexpr int64_t kEventChunk = 4096;
  // The most a Dataset keeps of each events array (decompressed blocks, least recently used out).
  static constexpr int64_t kEventCacheBytes = int64_t{32} << 20;
  // `event_cache_bytes`: what it keeps of each events array (tests make it small).
  static std::unique_ptr<Dataset> Open(const std::string& path, int64_t event_cache_bytes = kEventCacheBytes);

  const DatasetInfo& info() const { return info_; }
  const std::string& path() const { return file_.path(); }
  // [U+1] CSR offsets into the events arrays.
  const std::vector<int64_t>& user_offsets() const { return offsets_; }
  int64_t user_length(int64_t user) const { return offsets_[user + 1] - offsets_[user]; }

  // Events [begin, end) (global event positions).
  std::vector<int32_t> ReadItems(int64_t begin, int64_t end) const;
  std::vector<int64_t> ReadTimestamps(int64_t begin, int64_t end) const;  // empty if none

  std::vector<std::string> ReadUserRawIds(int64_t begin, int64_t end) const;
  std::vector<std::string> ReadItemRawIds(int64_t begin, int64_t end) const;
  // Calls fn on every item raw id in dense-id order, reading blocks of 65,536.
  void ForEachItemRawId(const std::function<void(const std::string&)>& fn) const;
  std::vector<std::string> ReadItemTitles(int64_t begin, int64_t end) const;  // needs has_titles
  // CSR categories of items [begin, end): offsets rebased to start at 0 ([n+1]), values.
  struct Categories {
    std::vector<int64_t> offsets;
    std::vector<int32_t> values;
  };
  Categories ReadItemCategories(int64_t begin, int64_t end) const;
  std::vector<std::string> ReadCategoryNames() const;
  std::vector<float> ReadItemContent(int64_t begin, int64_t end) const;  // [n x content_dim]
  // Items that have a non-zero content vector or a non-empty title.
  int64_t CountItemsWithContent() const;

  // The id space: a fingerprint of the item raw ids in dense-id order and the categories (count and
  // names). Two files with the same one put every item and category on the same row.
  std::string ItemIdsFingerprint() const;
  // The data: the id space plus every user's raw id, events and timestamps (not titles or content
  // vectors, which tools may add later). Both are stored by the writer; for a file written
  // before they existed they are computed here (a pass over the file).
  std::string DataFingerprint() const;

  // Numeric attributes of a group (e.g. "/oracle"); empty if the group does not exist.
  std::map<std::string, double> NumericAttributes(const std::string& group) const;
  // A string attribute of a group; nullopt when the group or the attribute does not exist.
  std::optional<std::string> StringAttribute(const std::string& group, const std::string& name) const;

 private:
  // The events arrays are read in aligned blocks of one chunk (kEventChunk events as the writer
  // lays them out: a user's events cost one small chunk to decompress), kept in a bounded cache per
  // array (kEventCacheBytes), with HDF5's chunk cache off for them:
  // memory stays bounded however many users are read.
  template <typename T>
  struct BlockCache {
    std::list<int64_t> order;  // most recent first
    std::unordered_map<int64_t, std::pair<std::vector<T>, std::list<int64_t>::iterator>> blocks;
  };
  template <typename T>
  std::vector<T> ReadEvents(const std::string& name, BlockCache<T>& cache, int64_t begin, int64_t end) const;

  explicit Dataset(h5::File file) : file_(std::move(file)) {}
  h5::File file_;
  DatasetInfo info_;
  std::vector<int64_t> offsets_;
  int64_t event_block_ = 1;  // rows per read of the events arrays (their chunk)
  int64_t event_cache_bytes_ = kEventCacheBytes;
  mutable BlockCache<int32_t> item_blocks_;
  mutable BlockCache<int64_t> timestamp_blocks_;
};

// Calls fn(first user, end user, items, timestamps) for the users of `ds` in blocks of about a
// million events (one read per block, not per user); timestamps empty if the file has none.
void ForEachUserBlock(const Dataset& ds, const std::function<void(int64_t, int64_t, const std::vector<int32_t>&,
                                                                   const std::vector<int64_t>&)>& fn);
// Adds every item of `source` to `writer` as it is (raw ids, titles, categories and their names,
// content), in blocks: a derived dataset keeps the source's id space.
void CopyItemCatalogue(const Dataset& source, DatasetWriter& writer);

// Writes `path`: `source`'s users and events as they are, and its catalogue followed by
// `added` items (raw id, title; no categories, zero content vectors), then `placeholders` items
// named "~new-<k>" (rows held for items yet to come: serve/stream_job.h). The new raw ids must
// not be in `source`.
void WriteExtendedCatalogue(const Dataset& source, const std::string& path,
                            const std::vector<std::pair<std::string, std::string>>& added, int64_t placeholders);
// The item-id fingerprint a dataset with these raw item ids and category names would carry
// (Dataset::ItemIdsFingerprint).
std::string ItemIdsFingerprintOf(const std::vector<std::string>& raw_ids, const std::vector<std::string>& category_names);

}  // namespace shardrec
