#include "serve/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <ATen/Parallel.h>

#include <glog/logging.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <unordered_set>
#include <mutex>
#include <thread>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/strings.h"
#include "io/event_log.h"
#include "io/export_format.h"
#include "serve/console.h"
#include "serve/export_root.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One served version: requests hold it (shared) until they finish, so a swap never pulls it from
// under them.
struct Served {
  std::shared_ptr<const Recommender> rec;
  std::string version;
  double loaded_unix = 0;  // when it began answering
  std::string key;         // ReadFacts(...).key as read ("" if it changed while read)
};

// What a version's manifest says of it, read once. `key` decides its content: name, source,
// dataset, files (sizes, CRCs) and index generation with its own manifest's CRC ("" when
// unreadable); publish's last rewrite (lineage, the gate) keeps it, a re-index or a re-export under
// the same name changes it. `refused`: publish's gate refused it (kept on disk for `publish
// --force`, served only if LATEST names it).
struct VersionFacts {
  std::string key;
  bool refused = false;
};

VersionFacts ReadFacts(const std::string& version_dir) {
  VersionFacts f;
  try {
    const JsonValue m = JsonValue::Parse(ReadFileToString(version_dir + "/manifest.json"), version_dir);
    std::string key = m.at("version").str() + "\n" + m.at("source").str() + "\n" + m.at("data").str() + "\n";
    for (const auto& [name, digest] : m.at("files").object) {
      key += name + " " + std::to_string(digest.at("bytes").integer()) + " " + std::to_string(digest.at("crc32c").integer()) + "\n";
    }
    if (m.has("index") && m.at("index").has("dir")) {
      // A version exported again under its name restarts at index.g1, perhaps with another factory.
      const std::string dir = m.at("index").at("dir").str();
      const std::string index_manifest = ReadFileToString(version_dir + "/" + dir + "/manifest.json");
      key += dir + " " + std::to_string(Crc32c(index_manifest.data(), index_manifest.size()));
    }
    f.key = std::move(key);
    f.refused = m.has("lineage") && m.at("lineage").has("decision") && m.at("lineage").at("decision").str() == "refused";
  } catch (const UserError&) {
  }
  return f;
}

// A version's manifest's modification time (0 when it has none).
double ManifestTime(const std::string& version_dir) {
  struct stat st;
  if (::stat((version_dir + "/manifest.json").c_str(), &st) != 0) return 0;
  return static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
}

// Requests and latencies by endpoint and status, in the Prometheus text format.
class Metrics {
 public:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                      0.05,   0.1,   0.2,   0.5,   1,    5};
  void Record(const std::string& endpoint, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_[{endpoint, status}];
    Histogram& h = latency_[endpoint];
    for (size_t b = 0; b < kBuckets.size(); ++b) h.counts[b] += seconds <= kBuckets[b];
    h.sum += seconds;
    ++h.count;
  }
  enum class Loaded { kCold, kStandby, kRefused };
  void Reload(Loaded how) {
    (how == Loaded::kCold ? reloads_ok_ : how == Loaded::kStandby ? reloads_standby_ : reloads_refused_).fetch_add(1);
  }
  void StandbyLoad(bool ok) { (ok ? standby_ok_ : standby_refused_).fetch_add(1); }
  void Batch(size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t b = 0; b < kBatchBuckets.size(); ++b) batches_.counts[b] += static_cast<double>(size) <= kBatchBuckets[b];
    batches_.sum += static_cast<double>(size);
    ++batches_.count;
  }
  static constexpr std::array<double, 9> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  std::atomic<int64_t> in_flight{0};

  std::string Text(const Served& served) const {
    std::string out;
    std::lock_guard<std::mutex> lock(mu_);
    out += "# HELP shardrec_requests_total Requests answered, by endpoint and HTTP status.\n"
           "# TYPE shardrec_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      Appendf(out, "shardrec_requests_total{endpoint=\"%s\",code=\"%d\"} %lld\n", key.first.c_str(), key.second,
              static_cast<long long>(n));
    }
    out += "# HELP shardrec_request_seconds Time from a request's arrival to its answer.\n"
           "# TYPE shardrec_request_seconds histogram\n";
    for (const auto& [endpoint, h] : latency_) {
      for (size_t b = 0; b < kBuckets.size(); ++b) {
        Appendf(out, "shardrec_request_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %lld\n", endpoint.c_str(), kBuckets[b],
                static_cast<long long>(h.counts[b]));
      }
      Appendf(out, "shardrec_request_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %lld\n", endpoint.c_str(),
              static_cast<long long>(h.count));
      Appendf(out, "shardrec_request_seconds_sum{endpoint=\"%s\"} %.9g\n", endpoint.c_str(), h.sum);
      Appendf(out, "shardrec_request_seconds_count{endpoint=\"%s\"} %lld\n", endpoint.c_str(), static_cast<long long>(h.count));
    }
    out += "# HELP shardrec_batch_size Requests answered together by one user-tower pass and one search.\n"
           "# TYPE shardrec_batch_size histogram\n";
    for (size_t b = 0; b < kBatchBuckets.size(); ++b) {
      Appendf(out, "shardrec_batch_size_bucket{le=\"%g\"} %lld\n", kBatchBuckets[b], static_cast<long long>(batches_.counts[b]));
    }
    Appendf(out, "shardrec_batch_size_bucket{le=\"+Inf\"} %lld\nshardrec_batch_size_sum %.0f\nshardrec_batch_size_count %lld\n",
            static_cast<long long>(batches_.count), batches_.sum, static_cast<long long>(batches_.count));
    Appendf(out, "# HELP shardrec_requests_in_flight Requests being answered now.\n# TYPE shardrec_requests_in_flight gauge\n"
                 "shardrec_requests_in_flight %lld\n", static_cast<long long>(in_flight.load()));
    Appendf(out, "# HELP shardrec_served_version_info The export version answering requests.\n"
                 "# TYPE shardrec_served_version_info gauge\nshardrec_served_version_info{version=\"%s\"} 1\n",
            served.version.c_str());
    Appendf(out, "# HELP shardrec_served_version_loaded_seconds When the served version was loaded (unix time).\n"
                 "# TYPE shardrec_served_version_loaded_seconds gauge\nshardrec_served_version_loaded_seconds %.3f\n",
            served.loaded_unix);
    Appendf(out, "# HELP shardrec_reloads_total Versions LATEST moved to: loaded then, swapped in from the standby, or "
                 "refused (the served one stayed).\n# TYPE shardrec_reloads_total counter\n"
                 "shardrec_reloads_total{outcome=\"loaded\"} %lld\nshardrec_reloads_total{outcome=\"standby\"} %lld\n"
                 "shardrec_reloads_total{outcome=\"refused\"} %lld\n",
            static_cast<long long>(reloads_ok_.load()), static_cast<long long>(reloads_standby_.load()),
            static_cast<long long>(reloads_refused_.load()));
    Appendf(out, "# HELP shardrec_standby_loads_total Versions newer than the served one loaded ahead of LATEST, or "
                 "refused.\n# TYPE shardrec_standby_loads_total counter\nshardrec_standby_loads_total{outcome=\"loaded\"} %lld\n"
                 "shardrec_standby_loads_total{outcome=\"refused\"} %lld\n",
            static_cast<long long>(standby_ok_.load()), static_cast<long long>(standby_refused_.load()));
    return out;
  }

 private:
  template <size_t N>
  struct Buckets {
    std::array<int64_t, N> counts{};
    double sum = 0;
    int64_t count = 0;
  };
  using Histogram = Buckets<kBuckets.size()>;
  Buckets<kBatchBuckets.size()> batches_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::atomic<int64_t> reloads_ok_{0}, reloads_standby_{0}, reloads_refused_{0}, standby_ok_{0}, standby_refused_{0};
};

std::string ErrorJson(const std::string& message) {
  JsonObject o;
  o.Add("error", message);
  return o.str();
}

// 404 for an id the served version does not know, 400 for any other mistake in the request.
// 409 for a search of a version not served here (a router ahead of a shard server), 502 for a
// shard server that failed the router.
// A user's error whose HTTP status is known where it is raised (Answer sends it as given).
struct HttpError : UserError {
  HttpError(int status, const std::string& message) : UserError(message), status(status) {}
  int status;
};

int StatusOf(const std::string& message) {
  if (message.rfind("shard server ", 0) == 0) return 502;
  if (message.find("is not served here") != std::string::npos) return 409;
  return message.find("unknown user id") != std::string::npos || message.find("unknown item id") != std::string::npos ? 404 : 400;
}

// Hits as the router reads them: {"id": ID, "score": S} with S printed to round-trip a float.
void AppendHits(std::string& out, const std::vector<Hit>& hits) {
  out += '[';
  for (size_t i = 0; i < hits.size(); ++i) {
    Appendf(out, "%s{\"id\": %lld, \"score\": %.9g}", i ? ", " : "", static_cast<long long>(hits[i].id), static_cast<double>(hits[i].score));
  }
  out += ']';
}

struct Peer {
  std::string host;
  int port = 0;
  std::string name;  // HOST:PORT
  std::vector<int64_t> shards;
};

