#include "serve/recommender.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_set>

#include <glog/logging.h>

#include "common/error.h"
#include "common/json.h"
#include "common/strings.h"
#include "distributed/inprocess.h"
#include "io/dataset.h"
#include "io/export_format.h"
#include "model/catalogue.h"
#include "model/history.h"
#include "retrieval/export_index.h"
#include "serve/explain.h"
#include "train/model_files.h"

namespace shardrec {

// The exported model, built on the first request that needs it, on a group of one rank.
struct Recommender::Model {
  ModelConfig config;
  InProcessGroup group{1, CommOptions{}};
  std::unique_ptr<Communicator> comm = group.Rank(0);
  std::unique_ptr<TwoTowerModel> tower;
};

struct Recommender::Lock {
  std::mutex mu;       // the model: built once, then one request at a time
  std::mutex data_mu;  // the dataset of histories (its block cache is not thread-safe)
  std::once_flag users_once;
};

namespace {

// The history events with the largest positive contributions to each hit (serve/explain.h), at
// most `top`: (event index into `kept`, contribution) per hit.
std::vector<std::vector<std::pair<int64_t, float>>> TopReasons(const at::Tensor& contributions, size_t top) {
  std::vector<std::vector<std::pair<int64_t, float>>> out(static_cast<size_t>(contributions.size(1)));
  const float* c = contributions.data_ptr<float>();
  const int64_t n = contributions.size(0), hits = contributions.size(1);
  for (int64_t h = 0; h < hits; ++h) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) order[j] = j;
    // Largest first; among equals the newer event.
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return c[a * hits + h] > c[b * hits + h] || (c[a * hits + h] == c[b * hits + h] && a > b);
    });
    for (size_t k = 0; k < order.size() && out[h].size() < top; ++k) {
      const float v = c[order[k] * hits + h];
      if (v > 0) out[h].emplace_back(order[k], v);  // only events that raise the score
    }
  }
  return out;
}

// A version's manifest as it stands ("" when the version is gone).
std::string ManifestText(const std::string& version_dir) {
  try {
    return ReadFileToString(version_dir + "/manifest.json");
  } catch (const UserError&) {  // gone (retired meanwhile, say)
    return "";
  }
}

}  // namespace

void ReadServedVersion(const std::string& export_dir, const std::function<void(const std::string&)>& read) {
  const bool via_latest = !PathExists(export_dir + "/manifest.json");
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    const std::string dir = ResolveExport(export_dir);
    const std::string before = ManifestText(dir);
    try {
      read(dir);
      return;
    } catch (const UserError& e) {
      const std::string now = ManifestText(dir);
      if (!now.empty() && now == before) throw;  // the version stands as it was read: a failure of its own
      if (now.empty() && !via_latest) {
        Fail(dir, ": this version was retired (removed by `shardrec publish --keep`) while it was read; read the export "
             "root's LATEST instead (", e.what(), ")");
      }
      if (attempt == kAttempts) Fail(export_dir, ": the served version changed ", kAttempts, " times while it was read (", e.what(), ")");
      LOG(WARNING) << dir << (now.empty() ? " was retired" : " was re-indexed") << " while it was read; reading "
                   << (via_latest ? "LATEST" : "it") << " again (" << e.what() << ")";
    }
  }
}

// What a request asks for once its ids are resolved.
struct Recommender::Query {
  std::vector<float> vector;  // the exported user's, until the model encodes one
  std::unordered_set<int64_t> exclude;
  std::vector<int64_t> items, stamps;  // the history, oldest first
  int64_t recent = 0;                   // events of it from RecommenderOptions::recent
};

std::unique_ptr<Recommender> Recommender::Open(RecommenderOptions options) {
  std::unique_ptr<Recommender> r(new Recommender());
  r->options_ = std::move(options);
  r->lock_ = std::make_unique<Lock>();
  r->dir_ = ResolveExport(r->options_.export_dir);
  r->manifest_ = ReadExportManifest(r->dir_);
  const ExportManifest& m = r->manifest_;
  if (!r->options_.search) r->index_ = OpenExportIndex(r->dir_, m, r->options_.exact, r->options_.item_shards);
  r->catalogue_ = ReadExportedItems(r->dir_, m);
  r->items_.reserve(static_cast<size_t>(m.num_items));
  for (int64_t i = 0; i < m.num_items; ++i) r->items_.emplace(r->catalogue_.raw_ids[static_cast<size_t>(i)], i);
  r->data_ = Dataset::Open(m.data);
  if (r->data_->info().has_categories) r->category_names_ = r->data_->ReadCategoryNames();
  if (r->options_.in_memory) {
    r->LoadUsers();
    r->user_vectors_.reserve(static_cast<size_t>(m.num_users * m.dim));
    for (const ExportShard& sh : m.user_shards) {
      const std::vector<float> v = ReadShardVectors(r->dir_ + "/" + sh.file, 0, sh.end - sh.begin);
      r->user_vectors_.insert(r->user_vectors_.end(), v.begin(), v.end());
    }
    if (r->options_.model_config) r->ExportedModel();
  }
  return r;
}

Recommender::~Recommender() = default;

const ShardedIndex& Recommender::index() const {
  CHECK(index_) << "a Recommender searching through RecommenderOptions::search has no index";
  return *index_;
}

const std::string& Recommender::item_title(int64_t item) const {
  static const std::string none;
  return catalogue_.titles.empty() ? none : catalogue_.titles[static_cast<size_t>(item)];
}

void Recommender::LoadUsers() const {
  std::call_once(lock_->users_once, [this] {
    const ExportManifest& m = manifest_;
    user_raw_.clear();  // a read that failed before (and threw) may have left some
    user_ids_.clear();
    user_raw_.reserve(static_cast<size_t>(m.num_users));
    for (const ExportShard& sh : m.user_shards) {
      VectorShard u = ReadVectorShard(dir_ + "/" + sh.file, /*with_vectors=*/false);
      for (size_t i = 0; i < u.raw_ids.size(); ++i) {
        if (u.ids[i] != static_cast<int64_t>(user_raw_.size()) || u.ids[i] < sh.begin || u.ids[i] >= sh.end) {
          Fail(dir_, "/", sh.file, ": user ", u.ids[i], " out of the shard's dense-id order (damaged export?)");
        }
        user_raw_.push_back(std::move(u.raw_ids[i]));
      }
    }
    user_ids_.reserve(user_raw_.size());
    for (size_t i = 0; i < user_raw_.size(); ++i) user_ids_.emplace(user_raw_[i], static_cast<int64_t>(i));
  });
}

int64_t Recommender::num_users() const {
  LoadUsers();
  return static_cast<int64_t>(user_raw_.size());
}

const std::string& Recommender::user_id(int64_t user) const {
  LoadUsers();
  return user_raw_[static_cast<size_t>(user)];
}

std::vector<std::string> Recommender::item_categories(int64_t item) const {
  std::vector<std::string> out;
  if (category_names_.empty() || item >= data_->info().num_items) return out;  // none, or an item added at export
  std::lock_guard<std::mutex> lock(lock_->data_mu);
  const Dataset::Categories c = data_->ReadItemCategories(item, item + 1);
  for (int32_t v : c.values) {
    out.push_back(v >= 0 && static_cast<size_t>(v) < category_names_.size() ? category_names_[static_cast<size_t>(v)] : std::to_string(v));
  }
  return out;
}

std::optional<bool> Recommender::item_trained(int64_t item) const {
  std::lock_guard<std::mutex> lock(lock_->mu);
  if (!model_) return std::nullopt;
  return trained_.empty() || trained_[static_cast<size_t>(item)];
}

int64_t Recommender::FindItem(const std::string& raw) const {
  const auto it = items_.find(raw);
  return it == items_.end() ? -1 : it->second;
}

int64_t Recommender::FindUser(const std::string& raw) const {
  LoadUsers();
  const auto it = user_ids_.find(raw);
  return it == user_ids_.end() ? -1 : it->second;
}

std::vector<float> Recommender::UserVector(int64_t user) const {
  const ExportManifest& m = manifest_;
  if (!user_vectors_.empty()) {
    const auto at = user_vectors_.begin() + user * m.dim;
    return std::vector<float>(at, at + m.dim);
  }
  for (size_t s = 0; s < m.user_shards.size(); ++s) {
    const ExportShard& sh = m.user_shards[s];
    if (user >= sh.begin && user < sh.end) return ReadShardVectors(dir_ + "/" + sh.file, user - sh.begin, user - sh.begin + 1);
  }
  Fail(dir_, ": no user shard holds user ", user);
}

void Recommender::UserHistory(int64_t user, std::vector<int64_t>* items, std::vector<int64_t>* timestamps) const {
  std::lock_guard<std::mutex> lock(lock_->data_mu);
  const int64_t b = data_->user_offsets()[user], e = data_->user_offsets()[user + 1];
  const std::vector<int32_t> got = data_->ReadItems(b, e);
  items->assign(got.begin(), got.end());
  *timestamps = data_->ReadTimestamps(b, e);
}

std::vector<std::vector<Hit>> Recommender::RecommendUsers(const std::vector<int64_t>& users, int64_t k, int threads) const {
  const ExportManifest& m = manifest_;
  const ShardedIndex& search = index();
  const int64_t n = static_cast<int64_t>(users.size());
  std::vector<float> queries(static_cast<size_t>(n * m.dim));
  std::vector<std::unordered_set<int64_t>> exclude(static_cast<size_t>(n));
  // Each shard's rows of these users in runs: rows closer than kGap share one read, so users in
  // dense-id order cost one read per shard and scattered ones one read each.
  constexpr int64_t kGap = 256;
  std::vector<std::pair<int64_t, int64_t>> order(static_cast<size_t>(n));  // (user, position in `users`)
  for (int64_t i = 0; i < n; ++i) order[i] = {users[i], i};
  std::sort(order.begin(), order.end());
  for (const ExportShard& sh : user_vectors_.empty() ? m.user_shards : std::vector<ExportShard>{}) {
    auto first = std::lower_bound(order.begin(), order.end(), std::pair<int64_t, int64_t>{sh.begin, 0});
    const auto last = std::lower_bound(order.begin(), order.end(), std::pair<int64_t, int64_t>{sh.end, 0});
    while (first != last) {
      auto end = first + 1;
      while (end != last && end->first < (end - 1)->first + kGap) ++end;
      const int64_t lo = first->first, hi = (end - 1)->first + 1;
      const std::vector<float> rows = ReadShardVectors(dir_ + "/" + sh.file, lo - sh.begin, hi - sh.begin);
      for (auto it = first; it != end; ++it) {
        std::copy_n(rows.data() + (it->first - lo) * m.dim, m.dim, queries.data() + it->second * m.dim);
      }
      first = end;
    }
  }
  for (int64_t i = 0; i < n && !user_vectors_.empty(); ++i) {
    std::copy_n(user_vectors_.begin() + users[i] * m.dim, m.dim, queries.begin() + i * m.dim);
  }
  {
    std::lock_guard<std::mutex> lock(lock_->data_mu);
    const std::vector<int64_t>& offsets = data_->user_offsets();
    for (int64_t i = 0; i < n; ++i) {
      CHECK(users[i] >= 0 && users[i] < num_users()) << "user " << users[i];
      for (int32_t it : data_->ReadItems(offsets[users[i]], offsets[users[i] + 1])) exclude[i].insert(it);
    }
  }
  return search.SearchMany(queries.data(), n, k, exclude, threads);
}

Recommender::Model& Recommender::ExportedModel() const {
  if (model_) return *model_;
  const ExportManifest& m = manifest_;
  if (!options_.model_config) Fail("export ", m.version, ": no model configuration given, so histories cannot be encoded");
  auto md = std::make_unique<Model>();
  md->config = options_.model_config(m.source);
  // An export may serve items added since training.
  ItemCatalog catalog;
  {
    std::lock_guard<std::mutex> lock(lock_->data_mu);
    catalog = LoadItemCatalog(*data_);
  }
  OpenedModel opened = OpenModel(m.source, md->config, catalog, LoadMode::kCatalogue, options_.seed, *md->comm);
  md->tower = std::move(opened.model);
  const at::Tensor& known = opened.report.items_known;  // defined when rows went by raw id
  if (known.defined() && known.numel() == m.num_items) {
    const at::Tensor k = known.to(torch::kBool).contiguous();
    trained_.assign(k.data_ptr<bool>(), k.data_ptr<bool>() + k.numel());
  }
  model_ = std::move(md);
  return *model_;
}

