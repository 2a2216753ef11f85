// `shardrec serve` (docs/serving.md): real-time recommendations over HTTP/1.1 + JSON from the version
// an export root serves, swapped without a pause when ROOT/LATEST moves.
//
//   POST /v1/recommend   {"user": RAW_ID} or {"history": [{"item": RAW_ID, "ts": UNIX_S}, ...]},
//                        optional "at", "k", "exclude_history", "explain" (io/recommend_request.h):
//                        `shardrec query --json`'s answer for the same request, plus "server_ms"
//   GET  /v1/items/ID    the item's title, categories and whether the model trained a row for it
//   GET  /healthz        {"status": "ok", "version": V}
//   GET  /metrics        Prometheus text: requests by endpoint and code, latency histogram,
//                        requests in flight, batch sizes, the served version and when it was loaded
//   GET  /               the console: a page to query the server from a browser
//   POST /v1/search      (for a router) {"version", "k", "queries": [{"vector", "exclude"}]}: the
//                        top k of each query over this server's shards, {"version", "search",
//                        "hits": [[{"id", "score"}]]}; 409 when another version is served
//
// Hot reload: a watcher polls ROOT/LATEST; a new version is opened beside the served one (in memory:
// Recommender's in_memory) and swapped in atomically; requests in flight finish on the version they
// started with (each holds it). A version that fails to open is refused with a log line and the
// served one stays.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "serve/recommender.h"

namespace shardrec {

struct ServerOptions {
  std::string export_root;        // ROOT (its LATEST is served)
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (port() says which)
  int threads = 32;               // connection threads (a keep-alive connection holds one)
  int max_queued = 1024;          // connections waiting for a thread; more are answered 503
  int read_timeout_s = 5;         // a client silent this long mid-request is cut off
  double reload_poll_seconds = 0.2;
  size_t max_body_bytes = 1 << 20;
  RequestLimits limits;           // k and history length (else 400)
  // Batching: requests (without `explain`) that arrive together are answered by one user-tower
  // pass and one batched search, at most batch_max at a time; a batch waits up to batch_delay_ms
  // for more after its first request (0: only the requests that arrived while the last batch ran).
  // batch_max 1: every request on its own thread.
  int batch_max = 64;
  double batch_delay_ms = 0;
  // A second version kept loaded beside the served one (docs/serving.md): the one served before the
  // last swap, or a newer one loaded as soon as its directory is complete, so that LATEST moving to
  // it swaps without a load. Twice the memory of one version at all times (false: only during a load).
  bool standby = true;
  bool exact = false;             // exact search even where the export has an index
  // More than one machine (docs/serving.md): a shard server loads only these item shards of the
  // export (empty: all) and answers over them; a router (`route`: the shard servers' HOST:PORT)
  // loads no index, runs the user tower and merges the shard servers' top k (POST /v1/search).
  std::vector<int64_t> shards;
  std::vector<std::string> route;
  int route_timeout_s = 10;       // a shard server's answer to the router
  // The event log (io/event_log.h): with a directory, POST /v1/events appends to it as producer
  // `events_producer`, each answer sent once its events are on disk; the open segment is published
  // every `events_roll_seconds` (and at 64 MiB). Empty: POST /v1/events is 404.
  std::string events_dir;
  std::string events_producer = "serve";
  double events_roll_seconds = 2;
  size_t max_events_per_request = 10000;
  uint64_t seed = 7;
  // The model configuration of an export's source run (for histories, `at` and explanations).
  std::function<ModelConfig(const std::string& model_dir)> model_config;
};

// --shards "I,J,..." and --route "HOST:PORT,..." into `o` (a UserError names the flag at fault).
void ParseServeTopology(const std::string& shards, const std::string& route, ServerOptions& o);

class RecommendServer {
 public:
  // Opens the served version and starts listening. UserError if there is nothing to serve, the
  // version cannot be opened, or the address cannot be bound.
  static std::unique_ptr<RecommendServer> Start(ServerOptions options);
  ~RecommendServer();  // Stop()
  RecommendServer(const RecommendServer&) = delete;
  RecommendServer& operator=(const RecommendServer&) = delete;

  int port() const;
  std::string version() const;  // the version served now
  // Stops accepting connections, lets requests in flight finish, stops the watcher. Idempotent.
  void Stop();

 private:
  RecommendServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec
