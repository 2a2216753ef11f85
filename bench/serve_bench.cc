// `shardrec serve` under load on loopback: requests/s and p50 / p99 / p99.9 latency for 1 and 16
// concurrent clients (keep-alive connections), with batching on and off, and during hot reloads;
// beside them, in the same run, the floor: the same requests answered in-process by the same
// Recommender (the user tower plus the index search, no HTTP), with torch's default threads and
// with one (as the server runs it), so the server's cost is a ratio; and the ratio again from the
// floor and one client measured in turns (drift on a shared machine cancels).
//
//   serve_bench --export-root ROOT [--requests 4000 --clients 1,16 --history 20 --k 10
//               --reload-to VERSION --reloads 10 --json OUT]
//
// ROOT/LATEST is served; every request is a history of --history items (with timestamps) the user
// tower encodes, drawn from the export's items with a fixed seed. Every load loop sends a fixed
// number of requests to 127.0.0.1 and stops by itself. With --reload-to, LATEST is moved between
// the served version and VERSION --reloads times while 16 clients send requests, once loading each
// version as LATEST moves and once from the standby (loaded ahead): no request may fail, and each
// swap from the standby must answer within 2 s (exit 1 otherwise); the loads' swap times are reported. bench/serve_bench.sh makes
// the exports (100k and 1M items; Flat, IVF, HNSW) and runs this on each.
#include <httplib.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/json.h"
#include "common/rng.h"
#include "common/strings.h"
#include "io/export_format.h"
#include "launch/commands.h"
#include "serve/recommender.h"
#include "serve/server.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Options {
  std::string root, reload_to, json_out;
  int64_t requests = 4000, history = 20, k = 10, reloads = 10;
  std::vector<int64_t> clients = {1, 16};
};

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) Fail(a, ": expected a value");
    const std::string v = argv[++i];
    auto number = [&](int64_t lo, int64_t hi) {
      auto n = ParseInt64(v);
      if (!n || *n < lo || *n > hi) Fail(a, ": expected ", lo, " to ", hi, ", got ", Quote(v));
      return *n;
    };
    if (a == "--export-root") {
      o.root = v;
    } else if (a == "--requests") {
      o.requests = number(16, 10'000'000);
    } else if (a == "--history") {
      o.history = number(1, 10000);
    } else if (a == "--k") {
      o.k = number(1, 10000);
    } else if (a == "--reloads") {
      o.reloads = number(1, 1000);
    } else if (a == "--reload-to") {
      o.reload_to = v;
    } else if (a == "--json") {
      o.json_out = v;
    } else if (a == "--clients") {
      o.clients.clear();
      for (auto c : SplitText(v, ",")) {
        auto n = ParseInt64(c);
        if (!n || *n < 1 || *n > 256) Fail("--clients: expected numbers 1 to 256, got ", Quote(v));
        o.clients.push_back(*n);
      }
    } else {
      Fail("unknown flag ", Quote(a), " (--export-root --requests --clients --history --k --reload-to --reloads --json)");
    }
  }
  if (o.root.empty()) Fail("--export-root is required");
  return o;
}

// The bench's requests: histories of the export's items, timestamps ten minutes apart.
std::vector<RecommendRequest> MakeRequests(const Recommender& rec, const Options& o) {
  Rng rng(11);
  std::vector<RecommendRequest> out(static_cast<size_t>(o.requests));
  const int64_t n = rec.manifest().num_items, now = 1'700'000'000;
  for (RecommendRequest& q : out) {
    q.k = o.k;
    for (int64_t j = 0; j < o.history; ++j) {
      q.history.push_back(rec.item_id(static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n)))));
      q.timestamps.push_back(now - (o.history - j) * 600);
    }
  }
  return out;
}

std::string Body(const RecommendRequest& q) {
  std::string h = "[";
  for (size_t j = 0; j < q.history.size(); ++j) {
    JsonObject e;
    e.Add("item", q.history[j]).Add("ts", q.timestamps[j]);
    h += (j ? ", " : "") + e.str();
  }
  JsonObject o;
  o.AddRaw("history", h + "]").Add("k", q.k);
  return o.str();
}

struct Result {
  std::string name;
  int64_t clients = 1, requests = 0, failed = 0;
  double seconds = 0, p50 = 0, p99 = 0, p999 = 0, mean_batch = 0;
  double qps() const { return static_cast<double>(requests) / seconds; }
};