void Recommender::Resolve(const RecommendRequest& req, Query& q, RecommendResponse& out) const {
  const ExportManifest& m = manifest_;
  if (req.k < 1) Fail("k must be >= 1, got ", req.k);
  if (req.user.empty() == req.history.empty()) Fail("give exactly one of a user id and a history of item ids");
  out.version = m.version;
  out.search = options_.search ? options_.search->name(m.version) : index_->name();
  if (!req.user.empty()) {
    const int64_t u = FindUser(req.user);
    const auto recent = options_.recent ? options_.recent->Of(req.user) : std::vector<std::pair<std::string, int64_t>>();
    if (u < 0 && recent.empty()) Fail("user: unknown user id ", Quote(req.user), " (not in export ", m.version, ")");
    if (u >= 0) q.vector = UserVector(u), UserHistory(u, &q.items, &q.stamps);
    // Events the data has are not taken twice: only those after its last one (by time; data
    // without timestamps takes them all, as items alone).
    const bool stamped = !q.stamps.empty() || q.items.empty();
    const int64_t last = q.stamps.empty() ? std::numeric_limits<int64_t>::min() : q.stamps.back();
    for (const auto& [item, ts] : recent) {
      const int64_t id = FindItem(item);
      if (id < 0 || ts <= last) continue;
      q.items.push_back(id);
      if (stamped) q.stamps.push_back(ts);
      ++q.recent;
    }
    if (u < 0 && q.recent == 0) {
      Fail("user: unknown user id ", Quote(req.user), " (not in export ", m.version, "; the events taken for them are of items it does not know)");
    }
    out.recent_events = q.recent;
    out.query = "user " + req.user;
  } else {
    if (!req.timestamps.empty() && req.timestamps.size() != req.history.size()) {
      Fail("history: give a timestamp for every item or for none (", req.timestamps.size(), " for ", req.history.size(), " items)");
    }
    for (size_t i = 0; i < req.history.size(); ++i) {
      const int64_t id = FindItem(req.history[i]);
      if (id < 0) {  // an item the export does not know: left out, and said so
        out.ignored.push_back(req.history[i]);
        continue;
      }
      q.items.push_back(id);
      if (!req.timestamps.empty()) q.stamps.push_back(req.timestamps[i]);
    }
    out.query = "history of " + std::to_string(req.history.size()) + " items";
    if (q.items.empty()) {
      out.warning = "history: no item of it is in export " + m.version + ", so there is nothing to recommend from";
      return;
    }
    if (!out.ignored.empty()) {
      out.warning = "history: " + std::to_string(out.ignored.size()) + " item(s) not in export " + m.version + " left out";
    }
  }
  if (req.exclude_history) q.exclude.insert(q.items.begin(), q.items.end());
  out.events = static_cast<int64_t>(q.items.size());
  if (req.at != kUnknownTime) {
    if (q.items.empty()) Fail("at: user ", Quote(req.user), " has no events, so the request time has nothing to be measured from");
    if (q.stamps.empty()) {
      Fail("at: the history has no timestamps (", req.user.empty() ? "give one per item" : "the data has none",
           "), so the request time has nothing to be measured from");
    }
    if (req.at < q.stamps.back()) Fail("at ", req.at, " is before the history's last event (", q.stamps.back(), ")");
  }
}

