#include "serve/server.h"

#include <httplib.h>

#include <glog/logging.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/json.h"
#include "common/strings.h"
#include "io/export_format.h"

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
  double loaded_unix = 0;
};

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
  void Reload(bool ok) { (ok ? reloads_ok_ : reloads_refused_).fetch_add(1); }
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
    Appendf(out, "# HELP shardrec_requests_in_flight Requests being answered now.\n# TYPE shardrec_requests_in_flight gauge\n"
                 "shardrec_requests_in_flight %lld\n", static_cast<long long>(in_flight.load()));
    Appendf(out, "# HELP shardrec_served_version_info The export version answering requests.\n"
                 "# TYPE shardrec_served_version_info gauge\nshardrec_served_version_info{version=\"%s\"} 1\n",
            served.version.c_str());
    Appendf(out, "# HELP shardrec_served_version_loaded_seconds When the served version was loaded (unix time).\n"
                 "# TYPE shardrec_served_version_loaded_seconds gauge\nshardrec_served_version_loaded_seconds %.3f\n",
            served.loaded_unix);
    Appendf(out, "# HELP shardrec_reloads_total Versions LATEST moved to: loaded, or refused (the served one stayed).\n"
                 "# TYPE shardrec_reloads_total counter\nshardrec_reloads_total{outcome=\"loaded\"} %lld\n"
                 "shardrec_reloads_total{outcome=\"refused\"} %lld\n",
            static_cast<long long>(reloads_ok_.load()), static_cast<long long>(reloads_refused_.load()));
    return out;
  }

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size()> counts{};
    double sum = 0;
    int64_t count = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::atomic<int64_t> reloads_ok_{0}, reloads_refused_{0};
};

std::string ErrorJson(const std::string& message) {
  JsonObject o;
  o.Add("error", message);
  return o.str();
}

// 404 for an id the served version does not know, 400 for any other mistake in the request.
int StatusOf(const std::string& message) {
  return message.find("unknown user id") != std::string::npos || message.find("unknown item id") != std::string::npos ? 404 : 400;
}

}  // namespace

RecommendRequest ParseRecommendBody(const std::string& body, int64_t max_k) {
  const JsonValue j = JsonValue::Parse(body, "request body");
  if (j.type != JsonValue::kObject) Fail("request body: expected a JSON object");
  RecommendRequest q;
  for (const auto& [key, v] : j.object) {
    if (key == "user") {
      if (v.type != JsonValue::kString || v.string.empty()) Fail("user: expected a raw user id (a non-empty string)");
      q.user = v.string;
    } else if (key == "history") {
      if (v.type != JsonValue::kArray) Fail("history: expected an array of {\"item\": RAW_ID, \"ts\": UNIX_SECONDS}");
      for (size_t i = 0; i < v.array.size(); ++i) {
        const JsonValue& e = v.array[i];
        const std::string where = "history[" + std::to_string(i) + "]";
        if (e.type == JsonValue::kString) {
          q.history.push_back(e.string);
          continue;
        }
        if (e.type != JsonValue::kObject || !e.has("item") || e.at("item").type != JsonValue::kString) {
          Fail(where, ": expected {\"item\": RAW_ID, \"ts\": UNIX_SECONDS} or a raw item id");
        }
        q.history.push_back(e.at("item").string);
        if (e.has("ts")) q.timestamps.push_back(e.at("ts").integer());
      }
      if (!q.timestamps.empty() && q.timestamps.size() != q.history.size()) {
        Fail("history: give \"ts\" for every item or for none (", q.timestamps.size(), " of ", q.history.size(), ")");
      }
    } else if (key == "at") {
      q.at = v.integer();
    } else if (key == "k") {
      q.k = v.integer();
      if (q.k < 1 || q.k > max_k) Fail("k: expected 1 to ", max_k, ", got ", q.k);
    } else if (key == "explain") {
      if (v.type != JsonValue::kBool) Fail("explain: expected true or false");
      q.explain = v.boolean;
    } else {
      Fail("request body: unknown field ", Quote(key), " (user, history, at, k, explain)");
    }
  }
  if (q.user.empty() == q.history.empty()) Fail("request body: give exactly one of \"user\" and a non-empty \"history\"");
  return q;
}