Result Summarize(std::string name, int64_t clients, std::vector<double> ms, double seconds, int64_t failed) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))]; };
  return {.name = std::move(name), .clients = clients, .requests = static_cast<int64_t>(ms.size()), .failed = failed,
          .seconds = seconds, .p50 = at(0.5), .p99 = at(0.99), .p999 = at(0.999)};
}

void Print(const Result& r) {
  std::printf("%-34s %3lld clients %8lld requests %9.0f req/s   p50 %7.2f ms   p99 %7.2f ms   p99.9 %7.2f ms   failed %lld%s\n",
              r.name.c_str(), static_cast<long long>(r.clients), static_cast<long long>(r.requests), r.qps(), r.p50, r.p99,
              r.p999, static_cast<long long>(r.failed),
              r.mean_batch > 0 ? (" (mean batch " + std::to_string(r.mean_batch).substr(0, 4) + ")").c_str() : "");
  std::fflush(stdout);
}

// The floor: the requests answered one after another in-process.
Result Floor(const Recommender& rec, const std::vector<RecommendRequest>& requests) {
  for (size_t i = 0; i < std::min<size_t>(50, requests.size()); ++i) rec.Recommend(requests[i]);  // warm
  std::vector<double> ms;
  const auto start = Clock::now();
  for (const RecommendRequest& q : requests) {
    const auto t = Clock::now();
    rec.Recommend(q);
    ms.push_back(Ms(Clock::now() - t));
  }
  return Summarize("in-process floor (tower + search)", 1, ms, Ms(Clock::now() - start) / 1000, 0);
}

// A client as the load sends from: one keep-alive connection, TCP_NODELAY (a request is written in
// two parts: no waiting for the first one's ACK), 30 s to read an answer.
void KeepAlive(httplib::Client& cli) {
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  cli.set_read_timeout(30, 0);
}

// `clients` threads, each a keep-alive connection sending its share of `bodies` in turn.
Result Load(const std::string& name, int port, int64_t clients, const std::vector<std::string>& bodies, const std::atomic<bool>* until = nullptr) {
  std::vector<std::vector<double>> ms(static_cast<size_t>(clients));
  std::atomic<int64_t> failed{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int64_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      KeepAlive(cli);
      for (size_t i = static_cast<size_t>(c); until ? !until->load() : i < bodies.size(); i += static_cast<size_t>(clients)) {
        const auto t = Clock::now();
        auto res = cli.Post("/v1/recommend", bodies[i % bodies.size()], "application/json");
        ms[static_cast<size_t>(c)].push_back(Ms(Clock::now() - t));
        if (!res || res->status != 200) {
          if (failed.fetch_add(1) < 3) std::fprintf(stderr, "failed: %s\n", res ? res->body.c_str() : httplib::to_string(res.error()).c_str());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& v : ms) all.insert(all.end(), v.begin(), v.end());
  return Summarize(name, clients, all, Ms(Clock::now() - start) / 1000, failed.load());
}

// The ratio's two sides in turns: blocks of 50 requests answered in-process, then the same 50 sent
// to the server by one client, `total` requests each side; a machine whose speed drifts during
// the run (it does, by ±20%, on a shared 2-core machine) moves both sides alike; and 50 GET
// /healthz after each block, the HTTP round trip on its own (and each answer's server_ms, the
// handler's own time).
struct Sides {
  Result floor, server, server_side, healthz;
};
Sides Interleaved(const Recommender& rec, int port, const std::vector<RecommendRequest>& requests,
                                      const std::vector<std::string>& bodies, int64_t total) {
  httplib::Client cli("127.0.0.1", port);
  KeepAlive(cli);
  std::vector<double> floor_ms, server_ms, server_side_ms, healthz_ms;
  double floor_s = 0, server_s = 0, healthz_s = 0;
  int64_t failed = 0;
  constexpr int64_t kBlock = 50;
  for (int64_t b = 0; b < total; b += kBlock) {
    const auto t0 = Clock::now();
    for (int64_t i = b; i < std::min(total, b + kBlock); ++i) {
      const auto t = Clock::now();
      rec.Recommend(requests[static_cast<size_t>(i) % requests.size()]);
      floor_ms.push_back(Ms(Clock::now() - t));
    }
    const auto t1 = Clock::now();
    for (int64_t i = b; i < std::min(total, b + kBlock); ++i) {
      const auto t = Clock::now();
      auto res = cli.Post("/v1/recommend", bodies[static_cast<size_t>(i) % bodies.size()], "application/json");
      server_ms.push_back(Ms(Clock::now() - t));
      failed += !res || res->status != 200;
      const size_t at = res ? res->body.rfind("\"server_ms\": ") : std::string::npos;
      if (at != std::string::npos) server_side_ms.push_back(std::atof(res->body.c_str() + at + 13));
    }
    const auto t2 = Clock::now();
    for (int64_t i = b; i < std::min(total, b + kBlock); ++i) {  // the HTTP round trip alone
      const auto t = Clock::now();
      auto res = cli.Get("/healthz");
      healthz_ms.push_back(Ms(Clock::now() - t));
      failed += !res || res->status != 200;
    }
    floor_s += Ms(t1 - t0) / 1000;
    server_s += Ms(t2 - t1) / 1000;
    healthz_s += Ms(Clock::now() - t2) / 1000;
  }
  return {Summarize("floor, interleaved, 1 torch thread", 1, floor_ms, floor_s, 0),
          Summarize("server, interleaved (batching on)", 1, server_ms, server_s, failed),
          Summarize("  its server_ms (handler's own time)", 1, server_side_ms, server_s, 0),
          Summarize("GET /healthz, interleaved", 1, healthz_ms, healthz_s, 0)};
}

double MetricValue(int port, const std::string& name) {
  httplib::Client cli("127.0.0.1", port);
  auto res = cli.Get("/metrics");
  if (!res) return 0;
  const size_t at = res->body.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::atof(res->body.c_str() + at + name.size() + 2);
}

void WriteLatest(const std::string& root, const std::string& version) {
  WriteFileAtomically(root + "/LATEST", version + "\n");
}

// 16 clients while LATEST moves `reloads` times. With the standby (so.standby), the version moved
// to next is loaded ahead (waited for, up to a minute) and every swap is one without a load; without
// it every move loads the version.
Result DuringReloads(ServerOptions so, const Options& o, const std::vector<std::string>& bodies, double* slowest_swap) {
  const std::string first = ReadLatest(o.root);
  auto server = RecommendServer::Start(so);
  const auto started = Clock::now();
  while (so.standby && MetricValue(server->port(), "shardrec_standby_loads_total{outcome=\"loaded\"}") < 1 &&
         Ms(Clock::now() - started) < 60000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::atomic<bool> done{false};
  std::thread mover([&] {
    *slowest_swap = 0;
    for (int64_t r = 0; r < o.reloads; ++r) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      const std::string next = r % 2 == 0 ? o.reload_to : first;
      const auto moved = Clock::now();
      WriteLatest(o.root, next);
      // Up to a minute: a move before the last one was served would time the wrong swap.
      while (server->version() != next && Ms(Clock::now() - moved) < 60000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      *slowest_swap = std::max(*slowest_swap, Ms(Clock::now() - moved) / 1000);
      std::printf("  reload %lld: LATEST -> %s, served after %.2f s\n", static_cast<long long>(r + 1), next.c_str(), Ms(Clock::now() - moved) / 1000);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    done = true;
  });
  Result r = Load(so.standby ? "during reloads, from the standby" : "during reloads, each loaded", server->port(), 16, bodies, &done);
  mover.join();
  WriteLatest(o.root, first);
  return r;
}

int Run(const Options& o) {
  RecommenderOptions ro{.export_dir = o.root, .model_config = cli::RunModelConfig, .in_memory = true};
  std::unique_ptr<Recommender> rec = Recommender::Open(ro);
  const ExportManifest m = rec->manifest();  // a copy: the Recommender goes before the servers start
  std::printf("export %s: %lld items, %lld dims, search %s; requests: histories of %lld items, k %lld\n", m.version.c_str(),
              static_cast<long long>(m.num_items), static_cast<long long>(m.dim), rec->index().name().c_str(),
              static_cast<long long>(o.history), static_cast<long long>(o.k));
  const std::vector<RecommendRequest> requests = MakeRequests(*rec, o);
  std::vector<std::string> bodies;
  for (const auto& q : requests) bodies.push_back(Body(q));
  std::vector<Result> results;
  const std::vector<RecommendRequest> floor_requests(requests.begin(), requests.begin() + std::min<int64_t>(o.requests, 2000));
  results.push_back(Floor(*rec, floor_requests));
  Print(results.back());
  // The server runs the user tower on one thread per batch (serve/server.cc): the same computation
  // in-process, its floor for the ratio.
  const int torch_threads = at::get_num_threads();
  at::set_num_threads(1);
  results.push_back(Floor(*rec, floor_requests));
  results.back().name = "in-process floor, 1 torch thread";
  Print(results.back());
  at::set_num_threads(torch_threads);
  const double floor_p50 = results.back().p50;
  double interleaved_ratio = 0;
  for (int batch : {64, 1}) {
    // No standby: loading one ahead would compete with the load being measured.
    ServerOptions so{.export_root = o.root, .port = 0, .threads = 64, .batch_max = batch, .standby = false,
                     .model_config = cli::RunModelConfig};
    auto server = RecommendServer::Start(so);
    Load("warm-up", server->port(), 4, std::vector<std::string>(bodies.begin(), bodies.begin() + 200));
    if (rec) {  // the batching server (torch on one thread from here on, as the server sets it)
      Sides sides = Interleaved(*rec, server->port(), requests, bodies, static_cast<int64_t>(floor_requests.size()));
      interleaved_ratio = sides.server.p50 / sides.floor.p50;
      for (Result* r : {&sides.floor, &sides.server, &sides.server_side, &sides.healthz}) {
        results.push_back(*r);
        Print(results.back());
      }
      rec.reset();  // one version in memory beside the server's from here on
    }
    for (int64_t c : o.clients) {
      const double batches = MetricValue(server->port(), "shardrec_batch_size_count");
      const double batched = MetricValue(server->port(), "shardrec_batch_size_sum");
      results.push_back(Load(batch > 1 ? "server, batching on" : "server, batching off", server->port(), c, bodies));
      const double n = MetricValue(server->port(), "shardrec_batch_size_count") - batches;
      if (n > 0) results.back().mean_batch = (MetricValue(server->port(), "shardrec_batch_size_sum") - batched) / n;
      Print(results.back());
    }
  }
  double slowest_loaded = 0, slowest_standby = 0;
  if (!o.reload_to.empty()) {
    for (bool standby : {false, true}) {
      ServerOptions so{.export_root = o.root, .port = 0, .threads = 64, .standby = standby, .model_config = cli::RunModelConfig};
      double& slowest = standby ? slowest_standby : slowest_loaded;
      results.push_back(DuringReloads(so, o, bodies, &slowest));
      Print(results.back());
      std::printf("  slowest swap: %.2f s after LATEST moved\n", slowest);
    }
  }
  for (const Result& r : results) {
    if (r.clients == 1 && r.name == "server, batching on") {
      std::printf("server / floor (1 torch thread) at one client (p50), measured apart: %.2fx\n", r.p50 / floor_p50);
    }
  }
  std::printf("server / floor at one client (p50), interleaved: %.2fx\n", interleaved_ratio);
  if (!o.json_out.empty()) {
    std::string arr = "[";
    for (const Result& r : results) {
      JsonObject j;
      j.Add("name", r.name).Add("clients", r.clients).Add("requests", r.requests).Add("failed", r.failed).Add("qps", r.qps());
      j.Add("p50_ms", r.p50).Add("p99_ms", r.p99).Add("p999_ms", r.p999).Add("mean_batch", r.mean_batch);
      arr += (arr.size() > 1 ? ", " : "") + j.str();
    }
    JsonObject out;
    out.Add("version", m.version).Add("items", m.num_items).Add("dim", m.dim).Add("slowest_swap_loaded_s", slowest_loaded).Add("slowest_swap_standby_s", slowest_standby).Add("ratio_interleaved", interleaved_ratio).AddRaw("results", arr + "]");
    WriteFileAtomically(o.json_out, out.str() + "\n");
  }
  for (const Result& r : results) {
    if (r.failed > 0) return 1;
  }
  return slowest_standby > 2.0 ? 1 : 0;
}

}  // namespace
}  // namespace shardrec

int main(int argc, char** argv) {
  try {
    return shardrec::Run(shardrec::Parse(argc, argv));
  } catch (const shardrec::UserError& e) {
    std::fprintf(stderr, "serve_bench: %s\n", e.what());
    return 2;
  }
}