void Recommender::Encode(const std::vector<const RecommendRequest*>& requests, const std::vector<size_t>& rows,
                         std::vector<Query>& queries, std::vector<RecommendResult>& out) const {
  if (rows.empty()) return;
  const ExportManifest& m = manifest_;
  std::lock_guard<std::mutex> lock(lock_->mu);  // the model: one pass at a time
  Model& md = ExportedModel();
  HistoryBuilder history(md.config.max_len, !queries[rows[0]].stamps.empty());
  for (size_t i : rows) {
    history.Add(queries[i].items, queries[i].stamps, requests[i]->at);
    if (requests[i]->at != kUnknownTime && !md.config.context) {
      // Beside what Resolve may have said (history items left out).
      std::string& warning = out[i].response.warning;
      warning += std::string(warning.empty() ? "" : "; ") + "at: the model of export " + m.version + " has no context (trained with "
                 "--context=false, on data without timestamps, or before context existed); the request time changes nothing";
    }
  }
  torch::NoGradGuard no_grad;
  const at::Tensor v = md.tower->EncodeHistory(history.Build(md.config.history_features(), torch::kCPU)).contiguous();
  CHECK_EQ(v.size(0), static_cast<int64_t>(rows.size()));
  for (size_t r = 0; r < rows.size(); ++r) {
    const float* row = v.data_ptr<float>() + static_cast<int64_t>(r) * m.dim;
    queries[rows[r]].vector.assign(row, row + m.dim);
    out[rows[r]].response.user_vector = queries[rows[r]].vector;
  }
}

std::vector<RecommendResult> Recommender::Answer(const std::vector<const RecommendRequest*>& requests, int threads,
                                                 std::vector<Query>& queries) const {
  const size_t n = requests.size();
  std::vector<RecommendResult> out(n);
  queries.assign(n, Query());
  std::vector<size_t> encode[2];               // requests the user tower encodes: without, with timestamps
  std::map<int64_t, std::vector<size_t>> by_k;  // requests to search, by k
  for (size_t i = 0; i < n; ++i) {
    const RecommendRequest& req = *requests[i];
    try {
      Resolve(req, queries[i], out[i].response);
    } catch (const UserError& e) {
      out[i].error = e.what();
      continue;
    }
    if (queries[i].items.empty() && !req.history.empty()) continue;  // no known item: an empty answer
    if (!req.history.empty() || req.at != kUnknownTime || queries[i].recent > 0) encode[queries[i].stamps.empty() ? 0 : 1].push_back(i);
    by_k[req.k].push_back(i);
  }
  try {
    for (const auto& rows : encode) Encode(requests, rows, queries, out);
  } catch (const UserError& e) {  // no model configuration, or the model cannot be built
    for (const auto& rows : encode) {
      for (size_t i : rows) out[i].error = e.what();
    }
  }
  const int64_t dim = manifest_.dim;
  for (auto& [k, rows] : by_k) {
    std::erase_if(rows, [&](size_t i) { return !out[i].error.empty(); });
    std::vector<float> matrix(rows.size() * static_cast<size_t>(dim));
    std::vector<std::unordered_set<int64_t>> exclude(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      std::copy_n(queries[rows[r]].vector.begin(), dim, matrix.begin() + static_cast<int64_t>(r) * dim);
      exclude[r] = std::move(queries[rows[r]].exclude);
    }
    const int64_t n = static_cast<int64_t>(rows.size());
    std::vector<std::vector<Hit>> hits;
    try {
      hits = options_.search ? options_.search->SearchMany(manifest_.version, dim, matrix.data(), n, k, exclude)
                             : index_->SearchMany(matrix.data(), n, k, exclude, threads);
    } catch (const UserError& e) {  // a search elsewhere failed (a shard server down): these requests hear it
      for (size_t i : rows) out[i].error = e.what();
      continue;
    }
    for (size_t r = 0; r < rows.size(); ++r) {
      for (const Hit& h : hits[r]) {
        out[rows[r]].response.items.push_back({.id = h.id, .item = item_id(h.id), .title = item_title(h.id), .score = h.score});
      }
    }
  }
  return out;
}

std::vector<RecommendResult> Recommender::RecommendMany(const std::vector<const RecommendRequest*>& requests, int threads) const {
  std::vector<Query> queries;
  return Answer(requests, threads, queries);
}

