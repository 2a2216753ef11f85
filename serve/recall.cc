#include "serve/recall.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"
#include "io/export_format.h"
#include "io/recall_lists.h"
#include "distributed/staged_dir.h"
#include "retrieval/sharded_index.h"
#include "serve/recommender.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The selection, in order: every exported user (dense-id order), or the file's. Dense ids.
std::vector<int64_t> SelectUsers(const Recommender& rec, const std::string& users) {
  std::vector<int64_t> picked;
  if (users == "all") {
    picked.resize(static_cast<size_t>(rec.num_users()));
    std::iota(picked.begin(), picked.end(), int64_t{0});
    return picked;
  }
  for (const UserListEntry& e : ReadUserList(users)) {
    const int64_t u = rec.FindUser(e.id);
    if (u < 0) Fail(users, ":", e.line, ": unknown user id ", Quote(e.id), " (not in export ", rec.manifest().version, ")");
    picked.push_back(u);
  }
  return picked;
}

// The lists of `users` (this rank's share of the selection), in blocks of 4096 (rank 0 reports
// progress after each).
RecallPart SearchLists(const RecallOptions& o, const Recommender& rec, const std::vector<int64_t>& users, int rank) {
  RecallPart part;
  part.k = o.k;
  const int64_t block = 4096, mine = static_cast<int64_t>(users.size());
  part.items.reserve(static_cast<size_t>(mine * o.k));
  part.scores.reserve(static_cast<size_t>(mine * o.k));
  const auto start = Clock::now();
  for (int64_t b = 0; b < mine; b += block) {
    const int64_t e = std::min(mine, b + block);
    const std::vector<int64_t> these(users.begin() + b, users.begin() + e);
    for (const auto& h : rec.RecommendUsers(these, o.k, o.threads)) {
      for (int64_t j = 0; j < o.k; ++j) {
        const bool has = j < static_cast<int64_t>(h.size());
        part.items.push_back(has ? rec.item_id(h[j].id) : std::string());
        part.scores.push_back(has ? h[j].score : std::numeric_limits<float>::quiet_NaN());
      }
      part.counts.push_back(static_cast<int32_t>(h.size()));
    }
    for (int64_t u : these) part.users.push_back(rec.user_id(u));
    if (rank == 0 && o.progress) o.progress(e, mine, Since(start));
  }
  return part;
}

}  // namespace

RecallReport WriteRecallLists(const RecallOptions& o, Communicator& comm) {
  if (o.k < 1) Fail("--k must be >= 1, got ", o.k);
  if (o.out.empty()) Fail("--out is required (the directory the lists go to)");
  // Rank 0 reads LATEST once; every rank then opens that version, whatever LATEST says later.
  std::string dir;
  RunAgreed(comm, [&] {
    if (comm.rank() == 0) dir = RealPath(ResolveExport(o.export_dir));
  });
  dir = BroadcastString(comm, dir, 0);
  StagedDir out(o.out, comm, StagedDir::Existing::kRefuse, "--out");
  std::unique_ptr<Recommender> rec;
  std::vector<int64_t> selected;
  out.Run([&] {
    rec = Recommender::Open({.export_dir = dir, .exact = o.exact});
    selected = SelectUsers(*rec, o.users);
  });
  const ExportManifest& m = rec->manifest();
  if (o.k > m.num_items) out.Run([&] { Fail("--k ", o.k, " is more than the export's ", m.num_items, " items"); });
  const int64_t n = static_cast<int64_t>(selected.size()), w = comm.world_size(), me = comm.rank();
  const auto range = RankRange(n, comm);
  const std::vector<int64_t> mine(selected.begin() + range.first, selected.begin() + range.second);
  comm.Barrier();
  const auto start = Clock::now();
  RecallPart part;
  // A failure on one rank (a damaged dataset) reaches every rank.
  out.Run([&] { part = SearchLists(o, *rec, mine, comm.rank()); });
  at::Tensor seconds = torch::tensor({static_cast<float>(Since(start))}, torch::kFloat).to(torch::Device(comm.device()));
  comm.AllReduce(seconds, ReduceOp::kMax);
  out.Run([&] { WriteRecallPart(out.path() + "/part-" + std::to_string(me) + ".h5", part); });
  RecallReport r;
  r.dir = out.final_path();
  r.version = m.version;
  r.search = rec->index().name();
  r.users = n;
  r.seconds = static_cast<double>(seconds.cpu().item<float>());
  out.Commit([&] {
    RecallManifest rm;
    rm.export_dir = dir;
    rm.export_version = m.version;
    rm.search = r.search;
    rm.k = o.k;
    rm.selection = o.users == "all" ? "all" : RealPath(o.users);
    rm.num_users = n;
    rm.seconds = r.seconds;
    const std::vector<int64_t> rows = EvenSplits(n, static_cast<int>(w));
    for (int64_t q = 0; q < w; ++q) rm.parts.push_back({"part-" + std::to_string(q) + ".h5", rows[q]});
    WriteRecallManifest(out.path(), rm);
  });
  return r;
}

}  // namespace shardrec
