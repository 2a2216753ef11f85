// Recommendations from a published export, for any front door (`shardrec query`, `shardrec recall`,
// the publish gate's checks, an HTTP server): opened once on an export root or version, it answers
// Recommend(request) with raw ids, titles, scores and the version that answered.
//
// A request names a known user (their exported vector, their events excluded) or gives a history of
// raw item ids (optionally with timestamps), which the exported model's user tower encodes: the same
// code path as training, evaluation and export (model/history.h). A request time (`at`) re-encodes a
// known user's history with that time's context. `explain` adds, under each item, the history
// events whose removal lowers its score most (serve/explain.h).
//
// Thread-safety: every method may be called from several threads. Reads of the dataset of
// histories take one lock, the model's part of a request another (one request at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/history.h"
#include "model/two_tower.h"
#include "io/export_format.h"
#include "io/recommend_request.h"
#include "retrieval/sharded_index.h"
#include "serve/recent_events.h"

namespace shardrec {

class Dataset;

// Where a Recommender's item searches go instead of an index of its own: the router of `shardrec
// serve --route`, whose items are searched by shard servers.
class ItemSearch {
 public:
  virtual ~ItemSearch() = default;
  virtual std::string name(const std::string& version) const = 0;  // the index's name (ShardedIndex::name) in `version`
  // ShardedIndex::SearchMany's answers over every item of export `version`.
  // queries: [n x dim].
  virtual std::vector<std::vector<Hit>> SearchMany(const std::string& version, int64_t dim, const float* queries, int64_t n,
                                                   int64_t k, const std::vector<std::unordered_set<int64_t>>& exclude) const = 0;
};

struct RecommenderOptions {
  std::string export_dir;  // an export root (its LATEST, read once) or a version directory
  bool exact = false;      // exact search even where the export has an index
  // The model configuration of the run whose model directory the export came from (the manifest's
  // source); asked the first time a request needs the model. Required for histories, `at` and
  // explanations.
  std::function<ModelConfig(const std::string& model_dir)> model_config;
  uint64_t seed = 7;  // the model's initialisation before its rows load (no effect on answers)
  // Read every user vector, and build the model (when model_config is given), at Open: requests
  // then read no file of the version but the dataset of histories, whose handle stays open, so a
  // long-lived reader (the server) keeps answering from a version removed under it.
  bool in_memory = false;
  std::vector<int64_t> item_shards;      // only these item shards are searched (OpenExportIndex's `only`)
  std::shared_ptr<const ItemSearch> search;  // set: searches go there, and no index is opened
  // Events taken since the version's data (serve/recent_events.h), read by every request that names
  // a user: those later than the user's last event in the data (all of them for a user the version
  // does not know) and of items the version knows join the history, which the user tower then
  // encodes. Not owned by one version: the server's, shared by every version it loads.
  std::shared_ptr<const RecentEvents> recent;
};

struct Reason {
  std::string item;  // raw id of a history event's item
  std::string title;
  float contribution = 0;  // the drop in the recommended item's score without that event (> 0)
};

struct Recommendation {
  int64_t id = 0;     // dense item id in the export
  std::string item;   // raw id
  std::string title;  // "" when unknown
  float score = 0;    // the model's score (inner product of the export's vectors)
  std::vector<Reason> because;  // with explain
};

struct RecommendResponse {
  std::string version;  // the export version that answered
  std::string search;   // "exact" or the index's factory string
  std::string query;    // "user <id>" or "history of <n> items"
  int64_t events = 0;   // history events of the query
  int64_t recent_events = 0;  // of them, events taken since the version's data (RecommenderOptions::recent)
  std::vector<Recommendation> items;  // best first, at most k
  std::vector<float> user_vector;     // when the model encoded the query (a history or `at`)
  bool explained = false;
  int64_t explained_events = 0;  // with explain: the last max_len events the explanation covers
  double explain_ms = 0;
  std::vector<std::string> ignored;  // history items the export does not know (left out of the query)
  std::string warning;  // something the caller should hear about ("" when none)
};

// One answer of RecommendMany: the response, or the UserError's message that refused the request.
struct RecommendResult {
  RecommendResponse response;
  std::string error;  // "" when answered
};

class Recommender {
 public:
  // Opens the export: the index (or exact search), the item id map, the dataset of histories (the
  // user id map is read on the first request that names a user). A UserError names what is
  // missing or damaged.
  static std::unique_ptr<Recommender> Open(RecommenderOptions options);
  ~Recommender();