// A shard server's GET /healthz: {"version", "search", "shards", ...}.
JsonValue Health(const Peer& peer, int timeout_s) {
  httplib::Client cli(peer.host, peer.port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(timeout_s, 0);
  auto res = cli.Get("/healthz");
  if (!res) Fail("shard server ", peer.name, ": unreachable (", httplib::to_string(res.error()), ")");
  if (res->status != 200) Fail("shard server ", peer.name, ": HTTP ", res->status, " at /healthz");
  JsonValue j = JsonValue::Parse(res->body, peer.name + "/healthz");
  if (j.type != JsonValue::kObject || !j.has("shards") || !j.has("search") || !j.has("version")) {
    Fail("shard server ", peer.name, ": not a shard server (its /healthz names no shards)");
  }
  return j;
}

// The router's searches: each shard server searches its item shards and the lists are merged by
// score (ties: the lower id first), as ShardedIndex merges its shards' lists, so a router over
// shard servers answers what one server with every shard answers.
class RemoteSearch : public ItemSearch {
 public:
  RemoteSearch(std::vector<Peer> peers, int timeout_s) : peers_(std::move(peers)), timeout_s_(timeout_s) {}
  // The first shard server's index name once it serves `version` (asked once per version).
  std::string name(const std::string& version) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(version);
    if (it != names_.end()) return it->second;
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    for (;;) {
      const JsonValue h = Health(peers_[0], timeout_s_);
      if (h.at("version").str() == version || Clock::now() >= deadline) return names_[version] = h.at("search").str();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  const std::vector<Peer>& peers() const { return peers_; }

  std::vector<std::vector<Hit>> SearchMany(const std::string& version, int64_t dim, const float* queries, int64_t n, int64_t k,
                                           const std::vector<std::unordered_set<int64_t>>& exclude) const override {
    std::string body = "{\"version\": " + JsonEscape(version) + ", \"k\": " + std::to_string(k) + ", \"queries\": [";
    for (int64_t i = 0; i < n; ++i) {
      body += i ? ", {\"vector\": [" : "{\"vector\": [";
      for (int64_t d = 0; d < dim; ++d) Appendf(body, "%s%.9g", d ? ", " : "", static_cast<double>(queries[i * dim + d]));
      body += "], \"exclude\": [";
      size_t e = 0;
      for (const int64_t id : exclude[static_cast<size_t>(i)]) Appendf(body, "%s%lld", e++ ? ", " : "", static_cast<long long>(id));
      body += "]}";
    }
    body += "]}";
    std::vector<std::vector<std::vector<Hit>>> lists(peers_.size());
    std::vector<std::string> errors(peers_.size());
    std::vector<std::thread> asks;
    for (size_t p = 0; p < peers_.size(); ++p) {
      asks.emplace_back([&, p] {
        try {
          lists[p] = Ask(peers_[p], body, version, n);
        } catch (const std::exception& e) {
          errors[p] = e.what();
        }
      });
    }
    for (auto& t : asks) t.join();
    for (const std::string& e : errors) {
      if (!e.empty()) throw UserError(e);
    }
    std::vector<std::vector<Hit>> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      std::vector<Hit>& merged = out[static_cast<size_t>(i)];
      for (const auto& l : lists) merged.insert(merged.end(), l[static_cast<size_t>(i)].begin(), l[static_cast<size_t>(i)].end());
      std::sort(merged.begin(), merged.end(), [](const Hit& a, const Hit& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); });
      if (static_cast<int64_t>(merged.size()) > k) merged.resize(static_cast<size_t>(k));
    }
    return out;
  }

 private:
  // One shard server's lists; a server still on another version is asked again for up to 2 s.
  std::vector<std::vector<Hit>> Ask(const Peer& peer, const std::string& body, const std::string& version, int64_t n) const {
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    for (;;) {
      httplib::Client cli(peer.host, peer.port);
      cli.set_connection_timeout(2, 0);
      cli.set_read_timeout(timeout_s_, 0);
      auto res = cli.Post("/v1/search", body, "application/json");
      if (!res) Fail("shard server ", peer.name, ": unreachable (", httplib::to_string(res.error()), ")");
      if (res->status == 409 && Clock::now() < deadline) {  // not on `version` yet (or any more)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      if (res->status != 200) Fail("shard server ", peer.name, ": HTTP ", res->status, ": ", Printable(res->body, 300));
      const JsonValue j = JsonValue::Parse(res->body, "shard server " + peer.name);
      if (j.at("version").str() != version || j.at("hits").type != JsonValue::kArray ||
          static_cast<int64_t>(j.at("hits").array.size()) != n) {
        Fail("shard server ", peer.name, ": answered for version ", Quote(j.at("version").str()), " with ", j.at("hits").array.size(),
             " lists; asked ", Quote(version), " for ", n);
      }
      std::vector<std::vector<Hit>> lists;
      for (const JsonValue& l : j.at("hits").array) {
        auto& hits = lists.emplace_back();
        for (const JsonValue& h : l.array) hits.push_back({.id = h.at("id").integer(), .score = static_cast<float>(h.at("score").num())});
      }
      return lists;
    }
  }

  std::vector<Peer> peers_;
  int timeout_s_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::string> names_;  // version -> index name
};

// The shard servers of --route, each asked /healthz: what it serves and which shards.
std::shared_ptr<RemoteSearch> ConnectRoute(const std::vector<std::string>& route, int timeout_s) {
  std::vector<Peer> peers;
  std::string name;
  for (const std::string& spec : route) {
    const size_t colon = spec.rfind(':');
    const auto port = colon == std::string::npos ? std::nullopt : ParseInt64(spec.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535 || colon == 0) Fail("--route: expected HOST:PORT,..., got ", Quote(spec));
    Peer peer{.host = spec.substr(0, colon), .port = static_cast<int>(*port), .name = spec};
    JsonValue j;
    try {
      j = Health(peer, timeout_s);
    } catch (const UserError& e) {
      Fail("--route ", Quote(spec), ": no shard server answers there (", e.what(), "); start the shard servers (shardrec serve --shards ...) first");
    }
    for (const JsonValue& s : j.at("shards").array) peer.shards.push_back(s.integer());
    if (!name.empty() && j.at("search").str() != name) {
      Fail("--route: ", spec, " searches with ", j.at("search").str(), ", another shard server with ", name, " (index them alike)");
    }
    name = j.at("search").str();
    peers.push_back(std::move(peer));
  }
  return std::make_shared<RemoteSearch>(std::move(peers), timeout_s);
}

// The shard servers must hold every item shard of the export once.
void CheckCoverage(const RemoteSearch& search, const ExportManifest& m) {
  std::vector<std::string> holder(m.item_shards.size());
  for (const auto& peer : search.peers()) {
    for (const int64_t s : peer.shards) {
      if (s < 0 || s >= static_cast<int64_t>(holder.size())) Fail("--route: ", peer.name, " holds shard ", s, "; export ", m.version, " has ", holder.size());
      if (!holder[static_cast<size_t>(s)].empty()) Fail("--route: item shard ", s, " is held by both ", holder[static_cast<size_t>(s)], " and ", peer.name);
      holder[static_cast<size_t>(s)] = peer.name;
    }
  }
  for (size_t s = 0; s < holder.size(); ++s) {
    if (holder[s].empty()) Fail("--route: no shard server holds item shard ", s, " of export ", m.version, " (", holder.size(), " shards)");
  }
}

// Gathers concurrent requests into batches, run by the requests' own threads: a request that finds
// fewer than `runners` batches running takes the queue's oldest requests of one served version (at
// most `max`, its own among them or older ones; with a delay, after waiting up to it from the first
// one's arrival for the batch to fill) and answers them with one Recommender::RecommendMany; the
// others wait for their answers or for a free runner's place. No thread hand-off: one client's
// request runs on its own thread, as without batching.
class Batcher {
 public:
  Batcher(int max, double delay_ms, int runners, Metrics& metrics)
      : max_(static_cast<size_t>(max)), runners_(runners), delay_(delay_ms), metrics_(metrics) {}

  RecommendResult Submit(const RecommendRequest& request, std::shared_ptr<const Served> served) {
    Pending p{.request = &request, .served = std::move(served), .arrived = Clock::now()};
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&p);
    filled_.notify_all();
    while (!p.done) {
      if (running_ < runners_ && !queue_.empty()) {
        Run(lock);
      } else {
        changed_.wait(lock);  // a batch ended: answers, or a runner's place
      }
    }
    return std::move(p.result);
  }

 private:
  struct Pending {
    const RecommendRequest* request;
    std::shared_ptr<const Served> served;
    Clock::time_point arrived;
    RecommendResult result;
    bool done = false;
  };

  // One batch, run by the calling request's thread (`lock` held on entry and exit).
  void Run(std::unique_lock<std::mutex>& lock) {
    ++running_;
    if (delay_.count() > 0 && queue_.size() < max_) {
      filled_.wait_until(lock, queue_.front()->arrived + std::chrono::duration_cast<Clock::duration>(delay_),
                         [&] { return queue_.size() >= max_; });
    }
    std::vector<Pending*> batch;
    if (!queue_.empty()) {  // another runner may have taken them while this one waited
      const Served* version = queue_.front()->served.get();
      for (auto it = queue_.begin(); it != queue_.end() && batch.size() < max_;) {
        if ((*it)->served.get() == version) {
          batch.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    lock.unlock();
    std::vector<RecommendResult> results;
    if (!batch.empty()) {
      std::vector<const RecommendRequest*> requests;
      for (const Pending* p : batch) requests.push_back(p->request);
      try {
        results = batch.front()->served->rec->RecommendMany(requests, /*threads=*/1);
      } catch (const std::exception& e) {  // not a request's fault: every request of the batch hears it
        LOG(ERROR) << "batch of " << batch.size() << ": " << e.what();
        results.assign(batch.size(), RecommendResult{.error = std::string("internal error: ") + e.what()});
      }
      metrics_.Batch(batch.size());
    }
    lock.lock();
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i]->result = std::move(results[i]);
      batch[i]->done = true;
    }
    --running_;
    changed_.notify_all();
  }

  const size_t max_;
  const int runners_;
  const std::chrono::duration<double, std::milli> delay_;
  Metrics& metrics_;
  std::mutex mu_;
  std::condition_variable filled_, changed_;
  std::deque<Pending*> queue_;
  int running_ = 0;
};

// httplib's task queue with a bound: a connection arriving while `threads` are busy and `max_queued`
// wait is handed to a small overflow pool that answers its requests 503 at once (Overloaded()).
thread_local bool overloaded = false;
bool Overloaded() { return overloaded; }

class BoundedQueue : public httplib::TaskQueue {
 public:
  BoundedQueue(size_t threads, size_t max_queued) : limit_(threads + max_queued), pool_(threads), overflow_(2) {}
  void enqueue(std::function<void()> fn) override {
    if (pending_.fetch_add(1) >= limit_) {
      pending_.fetch_sub(1);
      overflow_.enqueue([fn = std::move(fn)] {
        overloaded = true;
        fn();
        overloaded = false;
      });
      return;
    }
    pool_.enqueue([this, fn = std::move(fn)] {
      fn();
      pending_.fetch_sub(1);
    });
  }
  void shutdown() override {
    pool_.shutdown();
    overflow_.shutdown();
  }

 private:
  const size_t limit_;
  std::atomic<size_t> pending_{0};
  httplib::ThreadPool pool_, overflow_;
};

// httplib listens with a backlog of 5 connections: a burst of new connections (clients without
// keep-alive, a reconnecting pool) overflows it while the accepting thread waits for a core, and the
// kernel drops them (seconds of retransmission, or a reset). The listening socket of `port` gets
// the system's maximum instead (listen() again on a listening socket sets its backlog).
void RaiseBacklog(int port) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* e = ::readdir(dir)) {
    const auto fd = ParseInt64(e->d_name);
    if (!fd) continue;
    int listening = 0;
    socklen_t len = sizeof(listening);
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof(addr);
    if (::getsockopt(static_cast<int>(*fd), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
        ::getsockname(static_cast<int>(*fd), reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) {
      continue;
    }
    const int bound = addr.ss_family == AF_INET    ? ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port)
                      : addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port)
                                                   : -1;
    if (bound == port && ::listen(static_cast<int>(*fd), SOMAXCONN) != 0) PLOG(WARNING) << "listen backlog of port " << port;
  }
  ::closedir(dir);
}

// The endpoint a path belongs to, for /metrics.
std::string EndpointOf(const std::string& path) {
  if (path == "/v1/recommend") return "recommend";
  if (path == "/v1/items" || path.rfind("/v1/items/", 0) == 0) return "items";
  if (path == "/v1/search") return "search";
  if (path == "/v1/events") return "events";
  if (path == "/healthz" || path == "/metrics") return path.substr(1);
  return path == "/" ? "console" : "other";
}

}  // namespace

struct RecommendServer::Impl {
  ServerOptions o;
  httplib::Server http;
  std::thread listener, watcher, roller;
  Metrics metrics;
  std::unique_ptr<EventLogWriter> events;  // with o.events_dir
  std::shared_ptr<RecentEvents> recent;    // with o.events_dir: what it took, read by every version
  mutable std::mutex mu;  // served, refused, stopping
  std::shared_ptr<const Served> served;
  std::string refused;  // the last version that failed to open (not tried again until LATEST moves)
  bool stopping = false;
  std::condition_variable wake;
  int port = 0;
  std::unique_ptr<Batcher> batcher;  // null with batch_max 1
  std::shared_ptr<RemoteSearch> remote;  // a router's shard servers

  std::shared_ptr<const Served> Current() const {
    std::lock_guard<std::mutex> lock(mu);
    return served;
  }

