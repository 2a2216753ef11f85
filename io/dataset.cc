#include "io/dataset.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/file_util.h"
#include "common/fingerprint.h"

namespace shardrec {

namespace {

// The id space: item raw ids in dense-id order (streamed into `items`), then the categories.
std::string FinishIdsFingerprint(Fingerprint items, int64_t num_categories, const std::vector<std::string>& names) {
  items.Add(static_cast<uint64_t>(num_categories));
  for (const auto& n : names) items.Add(n);
  return items.Hex();
}

// The data: the id space, then every user's raw id and events (streamed into `events`).
std::string FinishDataFingerprint(const std::string& ids, Fingerprint events) {
  events.Add(ids);
  return events.Hex();
}

void AddUserToFingerprint(Fingerprint& f, std::string_view raw_id, std::span<const int32_t> items,
                          std::span<const int64_t> timestamps) {
  f.Add(raw_id);
  f.AddValues(items);
  f.AddValues(timestamps);
}

}  // namespace

struct DatasetWriter::Impl {
  explicit Impl(const std::string& path, const DatasetWriterOptions& o)
      : options(o), out(path), file(h5::File::Create(out.temp_path(), path)) {}

  DatasetWriterOptions options;
  AtomicOutput out;  // declared first: removes the temporary file last
  h5::File file;
  std::unique_ptr<h5::Appender<int64_t>> event_offsets;
  std::unique_ptr<h5::StringAppender> user_raw_ids;
  std::unique_ptr<h5::Appender<int32_t>> event_items;
  std::unique_ptr<h5::Appender<int64_t>> event_timestamps;
  std::unique_ptr<h5::StringAppender> item_raw_ids;
  std::unique_ptr<h5::StringAppender> item_titles;
  std::unique_ptr<h5::Appender<int64_t>> category_offsets;
  std::unique_ptr<h5::Appender<int32_t>> category_values;
  std::unique_ptr<h5::Appender<float>> content;
  std::vector<std::string> category_names;
  int64_t users = 0, items = 0, events = 0, category_count = 0;
  int32_t max_item = -1, max_category = -1;
  bool finished = false;
  Fingerprint item_ids, event_data;  // streamed as items and users are added (see Dataset::ItemIdsFingerprint)