  // A UserError names the field at fault: an unknown user id, timestamps for some items only, a
  // request time before the history's last event or without timestamps, k < 1. History items the
  // export does not know are left out and listed in `ignored` (none known: an empty answer).
  RecommendResponse Recommend(const RecommendRequest& request) const;
  // Many requests at once (the server's batches), answer i exactly Recommend(*requests[i])'s
  // without explanations: the histories to encode go through the user tower in one pass (one per
  // kind: with timestamps, without), the searches through one SearchMany per k on `threads`
  // threads. A refused request does not stop the others.
  std::vector<RecommendResult> RecommendMany(const std::vector<const RecommendRequest*>& requests, int threads = 1) const;

  const ShardedIndex& index() const;  // the index opened (none with RecommenderOptions::search)
  const ExportManifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  // Raw id and title ("" when unknown) of a dense item id in [0, num_items).
  const std::string& item_id(int64_t item) const { return catalogue_.raw_ids[static_cast<size_t>(item)]; }
  const std::string& item_title(int64_t item) const;
  // The names of an item's categories (empty when the data has none).
  std::vector<std::string> item_categories(int64_t item) const;
  // Whether the exported model has a trained id row for the item (false: served from its content
  // and categories, an item added since training); nullopt when no model was given.
  std::optional<bool> item_trained(int64_t item) const;
  // Dense id of a raw item id, or -1.
  int64_t FindItem(const std::string& raw) const;
  // Dense id of a raw user id, or -1.
  int64_t FindUser(const std::string& raw) const;
  // A known user's exported vector [dim].
  std::vector<float> UserVector(int64_t user) const;
  // A known user's events: items (dense ids, oldest first) and their timestamps (empty if none).
  void UserHistory(int64_t user, std::vector<int64_t>* items, std::vector<int64_t>* timestamps) const;
  // The export's users: raw id of a dense id in [0, num_users).
  int64_t num_users() const;
  const std::string& user_id(int64_t user) const;
  // Top-k lists of many known users (dense ids), list i exactly Recommend({user_id(users[i]), k})'s
  // items and scores, searched on `threads` threads (0: as many as cores); their vectors and events
  // are read together.
  std::vector<std::vector<Hit>> RecommendUsers(const std::vector<int64_t>& users, int64_t k, int threads) const;

 private:
  Recommender() = default;
  struct Model;
  Model& ExportedModel() const;
  struct Query;
  // The user id map, read from the user shards once (thread-safe).
  void LoadUsers() const;
  // The request's user or history, resolved to ids and checked; `out` gets its description.
  void Resolve(const RecommendRequest& request, Query& q, RecommendResponse& out) const;
  // RecommendMany, keeping each request's resolved query (explanations need its history).
  std::vector<RecommendResult> Answer(const std::vector<const RecommendRequest*>& requests, int threads, std::vector<Query>& queries) const;
  // Encodes the histories of requests `rows` (all with timestamps, or all without) in one pass.
  void Encode(const std::vector<const RecommendRequest*>& requests, const std::vector<size_t>& rows, std::vector<Query>& queries,
              std::vector<RecommendResult>& out) const;

  RecommenderOptions options_;
  std::string dir_;
  ExportManifest manifest_;
  ExportedItems catalogue_;  // raw ids and titles by dense id
  std::unique_ptr<ShardedIndex> index_;
  std::unique_ptr<Dataset> data_;
  std::unordered_map<std::string, int64_t> items_;
  mutable std::vector<std::string> user_raw_;                       // by dense id
  mutable std::unordered_map<std::string_view, int64_t> user_ids_;  // raw -> dense (views of user_raw_)
  mutable std::unique_ptr<Model> model_;
  mutable std::vector<bool> trained_;  // by dense item id, once the model is built
  std::vector<std::string> category_names_;  // by dense category id (empty when the data has none)
  std::vector<float> user_vectors_;  // [num_users x dim] with in_memory, else empty
  struct Lock;
  std::unique_ptr<Lock> lock_;
};

static_assert(std::numeric_limits<int64_t>::min() == kUnknownTime, "RecommendRequest::at's default is kUnknownTime");

// Runs `read` on the export version `export_dir` names (through ROOT/LATEST, or a version itself).
// A version retired while `read` runs (removed by `publish --keep`, or its index generation replaced
// by a re-index) makes `read` fail: `read` then runs again on what is served now, up to 3 times; a
// version named directly that is gone is a UserError saying it was retired. Other failures (a
// damaged file, a bad request) are `read`'s own UserErrors, not retried.
void ReadServedVersion(const std::string& export_dir, const std::function<void(const std::string& version_dir)>& read);

// The response as JSON: {"version", "query", "search", "items": [{"rank", "item", "score",
// "title"?, "because"?: [{"item", "contribution"}]}], "explain_ms"?, "user_vector"?}.
std::string RecommendResponseJson(const RecommendResponse& response, bool with_user_vector);
// The response as `shardrec query` prints it: a header line, then one line per item (and its
// reasons when explained), for a list asked with `k`.
std::string RecommendResponseText(const RecommendResponse& response, int64_t k);

}  // namespace shardrec