  std::shared_ptr<const Served> Open(const std::string& version) const {
    RecommenderOptions ro;
    ro.export_dir = o.export_root + "/" + version;
    ro.exact = o.exact;
    ro.seed = o.seed;
    ro.model_config = o.model_config;
    ro.in_memory = true;
    ro.item_shards = o.shards;
    ro.search = remote;
    ro.recent = recent;
    auto s = std::make_shared<Served>();
    const std::string key = ReadFacts(ro.export_dir).key;
    s->rec = Recommender::Open(ro);
    s->version = s->rec->manifest().version;
    s->loaded_unix = UnixNow();
    if (ReadFacts(ro.export_dir).key == key) s->key = key;
    return s;
  }

  // The standby (o.standby): a second loaded version beside the served one, for a swap without a
  // load: the version served before the last swap (a rollback's target), replaced by a version
  // newer than the served one as soon as its directory is complete (a publish's, before LATEST
  // moves to it). It is used only while its manifest's key (ReadFacts) is the one it was loaded with.
  // Touched by the watcher alone.
  std::shared_ptr<const Served> standby;
  std::string standby_refused;  // the key of a version that failed to load ahead (not tried again)

  // The standby for LATEST = `latest` (null if it holds another version, or it changed since).
  std::shared_ptr<const Served> TakeStandby(const std::string& latest) {
    if (!standby || standby->version != latest || standby->key.empty() ||
        ReadFacts(o.export_root + "/" + latest).key != standby->key) {
      return nullptr;
    }
    auto s = std::make_shared<Served>(*standby);
    s->loaded_unix = UnixNow();
    standby.reset();
    return s;
  }

  // Loads the newest version whose manifest is newer than the served one's into the standby.
  void LoadAhead(const std::string& current) {
    if (standby && ManifestTime(o.export_root + "/" + standby->version) == 0) standby.reset();  // retired
    std::string best;
    double newest = ManifestTime(o.export_root + "/" + current);
    for (const std::string& v : ListVersions(o.export_root)) {
      const double t = v == current ? 0 : ManifestTime(o.export_root + "/" + v);
      if (t > newest) best = v, newest = t;
    }
    if (best.empty()) return;
    const VersionFacts facts = ReadFacts(o.export_root + "/" + best);
    const std::string& key = facts.key;
    if (facts.refused || key.empty() || key == standby_refused || (standby && standby->key == key)) return;
    standby.reset();  // two versions at most: the served one and the one loading
    try {
      std::shared_ptr<const Served> next = Open(best);
      if (next->key != key) return;  // rewritten while it was read: the next poll tries again
      standby = std::move(next);
      metrics.StandbyLoad(true);
      LOG(INFO) << "standby: " << o.export_root << "/" << best << " loaded ahead of LATEST";
    } catch (const std::exception& e) {  // a damaged version, or one too large for the memory left
      standby_refused = key;
      metrics.StandbyLoad(false);
      LOG(WARNING) << "standby: " << o.export_root << "/" << best << " not loaded ahead: " << e.what();
    }
  }