struct RecommendServer::Impl {
  ServerOptions o;
  httplib::Server http;
  std::thread listener, watcher;
  Metrics metrics;
  mutable std::mutex mu;  // served, refused, stopping
  std::shared_ptr<const Served> served;
  std::string refused;  // the last version that failed to open (not tried again until LATEST moves)
  bool stopping = false;
  std::condition_variable wake;
  int port = 0;

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
    auto s = std::make_shared<Served>();
    s->rec = Recommender::Open(ro);
    s->version = s->rec->manifest().version;
    s->loaded_unix = UnixNow();
    return s;
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
        try {
          next = Open(latest);
          metrics.Reload(true);
          LOG(INFO) << "serving " << o.export_root << "/" << latest << " (was " << current << ")";
        } catch (const UserError& e) {
          metrics.Reload(false);
          LOG(ERROR) << "not serving " << o.export_root << "/" << latest << ": " << e.what() << "; " << current << " stays";
        }
      }
      lock.lock();
      if (next) {
        served = next;
        refused.clear();
      } else if (latest == current) {
        refused.clear();  // LATEST came back: a refused version is tried again when it is named again
      } else if (!latest.empty()) {
        refused = latest;
      }
    }
  }

  void Answer(const std::string& endpoint, httplib::Response& res, const std::function<std::string(const Served&)>& answer) {
    const auto start = Clock::now();
    metrics.in_flight.fetch_add(1);
    const std::shared_ptr<const Served> v = Current();
    int status = 200;
    try {
      std::string body = answer(*v);
      if (endpoint == "recommend") {  // query --json's answer, and the server's time
        body.pop_back();
        Appendf(body, ", \"server_ms\": %.3f}", std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
      res.set_content(body, "application/json");
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

  void Routes() {
    http.Post("/v1/recommend", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("recommend", res, [&](const Served& v) {
        return RecommendResponseJson(v.rec->Recommend(ParseRecommendBody(req.body, o.max_k)), /*with_user_vector=*/false);
      });
    });
    http.Get(R"(/v1/items/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      Answer("items", res, [&](const Served& v) {
        const std::string raw = req.matches[1];
        const int64_t id = v.rec->FindItem(raw);
        if (id < 0) Fail("unknown item id ", Quote(raw), " (not in export ", v.version, ")");
        JsonObject out;
        out.Add("item", raw).Add("title", v.rec->item_title(id)).Add("version", v.version).Add("trained", true);
        return out.str();
      });
    });
    http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      Answer("healthz", res, [](const Served& v) {
        JsonObject out;
        out.Add("status", "ok").Add("version", v.version);
        return out.str();
      });
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      const std::shared_ptr<const Served> v = Current();
      res.set_content(metrics.Text(*v), "text/plain; version=0.0.4");
    });
  }
};

std::unique_ptr<RecommendServer> RecommendServer::Start(ServerOptions o) {
  if (o.threads < 1 || o.threads > 1024) Fail("--threads: expected 1 to 1024, got ", o.threads);
  if (o.port < 0 || o.port > 65535) Fail("--port: expected 0 (any free port) to 65535, got ", o.port);
  const std::string latest = ReadLatest(o.export_root);
  if (latest.empty()) Fail(o.export_root, ": no LATEST; publish a version first (shardrec publish)");
  std::unique_ptr<RecommendServer> s(new RecommendServer());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  m.o = std::move(o);
  m.served = m.Open(latest);
  m.http.new_task_queue = [n = m.o.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  m.http.set_payload_max_length(m.o.max_body_bytes);
  m.Routes();
  m.port = m.o.port == 0 ? m.http.bind_to_any_port(m.o.host) : (m.http.bind_to_port(m.o.host, m.o.port) ? m.o.port : -1);
  if (m.port < 0) Fail(m.o.host, ":", m.o.port, ": cannot listen there (in use, or not an address of this machine)");
  m.listener = std::thread([&m] { m.http.listen_after_bind(); });
  m.watcher = std::thread([&m] { m.Watch(); });
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
}

}  // namespace shardrec