  void CloseAppenders() {
    for (auto* a : {event_offsets.get(), event_timestamps.get(), category_offsets.get()}) {
      if (a) a->Flush();
    }
    for (auto* a : {event_items.get(), category_values.get()}) {
      if (a) a->Flush();
    }
    for (auto* a : {user_raw_ids.get(), item_raw_ids.get(), item_titles.get()}) {
      if (a) a->Flush();
    }
    if (content) content->Flush();
    event_offsets.reset();
    user_raw_ids.reset();
    event_items.reset();
    event_timestamps.reset();
    item_raw_ids.reset();
    item_titles.reset();
    category_offsets.reset();
    category_values.reset();
    content.reset();
  }
};

DatasetWriter::DatasetWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DatasetWriter::~DatasetWriter() {
  if (impl_ && !impl_->finished) {
    // Drop open HDF5 objects before AtomicOutput deletes the temporary file.
    impl_->event_offsets.reset();
    impl_->user_raw_ids.reset();
    impl_->event_items.reset();
    impl_->event_timestamps.reset();
    impl_->item_raw_ids.reset();
    impl_->item_titles.reset();
    impl_->category_offsets.reset();
    impl_->category_values.reset();
    impl_->content.reset();
    impl_->file.Discard();
  }
}

std::unique_ptr<DatasetWriter> DatasetWriter::Create(const std::string& path,
                                                     const DatasetWriterOptions& options) {
  CHECK_GE(options.content_dim, 0);
  auto impl = std::make_unique<Impl>(path, options);
  h5::File* f = &impl->file;
  const auto& st = options.storage;
  impl->event_offsets = std::make_unique<h5::Appender<int64_t>>(f, "/users/event_offsets", 1, st);
  impl->event_offsets->Append(int64_t{0});
  impl->user_raw_ids = std::make_unique<h5::StringAppender>(f, "/users/raw_ids", st);
  // Small chunks for the events: a reader takes one user's events at a time, in random order.
  h5::CreateOptions events = st;
  events.chunk_elems = std::min(st.chunk_elems, Dataset::kEventChunk);
  impl->event_items = std::make_unique<h5::Appender<int32_t>>(f, "/events/item", 1, events);
  if (options.timestamps) {
    impl->event_timestamps = std::make_unique<h5::Appender<int64_t>>(f, "/events/timestamp", 1, events);
  }
  impl->item_raw_ids = std::make_unique<h5::StringAppender>(f, "/items/raw_ids", st);
  if (options.titles) impl->item_titles = std::make_unique<h5::StringAppender>(f, "/items/titles", st);
  if (options.categories) {
    impl->category_offsets =
        std::make_unique<h5::Appender<int64_t>>(f, "/items/categories/offsets", 1, st);
    impl->category_offsets->Append(int64_t{0});
    impl->category_values =
        std::make_unique<h5::Appender<int32_t>>(f, "/items/categories/values", 1, st);
  }
  if (options.content_dim > 0) {
    impl->content =
        std::make_unique<h5::Appender<float>>(f, "/items/content", options.content_dim, st);
  }
  return std::unique_ptr<DatasetWriter>(new DatasetWriter(std::move(impl)));
}

void DatasetWriter::AddUser(std::string_view raw_id, std::span<const int32_t> items,
                            std::span<const int64_t> timestamps) {
  Impl& m = *impl_;
  CHECK(!m.finished);
  if (m.options.timestamps) {
    CHECK_EQ(items.size(), timestamps.size()) << "user " << raw_id;
  } else {
    CHECK(timestamps.empty()) << "dataset was created without timestamps";
  }
  for (int32_t it : items) {
    CHECK_GE(it, 0) << "user " << raw_id;
    m.max_item = std::max(m.max_item, it);
  }
  m.user_raw_ids->Append(raw_id);
  AddUserToFingerprint(m.event_data, raw_id, items, timestamps);
  m.event_items->Append(items.data(), static_cast<int64_t>(items.size()));
  if (m.event_timestamps) m.event_timestamps->Append(timestamps.data(), timestamps.size());
  m.events += static_cast<int64_t>(items.size());
  m.event_offsets->Append(m.events);
  ++m.users;
}

void DatasetWriter::AddItem(std::string_view raw_id, std::string_view title,
                            std::span<const int32_t> categories, std::span<const float> content) {
  Impl& m = *impl_;
  CHECK(!m.finished);
  m.item_raw_ids->Append(raw_id);
  m.item_ids.Add(raw_id);
  if (m.item_titles) {
    m.item_titles->Append(title);
  } else {
    CHECK(title.empty()) << "dataset was created without titles";
  }
  if (m.category_values) {
    for (int32_t c : categories) {
      CHECK_GE(c, 0);
      m.max_category = std::max(m.max_category, c);
    }
    m.category_values->Append(categories.data(), static_cast<int64_t>(categories.size()));
    m.category_count += static_cast<int64_t>(categories.size());
    m.category_offsets->Append(m.category_count);
  } else {
    CHECK(categories.empty()) << "dataset was created without categories";
  }
  if (m.content) {
    CHECK_EQ(static_cast<int64_t>(content.size()), m.options.content_dim) << "item " << raw_id;
    m.content->Append(content.data(), 1);
  } else {
    CHECK(content.empty()) << "dataset was created without content vectors";
  }
  ++m.items;
}

void DatasetWriter::SetCategoryNames(const std::vector<std::string>& names) {
  impl_->category_names = names;
}

void DatasetWriter::SetAttribute(const std::string& group, const std::string& name,
                                 double value) {
  impl_->file.EnsureParents(group + "/x");
  impl_->file.SetAttr(group, name, value);
}

void DatasetWriter::SetAttribute(const std::string& group, const std::string& name,
                                 const std::string& value) {
  impl_->file.EnsureParents(group + "/x");
  impl_->file.SetAttr(group, name, value);
}

int64_t DatasetWriter::num_users() const { return impl_->users; }
int64_t DatasetWriter::num_items() const { return impl_->items; }
int64_t DatasetWriter::num_events() const { return impl_->events; }

DatasetInfo DatasetWriter::Finish() {
  Impl& m = *impl_;
  CHECK(!m.finished);
  if (m.max_item >= m.items) {
    Fail(m.out.final_path(), ": an event refers to item ", m.max_item, " but only ", m.items,
         " items were written");
  }
  DatasetInfo info;
  info.num_users = m.users;
  info.num_items = m.items;
  info.num_events = m.events;
  info.has_timestamps = m.options.timestamps;
  info.has_titles = m.options.titles;
  info.has_categories = m.options.categories;
  info.content_dim = m.options.content_dim;
  info.source = m.options.source;
  if (m.options.categories) {
    info.num_categories = m.category_names.empty() ? m.max_category + 1
                                                   : static_cast<int64_t>(m.category_names.size());
    CHECK_LT(m.max_category, info.num_categories) << "category id without a name";
    if (!m.category_names.empty()) {
      h5::StringAppender names(&m.file, "/categories/names", m.options.storage);
      for (const auto& n : m.category_names) names.Append(n);
      names.Flush();
    }
  }
  m.CloseAppenders();
  h5::File& f = m.file;
  const std::string ids = FinishIdsFingerprint(m.item_ids, info.num_categories, m.category_names);
  f.SetAttr("/", "item_ids_fingerprint", ids);
  f.SetAttr("/", "fingerprint", FinishDataFingerprint(ids, m.event_data));
  f.SetAttr("/", "format", std::string(kDatasetFormatName));
  f.SetAttr("/", "format_version", kDatasetFormatVersion);
  f.SetAttr("/", "num_users", info.num_users);
  f.SetAttr("/", "num_items", info.num_items);
  f.SetAttr("/", "num_events", info.num_events);
  f.SetAttr("/", "has_timestamps", int64_t{info.has_timestamps});
  f.SetAttr("/", "content_dim", info.content_dim);
  f.SetAttr("/", "num_categories", info.num_categories);
  f.SetAttr("/", "source", info.source);
  f.Close();
  m.out.Commit();
  m.finished = true;
  return info;
}

// ------------------------------------------------------------------------------------------------

std::unique_ptr<Dataset> Dataset::Open(const std::string& path, int64_t event_cache_bytes) {
  h5::File file = h5::File::Open(path);
  std::unique_ptr<Dataset> ds(new Dataset(std::move(file)));
  ds->event_cache_bytes_ = event_cache_bytes;
  const h5::File& f = ds->file_;
  auto format = f.GetStringAttr("/", "format");
  if (!format || *format != kDatasetFormatName) {
    Fail(path, ": not a ShardRec dataset (root attribute 'format' is ",
         format ? "'" + *format + "'" : std::string("missing"), ", expected '",
         kDatasetFormatName, "'); convert raw data with `shardrec data convert`");
  }
  auto need_int = [&](const char* name) {
    auto v = f.GetIntAttr("/", name);
    if (!v) Fail(path, ": missing root attribute '", name, "'");
    return *v;
  };
  DatasetInfo& info = ds->info_;
  info.format_version = need_int("format_version");
  if (info.format_version != kDatasetFormatVersion) {
    Fail(path, ": dataset format_version ", info.format_version, " is not supported (this build reads ",
         kDatasetFormatVersion, ")");
  }
  info.num_users = need_int("num_users");
  info.num_items = need_int("num_items");
  info.num_events = need_int("num_events");
  info.has_timestamps = need_int("has_timestamps") != 0;
  info.content_dim = need_int("content_dim");
  info.num_categories = need_int("num_categories");
  info.source = f.GetStringAttr("/", "source").value_or("");
  info.has_titles = f.Exists("/items/titles/offsets");
  info.has_categories = f.Exists("/items/categories/offsets");

  auto expect_rows = [&](const std::string& name, int64_t rows) {
    auto shape = f.Shape(name);
    if (shape[0] != rows) {
      Fail(path, ": ", name, " has ", shape[0], " rows, expected ", rows,
           " (from the root attributes); the file is inconsistent");
    }
  };
  expect_rows("/users/event_offsets", info.num_users + 1);
  expect_rows("/users/raw_ids/offsets", info.num_users + 1);
  expect_rows("/events/item", info.num_events);
  if (info.has_timestamps) expect_rows("/events/timestamp", info.num_events);
  f.OpenDatasetUncached("/events/item");  // read through the Dataset's own bounded block cache
  if (info.has_timestamps) f.OpenDatasetUncached("/events/timestamp");
  const int64_t chunk = f.ChunkRows("/events/item");
  ds->event_block_ = chunk > 0 ? chunk : int64_t{1} << 16;
  expect_rows("/items/raw_ids/offsets", info.num_items + 1);
  if (info.has_titles) expect_rows("/items/titles/offsets", info.num_items + 1);
  if (info.has_categories) expect_rows("/items/categories/offsets", info.num_items + 1);
  if (info.content_dim > 0) {
    auto shape = f.Shape("/items/content");
    int64_t width = shape.size() == 2 ? shape[1] : 1;
    if (shape[0] != info.num_items || width != info.content_dim) {
      Fail(path, ": /items/content is ", shape[0], " x ", width, ", expected ", info.num_items,
           " x ", info.content_dim);
    }
  }
  ds->offsets_ = f.ReadAll<int64_t>("/users/event_offsets");
  const auto& off = ds->offsets_;
  if (off.front() != 0 || off.back() != info.num_events) {
    Fail(path, ": /users/event_offsets must run from 0 to num_events (", info.num_events, ")");
  }
  for (size_t i = 1; i < off.size(); ++i) {
    if (off[i] < off[i - 1]) Fail(path, ": /users/event_offsets decreases at user ", i - 1);
  }
  return ds;
}

template <typename T>
std::vector<T> Dataset::ReadEvents(const std::string& name, BlockCache<T>& cache, int64_t begin, int64_t end) const {
  const int64_t n = info_.num_events;
  if (begin < 0 || end < begin || end > n) {
    Fail(path(), ": ", name, ": rows [", begin, ", ", end, ") out of range (", n, " rows); the file is inconsistent or truncated");
  }
  std::vector<T> out(static_cast<size_t>(end - begin));
  const int64_t rows = event_block_;
  const size_t max_blocks = static_cast<size_t>(std::max<int64_t>(2, event_cache_bytes_ / (rows * static_cast<int64_t>(sizeof(T)))));
  for (int64_t at = begin; at < end;) {
    const int64_t b = at / rows, first = b * rows, last = std::min(n, first + rows);
    auto it = cache.blocks.find(b);
    if (it == cache.blocks.end()) {
      if (cache.blocks.size() >= max_blocks) {
        cache.blocks.erase(cache.order.back());
        cache.order.pop_back();
      }
      cache.order.push_front(b);
      it = cache.blocks.emplace(b, std::make_pair(file_.Read<T>(name, first, last), cache.order.begin())).first;
    } else if (it->second.second != cache.order.begin()) {
      cache.order.splice(cache.order.begin(), cache.order, it->second.second);
    }
    const int64_t stop = std::min(end, last);
    std::copy(it->second.first.begin() + (at - first), it->second.first.begin() + (stop - first), out.begin() + (at - begin));
    at = stop;
  }
  return out;
}

std::vector<int32_t> Dataset::ReadItems(int64_t begin, int64_t end) const {
  std::vector<int32_t> items = ReadEvents<int32_t>("/events/item", item_blocks_, begin, end);
  for (int32_t it : items) {
    if (it < 0 || it >= info_.num_items) {
      Fail(path(), ": /events/item holds item id ", it, " outside [0, ", info_.num_items, ")");
    }
  }
  return items;
}

std::vector<int64_t> Dataset::ReadTimestamps(int64_t begin, int64_t end) const {
  if (!info_.has_timestamps) return {};
  return ReadEvents<int64_t>("/events/timestamp", timestamp_blocks_, begin, end);
}

std::vector<std::string> Dataset::ReadUserRawIds(int64_t begin, int64_t end) const {
  return h5::ReadStrings(file_, "/users/raw_ids", begin, end);
}

std::vector<std::string> Dataset::ReadItemRawIds(int64_t begin, int64_t end) const {
  return h5::ReadStrings(file_, "/items/raw_ids", begin, end);
}

void Dataset::ForEachItemRawId(const std::function<void(const std::string&)>& fn) const {
  const int64_t block = 1 << 16;
  for (int64_t b = 0; b < info_.num_items; b += block) {
    for (const auto& id : ReadItemRawIds(b, std::min(info_.num_items, b + block))) fn(id);
  }
}

std::vector<std::string> Dataset::ReadItemTitles(int64_t begin, int64_t end) const {
  if (!info_.has_titles) Fail(path(), ": the dataset has no item titles");
  return h5::ReadStrings(file_, "/items/titles", begin, end);
}

Dataset::Categories Dataset::ReadItemCategories(int64_t begin, int64_t end) const {
  if (!info_.has_categories) Fail(path(), ": the dataset has no item categories");
  Categories out;
  out.offsets = file_.Read<int64_t>("/items/categories/offsets", begin, end + 1);
  out.values = file_.Read<int32_t>("/items/categories/values", out.offsets.front(),
                                   out.offsets.back());
  const int64_t base = out.offsets.front();
  for (auto& o : out.offsets) o -= base;
  for (int32_t c : out.values) {
    if (c < 0 || c >= info_.num_categories) {
      Fail(path(), ": /items/categories/values holds ", c, " outside [0, ", info_.num_categories,
           ")");
    }
  }
  return out;
}

std::vector<std::string> Dataset::ReadCategoryNames() const {
  if (!file_.Exists("/categories/names/offsets")) return {};
  return h5::ReadStrings(file_, "/categories/names", 0, info_.num_categories);
}

std::vector<float> Dataset::ReadItemContent(int64_t begin, int64_t end) const {
  if (info_.content_dim == 0) Fail(path(), ": the dataset has no item content vectors");
  return file_.Read<float>("/items/content", begin, end);
}

int64_t Dataset::CountItemsWithContent() const {
  int64_t count = 0;
  const int64_t block = 1 << 16;
  for (int64_t b = 0; b < info_.num_items; b += block) {
    int64_t e = std::min(info_.num_items, b + block);
    std::vector<bool> has(static_cast<size_t>(e - b), false);
    if (info_.content_dim > 0) {
      std::vector<float> c = ReadItemContent(b, e);
      for (int64_t i = 0; i < e - b; ++i) {
        for (int64_t d = 0; d < info_.content_dim; ++d) {
          if (c[i * info_.content_dim + d] != 0.f) {
            has[i] = true;
            break;
          }
        }
      }
    }
    if (info_.has_titles) {
      std::vector<std::string> t = ReadItemTitles(b, e);
      for (int64_t i = 0; i < e - b; ++i) has[i] = has[i] || !t[i].empty();
    }
    count += std::count(has.begin(), has.end(), true);
  }
  return count;
}

std::string Dataset::ItemIdsFingerprint() const {
  if (auto v = file_.GetStringAttr("/", "item_ids_fingerprint")) return *v;
  Fingerprint items;  // a file written before fingerprints existed: computed the writer's way
  ForEachItemRawId([&](const std::string& id) { items.Add(id); });
  return FinishIdsFingerprint(items, info_.has_categories ? info_.num_categories : 0, ReadCategoryNames());
}

std::string Dataset::DataFingerprint() const {
  if (auto v = file_.GetStringAttr("/", "fingerprint")) return *v;
  Fingerprint events;
  for (int64_t u = 0; u < info_.num_users;) {
    int64_t v = u + 1;
    while (v < info_.num_users && offsets_[v + 1] - offsets_[u] < (1 << 20)) ++v;
    const std::vector<int32_t> items = ReadItems(offsets_[u], offsets_[v]);
    const std::vector<int64_t> times = ReadTimestamps(offsets_[u], offsets_[v]);
    const std::vector<std::string> raw = ReadUserRawIds(u, v);
    for (int64_t w = u; w < v; ++w) {
      const size_t first = static_cast<size_t>(offsets_[w] - offsets_[u]), n = static_cast<size_t>(user_length(w));
      AddUserToFingerprint(events, raw[w - u], std::span<const int32_t>(items.data() + first, n),
                           times.empty() ? std::span<const int64_t>() : std::span<const int64_t>(times.data() + first, n));
    }
    u = v;
  }
  return FinishDataFingerprint(ItemIdsFingerprint(), events);
}

std::map<std::string, double> Dataset::NumericAttributes(const std::string& group) const {
  std::map<std::string, double> out;
  if (!file_.Exists(group)) return out;
  for (const auto& name : file_.AttrNames(group)) {
    if (file_.IsNumericAttr(group, name)) out[name] = *file_.GetDoubleAttr(group, name);
  }
  return out;
}

std::optional<std::string> Dataset::StringAttribute(const std::string& group, const std::string& name) const {
  if (!file_.Exists(group)) return std::nullopt;
  return file_.GetStringAttr(group, name);
}

void ForEachUserBlock(const Dataset& ds, const std::function<void(int64_t, int64_t, const std::vector<int32_t>&,
                                                                   const std::vector<int64_t>&)>& fn) {
  const auto& off = ds.user_offsets();
  const int64_t users = ds.info().num_users;
  for (int64_t u = 0; u < users;) {
    int64_t v = u + 1;
    while (v < users && off[v + 1] - off[u] < (1 << 20)) ++v;
    fn(u, v, ds.ReadItems(off[u], off[v]), ds.ReadTimestamps(off[u], off[v]));
    u = v;
  }
}

void CopyItemCatalogue(const Dataset& source, DatasetWriter& writer) {
  const DatasetInfo& info = source.info();
  if (info.has_categories) writer.SetCategoryNames(source.ReadCategoryNames());
  const int64_t block = 65536;
  for (int64_t i = 0; i < info.num_items; i += block) {
    const int64_t j = std::min(info.num_items, i + block);
    const std::vector<std::string> raw = source.ReadItemRawIds(i, j);
    const std::vector<std::string> titles = info.has_titles ? source.ReadItemTitles(i, j) : std::vector<std::string>();
    const Dataset::Categories cats = info.has_categories ? source.ReadItemCategories(i, j) : Dataset::Categories();
    const std::vector<float> content = info.content_dim > 0 ? source.ReadItemContent(i, j) : std::vector<float>();
    for (int64_t k = 0; k < j - i; ++k) {
      std::span<const int32_t> c;
      if (info.has_categories) c = std::span<const int32_t>(cats.values.data() + cats.offsets[k], cats.offsets[k + 1] - cats.offsets[k]);
      std::span<const float> v;
      if (info.content_dim > 0) v = std::span<const float>(content.data() + k * info.content_dim, info.content_dim);
      writer.AddItem(raw[k], info.has_titles ? std::string_view(titles[k]) : std::string_view(), c, v);
    }
  }
}

void WriteExtendedCatalogue(const Dataset& source, const std::string& path,
                            const std::vector<std::pair<std::string, std::string>>& added, int64_t placeholders) {
  const DatasetInfo& info = source.info();
  bool titles = info.has_titles;
  for (const auto& a : added) titles = titles || !a.second.empty();
  auto w = DatasetWriter::Create(path, {.timestamps = info.has_timestamps, .titles = titles, .categories = info.has_categories,
                                        .content_dim = info.content_dim, .source = "the catalogue of " + source.path() + ", extended"});
  CopyItemCatalogue(source, *w);
  const std::vector<float> zeros(static_cast<size_t>(info.content_dim), 0.0f);
  for (const auto& [raw, title] : added) w->AddItem(raw, title, {}, zeros);
  for (int64_t k = 0; k < placeholders; ++k) w->AddItem("~new-" + std::to_string(k), "", {}, zeros);
  const auto& off = source.user_offsets();
  ForEachUserBlock(source, [&](int64_t u, int64_t v, const std::vector<int32_t>& items, const std::vector<int64_t>& ts) {
    const std::vector<std::string> raw = source.ReadUserRawIds(u, v);
    for (int64_t x = u; x < v; ++x) {
      const size_t at = static_cast<size_t>(off[x] - off[u]), n = static_cast<size_t>(off[x + 1] - off[x]);
      w->AddUser(raw[x - u], std::span<const int32_t>(items).subspan(at, n),
                 ts.empty() ? std::span<const int64_t>() : std::span<const int64_t>(ts).subspan(at, n));
    }
  });
  w->Finish();
}

std::string ItemIdsFingerprintOf(const std::vector<std::string>& raw_ids, const std::vector<std::string>& category_names) {
  Fingerprint items;
  for (const auto& id : raw_ids) items.Add(id);
  return FinishIdsFingerprint(items, static_cast<int64_t>(category_names.size()), category_names);
}

}  // namespace shardrec