  // The watcher: a new LATEST is opened beside the served version, then swapped in.
  void Watch() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      wake.wait_for(lock, std::chrono::duration<double>(o.reload_poll_seconds));
      if (stopping) break;
      const std::string current = served->version, last_refused = refused;
      lock.unlock();
      std::string latest;
      try {
        latest = ReadLatest(o.export_root);
      } catch (const UserError& e) {
        LOG_EVERY_N(WARNING, 50) << e.what();
      }
      std::shared_ptr<const Served> next;
      if (!latest.empty() && latest != current && latest != last_refused) {
        if ((next = TakeStandby(latest))) {
          metrics.Reload(Metrics::Loaded::kStandby);
          LOG(INFO) << "serving " << o.export_root << "/" << latest << " from the standby (was " << current << ")";
        } else {
          standby.reset();  // two versions at most: the served one and the one loading
          try {
            next = Open(latest);
            metrics.Reload(Metrics::Loaded::kCold);
            LOG(INFO) << "serving " << o.export_root << "/" << latest << " (was " << current << ")";
          } catch (const std::exception& e) {  // a damaged version, or one too large for the memory left
            metrics.Reload(Metrics::Loaded::kRefused);
            LOG(ERROR) << "not serving " << o.export_root << "/" << latest << ": " << e.what() << "; " << current << " stays";
          }
        }
      } else if (o.standby && latest == current) {
        try {
          LoadAhead(current);
        } catch (const std::exception& e) {  // the root unreadable for a moment, say
          LOG_EVERY_N(WARNING, 50) << "standby: " << e.what();
        }
      }
      lock.lock();
      if (next) {
        // The old version is let go outside the lock (freeing a large one takes a while), by the
        // last request still on it or here.
        next.swap(served);
        refused.clear();
      } else if (latest == current) {
        refused.clear();  // LATEST came back: a refused version is tried again when it is named again
      } else if (!latest.empty()) {
        refused = latest;
      }
      if (next) {  // the version served until now
        lock.unlock();
        if (o.standby) standby = std::move(next);  // a rollback's target (the one it replaces goes here)
        next.reset();
        lock.lock();
      }
    }
  }

  void Answer(const std::string& endpoint, httplib::Response& res,
              const std::function<std::string(const std::shared_ptr<const Served>&)>& answer) {
    const auto start = Clock::now();
    metrics.in_flight.fetch_add(1);
    const std::shared_ptr<const Served> v = Current();
    int status = 200;
    try {
      std::string body = answer(v);
      if (endpoint == "recommend") {  // query --json's answer, and the server's time
        body.pop_back();
        Appendf(body, ", \"server_ms\": %.3f}", std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
      res.set_content(body, "application/json");
    } catch (const HttpError& e) {
      status = e.status;
      res.set_content(ErrorJson(e.what()), "application/json");
    } catch (const UserError& e) {
      status = StatusOf(e.what());
      res.set_content(ErrorJson(e.what()), "application/json");
    } catch (const std::exception& e) {
      status = 500;
      LOG(ERROR) << endpoint << ": " << e.what();
      res.set_content(ErrorJson(std::string("internal error: ") + e.what()), "application/json");
    }
    res.status = status;
    metrics.in_flight.fetch_sub(1);
    metrics.Record(endpoint, status, std::chrono::duration<double>(Clock::now() - start).count());
  }

  // A request on its own (explanations; batching off), or in the batcher's next batch.
  RecommendResponse Recommend(const RecommendRequest& request, const std::shared_ptr<const Served>& v) {
    if (!batcher || request.explain) return v->rec->Recommend(request);
    RecommendResult r = batcher->Submit(request, v);
    if (!r.error.empty()) throw UserError(r.error);
    return std::move(r.response);
  }

  // The item's record in the served version.
  static std::string ItemJson(const Served& v, const std::string& raw) {
    const int64_t id = v.rec->FindItem(raw);
    if (id < 0) Fail("unknown item id ", Quote(raw), " (not in export ", v.version, ")");
    std::string categories = "[";
    for (const std::string& c : v.rec->item_categories(id)) categories += (categories.size() > 1 ? ", " : "") + JsonEscape(c);
    JsonObject out;
    out.Add("item", raw).Add("title", v.rec->item_title(id)).AddRaw("categories", categories + "]").Add("version", v.version);
    const std::optional<bool> trained = v.rec->item_trained(id);
    if (trained) out.Add("trained", *trained);
    return out.str();
  }

  // POST /v1/search: a router's queries over this server's shards.
  std::string SearchJson(const Served& v, const std::string& body) const {
    if (remote) Fail("this server is a router (--route): it has no index to search");
    const JsonValue j = JsonValue::Parse(body, "search body");
    // A member of the body of the given type, else a UserError naming it.
    auto member = [](const JsonValue& obj, const std::string& field, JsonValue::Type type, const char* what) -> const JsonValue& {
      if (obj.type != JsonValue::kObject || !obj.has(field) || obj.at(field).type != type) Fail(field, ": expected ", what);
      return obj.at(field);
    };
    const std::string& version = member(j, "version", JsonValue::kString, "the export version (a string)").string;
    if (version != v.version) Fail("version ", Quote(version), " is not served here (", v.version, " is)");
    const JsonValue& k_value = member(j, "k", JsonValue::kNumber, "an integer");
    const int64_t k = k_value.is_integer ? k_value.exact : 0, dim = v.rec->manifest().dim;
    if (k < 1 || k > o.limits.max_k) Fail("k: expected 1 to ", o.limits.max_k);
    const std::vector<JsonValue>& queries = member(j, "queries", JsonValue::kArray, "an array of {vector, exclude}").array;
    if (queries.empty() || queries.size() > 4096) Fail("queries: expected 1 to 4096, got ", queries.size());
    std::vector<float> matrix;
    std::vector<std::unordered_set<int64_t>> exclude;
    for (const JsonValue& q : queries) {
      const std::vector<JsonValue>& vec = member(q, "vector", JsonValue::kArray, "an array of numbers").array;
      if (static_cast<int64_t>(vec.size()) != dim) Fail("queries: a vector of ", vec.size(), " values; export ", v.version, " has ", dim);
      for (const JsonValue& x : vec) {
        if (x.type != JsonValue::kNumber) Fail("vector: expected numbers");
        matrix.push_back(static_cast<float>(x.number));
      }
      auto& ex = exclude.emplace_back();
      for (const JsonValue& id : member(q, "exclude", JsonValue::kArray, "an array of item ids").array) {
        if (!id.is_integer) Fail("exclude: expected integer item ids");
        ex.insert(id.exact);
      }
    }
    const auto hits = v.rec->index().SearchMany(matrix.data(), static_cast<int64_t>(queries.size()), k, exclude, /*threads=*/0);
    std::string out = "{\"version\": " + JsonEscape(v.version) + ", \"search\": " + JsonEscape(v.rec->index().name()) + ", \"hits\": [";
    for (size_t i = 0; i < hits.size(); ++i) {
      if (i) out += ", ";
      AppendHits(out, hits[i]);
    }
    return out + "]}";
  }

  // Items whose raw id is `q` or whose title holds it (ignoring case), at most `limit`, in id order.
  static std::string ItemSearchJson(const Served& v, const std::string& q, const std::string& limit_text) {
    const std::optional<int64_t> limit = limit_text.empty() ? std::optional<int64_t>(20) : ParseInt64(limit_text);
    if (!limit || *limit < 1 || *limit > 1000) Fail("limit: expected 1 to 1000, got ", Quote(limit_text));
    if (q.empty() || q.size() > 200) Fail("q: expected 1 to 200 characters of a title or an item id");
    // Compared in place, case folded byte by byte: no copy of each of the catalogue's titles.
    auto same = [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b)); };
    auto holds = [&](const std::string& title) { return std::search(title.begin(), title.end(), q.begin(), q.end(), same) != title.end(); };
    std::string arr = "[";
    int64_t found = 0;
    const int64_t exact = v.rec->FindItem(q);
    auto add = [&](int64_t id) {
      JsonObject o;
      o.Add("item", v.rec->item_id(id)).Add("title", v.rec->item_title(id));
      arr += (found++ ? ", " : "") + o.str();
    };
    if (exact >= 0) add(exact);
    for (int64_t id = 0; id < v.rec->manifest().num_items && found < *limit; ++id) {
      if (id != exact && holds(v.rec->item_title(id))) add(id);
    }
    JsonObject out;
    out.Add("version", v.version).AddRaw("items", arr + "]");
    return out.str();
  }

  // POST /v1/events: appended to the event log, answered once on disk.
  std::string AppendEvents(const std::string& body) {
    if (!events) throw HttpError(404, "this server takes no events: start it with --event-log DIR");
    const std::vector<LogEvent> got = ParseEventsBody(body, o.max_events_per_request);
    try {
      events->Append(got);
    } catch (const UserError& e) {  // the disk, not the request: retry later
      LOG(ERROR) << "POST /v1/events: " << e.what();
      throw HttpError(503, std::string("the event log cannot take events now: ") + e.what());
    }
    recent->Add(got);  // durable first: an answer never reads an event the log lost
    return JsonObject().Add("appended", static_cast<int64_t>(got.size())).str();
  }

  // Publishes the event log's open segment once it is events_roll_seconds old.
  void Roll() {
    std::unique_lock<std::mutex> lock(mu);
    const double poll = std::min(0.2, o.events_roll_seconds / 4);
    while (!stopping) {
      wake.wait_for(lock, std::chrono::duration<double>(poll));
      lock.unlock();
      try {
        events->MaybeRoll();
      } catch (const std::exception& e) {
        LOG_EVERY_N(ERROR, 50) << "event log " << o.events_dir << ": " << e.what();
      }
      lock.lock();
    }
  }

  void Routes() {
    http.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("events", res, [&](const std::shared_ptr<const Served>&) { return AppendEvents(req.body); });
    });
    http.Post("/v1/recommend", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("recommend", res, [&](const std::shared_ptr<const Served>& v) {
        return RecommendResponseJson(Recommend(ParseRecommendBody(req.body, o.limits), v), /*with_user_vector=*/false);
      });
    });
    http.Get(R"(/v1/items/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("items", res, [&](const std::shared_ptr<const Served>& v) { return ItemJson(*v, req.matches[1]); });
    });
    http.Get("/v1/items", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("items", res, [&](const std::shared_ptr<const Served>& v) {
        return ItemSearchJson(*v, req.get_param_value("q"), req.get_param_value("limit"));
      });
    });
    http.Post("/v1/search", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("search", res, [&](const std::shared_ptr<const Served>& v) { return SearchJson(*v, req.body); });
    });
    http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      Answer("healthz", res, [this](const std::shared_ptr<const Served>& v) {
        const int64_t count = static_cast<int64_t>(v->rec->manifest().item_shards.size());
        std::string shards = "[";
        for (int64_t i = 0; i < count; ++i) {
          if (o.shards.empty() || std::find(o.shards.begin(), o.shards.end(), i) != o.shards.end()) {
            shards += (shards.size() > 1 ? ", " : "") + std::to_string(i);
          }
        }
        JsonObject out;
        out.Add("status", "ok").Add("version", v->version);
        if (!remote) out.Add("search", v->rec->index().name()).AddRaw("shards", shards + "]").Add("item_shards", count);
        return out.str();
      });
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      const std::shared_ptr<const Served> v = Current();
      std::string text = metrics.Text(*v);
      if (events) {
        Appendf(text, "# HELP shardrec_events_appended_total Events appended to the event log.\n"
                      "# TYPE shardrec_events_appended_total counter\nshardrec_events_appended_total %lld\n"
                      "# HELP shardrec_event_segments_total Event log segments published.\n"
                      "# TYPE shardrec_event_segments_total counter\nshardrec_event_segments_total %lld\n",
                static_cast<long long>(events->events()), static_cast<long long>(events->segments()));
        Appendf(text, "# HELP shardrec_recent_events Events held for the histories of the next answers.\n"
                      "# TYPE shardrec_recent_events gauge\nshardrec_recent_events %lld\n",
                static_cast<long long>(recent->events()));
      }
      res.set_content(text, "text/plain; version=0.0.4");
    });
    http.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(ConsolePage()), "text/html; charset=utf-8");
      metrics.Record("console", 200, 0);
    });
    // A connection over the queue's bound: 503 before any routing, and the connection closed.
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!Overloaded()) return httplib::Server::HandlerResponse::Unhandled;
      res.status = 503;
      res.set_header("Connection", "close");
      res.set_header("Retry-After", "1");
      res.set_content(ErrorJson("server busy: every request thread is taken and " + std::to_string(o.max_queued) +
                                " connections wait; retry"), "application/json");
      metrics.Record(EndpointOf(req.path), 503, 0);
      return httplib::Server::HandlerResponse::Handled;
    });
    // What httplib refuses itself (a body over the limit, an unknown path or method, a malformed
    // request): a one-line JSON reason, counted.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours, counted already
      std::string reason = "bad request (HTTP " + std::to_string(res.status) + ")";
      if (res.status == 413) reason = "request body over " + std::to_string(o.max_body_bytes) + " bytes";
      if (res.status == 404) reason = "no such endpoint: " + Printable(req.method + " " + req.path, 200) +
                                      " (POST /v1/recommend, GET /v1/items/ID, /healthz, /metrics, /)";
      res.set_content(ErrorJson(reason), "application/json");
      metrics.Record(EndpointOf(req.path), res.status, 0);
      return httplib::Server::HandlerResponse::Handled;
    }));
  }
};