RecommendResponse Recommender::Recommend(const RecommendRequest& req) const {
  std::vector<Query> queries;
  std::vector<RecommendResult> answer = Answer({&req}, /*threads=*/1, queries);
  if (!answer[0].error.empty()) throw UserError(answer[0].error);
  RecommendResponse out = std::move(answer[0].response);
  const Query& q = queries[0];
  if (!req.explain || q.items.empty()) return out;
  // The explanation: the exported model's leave-one-out contributions of the last max_len events.
  std::lock_guard<std::mutex> lock(lock_->mu);
  Model& md = ExportedModel();
  HistoryBuilder history(md.config.max_len, !q.stamps.empty());
  const int64_t keep = history.Add(q.items, q.stamps, req.at);
  const std::vector<int64_t> tail(q.items.end() - keep, q.items.end());
  const std::vector<int64_t> tail_ts = q.stamps.empty() ? q.stamps : std::vector<int64_t>(q.stamps.end() - keep, q.stamps.end());
  torch::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> ids;
  for (const Recommendation& r : out.items) ids.push_back(r.id);
  const auto because = TopReasons(HistoryContributions(*md.tower, tail, tail_ts, ids, req.at), req.reasons);
  out.explain_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  out.explained = true;
  out.explained_events = keep;
  for (size_t i = 0; i < out.items.size() && i < because.size(); ++i) {
    for (const auto& [event, c] : because[i]) {
      out.items[i].because.push_back({.item = item_id(tail[event]), .title = item_title(tail[event]), .contribution = c});
    }
  }
  return out;
}

std::string RecommendResponseJson(const RecommendResponse& r, bool with_user_vector) {
  std::string arr = "[";
  for (size_t i = 0; i < r.items.size(); ++i) {
    const Recommendation& it = r.items[i];
    JsonObject h;
    h.Add("rank", static_cast<int64_t>(i + 1)).Add("item", it.item).Add("score", static_cast<double>(it.score));
    if (!it.title.empty()) h.Add("title", it.title);
    if (r.explained) {
      std::string reasons = "[";
      for (const Reason& why : it.because) {
        JsonObject j;
        j.Add("item", why.item).Add("contribution", static_cast<double>(why.contribution));
        reasons += (reasons.size() > 1 ? ", " : "") + j.str();
      }
      h.AddRaw("because", reasons + "]");
    }
    arr += (i ? ", " : "") + h.str();
  }
  JsonObject o;
  o.Add("version", r.version).Add("query", r.query).Add("search", r.search).AddRaw("items", arr + "]");
  if (!r.ignored.empty()) {
    std::string ignored = "[";
    for (size_t i = 0; i < r.ignored.size(); ++i) ignored += (i ? ", " : "") + JsonEscape(r.ignored[i]);
    o.AddRaw("ignored", ignored + "]");
  }
  if (r.explained) o.Add("explain_ms", r.explain_ms);
  if (r.recent_events > 0) o.Add("recent_events", r.recent_events);
  if (with_user_vector) {
    std::string vec = "[";
    char buf[32];
    for (size_t i = 0; i < r.user_vector.size(); ++i) {
      std::snprintf(buf, sizeof(buf), "%s%.9g", i ? ", " : "", static_cast<double>(r.user_vector[i]));
      vec += buf;
    }
    o.AddRaw("user_vector", vec + "]");
  }
  return o.str();
}

std::string RecommendResponseText(const RecommendResponse& r, int64_t k) {
  // Ids and titles come from users and data: echoed escaped and bounded (common/strings.h).
  auto pad = [](const std::string& raw, size_t width) {
    const std::string text = Printable(raw, 200);
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
  };
  std::string out = Printable(r.query, 200) + " (" + std::to_string(r.events) + " events) -> top " + std::to_string(k) + " [" + r.search +
                    ", export " + r.version + "]\n";
  for (size_t i = 0; i < r.items.size(); ++i) {
    const Recommendation& it = r.items[i];
    char rank[32], score[32];
    std::snprintf(rank, sizeof(rank), "  %2zu. ", i + 1);
    std::snprintf(score, sizeof(score), " %.3f\n", static_cast<double>(it.score));
    out += rank + pad(it.item, 8) + " " + pad(it.title, 45) + score;
    if (!r.explained) continue;
    std::string why_line;
    for (const Reason& why : it.because) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), " (%+.3f)", static_cast<double>(why.contribution));
      why_line += (why_line.empty() ? "" : ", ") + pad(why.item, 0) + (why.title.empty() ? "" : " " + pad(why.title, 0)) + buf;
    }
    out += "      because: " + (why_line.empty() ? std::string("(no single event raises its score)") : why_line) + "\n";
  }
  return out;
}

}  // namespace shardrec