void ParseServeTopology(const std::string& shards, const std::string& route, ServerOptions& o) {
  for (const auto part : shards.empty() ? std::vector<std::string_view>() : SplitText(shards, ",")) {
    const auto s = ParseInt64(Trim(part));
    if (!s || *s < 0) Fail("--shards: expected item shard numbers I,J,..., got ", Quote(shards));
    o.shards.push_back(*s);
  }
  for (const auto part : route.empty() ? std::vector<std::string_view>() : SplitText(route, ",")) o.route.emplace_back(Trim(part));
}

std::unique_ptr<RecommendServer> RecommendServer::Start(ServerOptions o) {
  if (o.export_root.empty()) Fail("--export-root is required (the export root whose LATEST is served)");
  if (!o.route.empty() && !o.shards.empty()) Fail("--route and --shards: a router holds no shards (give one or the other)");
  if (o.threads < 1 || o.threads > 1024) Fail("--threads: expected 1 to 1024, got ", o.threads);
  if (o.port < 0 || o.port > 65535) Fail("--port: expected 0 (any free port) to 65535, got ", o.port);
  if (o.max_queued < 0 || o.max_queued > 1 << 20) Fail("--max-queued: expected 0 to 1048576, got ", o.max_queued);
  if (o.read_timeout_s < 1 || o.read_timeout_s > 3600) Fail("--read-timeout: expected 1 to 3600 seconds, got ", o.read_timeout_s);
  if (o.batch_max < 1 || o.batch_max > 4096) Fail("--batch-max: expected 1 to 4096, got ", o.batch_max);
  if (!(o.batch_delay_ms >= 0 && o.batch_delay_ms <= 1000)) Fail("--batch-delay-ms: expected 0 to 1000, got ", o.batch_delay_ms);
  if (!(o.events_roll_seconds > 0 && o.events_roll_seconds <= 3600)) {
    Fail("--event-roll-seconds: expected more than 0 and at most 3600, got ", o.events_roll_seconds);
  }
  const std::string latest = ReadLatest(o.export_root);
  if (latest.empty()) Fail(o.export_root, ": no LATEST; publish a version first (shardrec publish)");
  std::unique_ptr<RecommendServer> s(new RecommendServer());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  m.o = std::move(o);
  if (!m.o.route.empty()) m.remote = ConnectRoute(m.o.route, m.o.route_timeout_s);
  if (!m.o.events_dir.empty()) m.recent = std::make_shared<RecentEvents>(RecentEvents::Options{});
  m.served = m.Open(latest);
  if (m.remote) CheckCoverage(*m.remote, m.served->rec->manifest());
  m.http.new_task_queue = [&o = m.o] { return new BoundedQueue(static_cast<size_t>(o.threads), static_cast<size_t>(o.max_queued)); };
  m.http.set_payload_max_length(m.o.max_body_bytes);
  m.http.set_read_timeout(m.o.read_timeout_s, 0);
  m.http.set_tcp_nodelay(true);  // answers are small: no waiting for the client's ACK
  m.http.set_keep_alive_max_count(10000);  // requests per connection before it is closed (reconnects cost)
  if (m.o.batch_max > 1) {
    // As many batches at once as cores: one encodes (the user tower takes one batch at a time)
    // while another searches.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    m.batcher = std::make_unique<Batcher>(m.o.batch_max, m.o.batch_delay_ms, cores, m.metrics);
    // The server's parallelism is its batches; a torch thread team per batch on top of them only
    // contends for the same cores.
    at::set_num_threads(1);
  }
  if (!m.o.events_dir.empty()) {
    try {
      m.events = std::make_unique<EventLogWriter>(m.o.events_dir, m.o.events_producer,
                                                  EventLogWriter::Options{.roll_seconds = m.o.events_roll_seconds});
    } catch (const UserError& e) {
      Fail("--event-log ", m.o.events_dir, " --event-producer ", m.o.events_producer, ": ", e.what());
    }
  }
  m.Routes();
  m.port = m.o.port == 0 ? m.http.bind_to_any_port(m.o.host) : (m.http.bind_to_port(m.o.host, m.o.port) ? m.o.port : -1);
  if (m.port < 0) Fail(m.o.host, ":", m.o.port, ": cannot listen there (in use, or not an address of this machine)");
  RaiseBacklog(m.port);
  m.listener = std::thread([&m] { m.http.listen_after_bind(); });
  m.watcher = std::thread([&m] { m.Watch(); });
  if (m.events) m.roller = std::thread([&m] { m.Roll(); });
  return s;
}

RecommendServer::~RecommendServer() { Stop(); }

int RecommendServer::port() const { return impl_->port; }

std::string RecommendServer::version() const { return impl_->Current()->version; }

void RecommendServer::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->http.stop();  // the thread pool finishes the requests it has
  if (impl_->listener.joinable()) impl_->listener.join();
  if (impl_->watcher.joinable()) impl_->watcher.join();
  if (impl_->roller.joinable()) impl_->roller.join();
  impl_->events.reset();  // the open segment published
  impl_->batcher.reset();  // every request answered: the listener's threads are gone (their batches with them)
}

}  // namespace shardrec
