#include "train/recall.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"
#include "io/dataset.h"
#include "io/export.h"
#include "io/recall_lists.h"
#include "retrieval/index.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Where an exported user lives: its shard and row there.
struct UserAt {
  int64_t dense = 0;
  size_t shard = 0;
  int64_t row = 0;
};

// The selection, in order: every exported user (shard order = dense-id order), or the file's.
std::vector<UserAt> SelectUsers(const std::string& dir, const ExportManifest& m, const std::string& users,
                                std::vector<std::string>* raw) {
  std::vector<UserAt> all;
  std::vector<std::string> all_raw;
  for (size_t s = 0; s < m.user_shards.size(); ++s) {
    VectorShard sh = ReadVectorShard(dir + "/" + m.user_shards[s].file, /*with_vectors=*/false);
    for (size_t i = 0; i < sh.ids.size(); ++i) {
      all.push_back({sh.ids[i], s, static_cast<int64_t>(i)});
      all_raw.push_back(std::move(sh.raw_ids[i]));
    }
  }
  if (users == "all") {
    *raw = std::move(all_raw);
    return all;
  }
  if (!PathExists(users)) Fail("--users: ", users, ": no such file (give 'all' or a file of raw user ids, one per line)");
  std::unordered_map<std::string, size_t> where;
  for (size_t i = 0; i < all_raw.size(); ++i) where.emplace(all_raw[i], i);
  std::unordered_map<std::string, int64_t> first_line;
  std::vector<UserAt> picked;
  int64_t line_no = 0;
  const std::string text = ReadFileToString(users);
  for (const auto& line : Split(text, "\n")) {
    ++line_no;
    const std::string id(Trim(line));
    if (id.empty() || id[0] == '#') continue;
    auto it = where.find(id);
    if (it == where.end()) Fail(users, ":", line_no, ": unknown user id '", id, "' (not in export ", m.version, ")");
    auto [seen, fresh] = first_line.emplace(id, line_no);
    if (!fresh) Fail(users, ":", line_no, ": user id '", id, "' listed twice (first at line ", seen->second, ")");
    picked.push_back(all[it->second]);
    raw->push_back(id);
  }
  if (picked.empty()) Fail(users, ": no user ids (one raw user id per line)");
  return picked;
}

}  // namespace

RecallReport WriteRecallLists(const RecallOptions& o, Communicator& comm) {
  if (o.k < 1) Fail("--k must be >= 1, got ", o.k);
  if (o.out.empty()) Fail("--out is required (the directory the lists go to)");
  std::string out = o.out;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  // Rank 0 reads LATEST once; every rank then opens that version, whatever LATEST says later.
  std::string dir;
  RunAgreed(comm, [&] {
    if (comm.rank() == 0) dir = RealPath(ResolveExport(o.export_dir));
  });
  dir = BroadcastString(comm, dir, 0);
  const std::string partial = Dirname(out) + "/." + Basename(out) + ".partial";
  RunAgreed(comm, [&] {
    if (comm.rank() != 0) return;
    if (PathExists(out)) Fail("--out: ", out, " exists already; recall lists are written once (choose a new directory)");
    RemoveAll(partial);
    MakeDirs(partial);
  });
  const auto remove_partial = [&] {
    if (comm.rank() == 0) RemoveAll(partial);
  };
  std::unique_ptr<ShardedIndex> index;
  std::vector<UserAt> selected;
  std::vector<std::string> raw_users;
  std::unique_ptr<Dataset> ds;
  RunAgreed(comm, [&] {
    index = ShardedIndex::Open(dir, o.exact);
    selected = SelectUsers(dir, index->manifest(), o.users, &raw_users);
    ds = Dataset::Open(index->manifest().data);
  }, remove_partial);
  const ExportManifest& m = index->manifest();
  if (o.k > m.num_items) {
    RunAgreed(comm, [&] { Fail("--k ", o.k, " is more than the export's ", m.num_items, " items"); }, remove_partial);
  }
  const int64_t n = static_cast<int64_t>(selected.size()), w = comm.world_size(), me = comm.rank();
  const int64_t begin = n * me / w, end = n * (me + 1) / w, mine = end - begin;
  // This rank's user vectors, in selection order (only the shards its range touches are read).
  std::vector<float> queries(static_cast<size_t>(mine * m.dim));
  RunAgreed(comm, [&] {
    std::map<size_t, std::vector<int64_t>> by_shard;
    for (int64_t i = begin; i < end; ++i) by_shard[selected[i].shard].push_back(i);
    for (const auto& [s, rows] : by_shard) {
      const VectorShard sh = ReadVectorShard(dir + "/" + m.user_shards[s].file);
      for (int64_t i : rows) {
        std::memcpy(&queries[(i - begin) * m.dim], &sh.vectors[selected[i].row * m.dim], sizeof(float) * m.dim);
      }
    }
  }, remove_partial);
  RecallPart part;
  part.k = o.k;
  part.users.assign(raw_users.begin() + begin, raw_users.begin() + end);
  part.items.reserve(static_cast<size_t>(mine * o.k));
  part.scores.reserve(static_cast<size_t>(mine * o.k));
  comm.Barrier();
  const auto start = Clock::now();
  // Blocks of users: the seen items of a block are read together, and rank 0 reports progress. A
  // failure on one rank (a damaged dataset) reaches every rank.
  const int64_t block = 4096;
  const std::vector<int64_t>& offsets = ds->user_offsets();
  RunAgreed(comm, [&] {
  for (int64_t b = 0; b < mine; b += block) {
    const int64_t e = std::min(mine, b + block);
    std::vector<std::unordered_set<int64_t>> exclude(static_cast<size_t>(e - b));
    for (int64_t i = b; i < e; ++i) {
      const int64_t u = selected[begin + i].dense;
      for (int32_t it : ds->ReadItems(offsets[u], offsets[u + 1])) exclude[i - b].insert(it);
    }
    const auto hits = index->SearchMany(&queries[b * m.dim], e - b, o.k, exclude, o.threads);
    for (const auto& h : hits) {
      for (int64_t j = 0; j < o.k; ++j) {
        const bool has = j < static_cast<int64_t>(h.size());
        part.items.push_back(has ? index->raw_id(h[j].id) : std::string());
        part.scores.push_back(has ? h[j].score : std::numeric_limits<float>::quiet_NaN());
      }
      part.counts.push_back(static_cast<int32_t>(h.size()));
    }
    if (me == 0 && o.progress) o.progress(e, mine, Since(start));
  }
  }, remove_partial);
  at::Tensor seconds = torch::tensor({static_cast<float>(Since(start))}, torch::kFloat).to(torch::Device(comm.device()));
  comm.AllReduce(seconds, ReduceOp::kMax);
  RunAgreed(comm, [&] { WriteRecallPart(partial + "/part-" + std::to_string(me) + ".h5", part); }, remove_partial);
  RecallReport r;
  r.dir = out;
  r.version = m.version;
  r.search = index->approximate() ? m.index_factory : "exact";
  r.users = n;
  r.seconds = static_cast<double>(seconds.cpu().item<float>());
  RunAgreed(comm, [&] {
    if (me != 0) return;
    RecallManifest rm;
    rm.export_dir = dir;
    rm.export_version = m.version;
    rm.search = r.search;
    rm.k = o.k;
    rm.selection = o.users == "all" ? "all" : RealPath(o.users);
    rm.num_users = n;
    rm.seconds = r.seconds;
    for (int64_t q = 0; q < w; ++q) rm.parts.push_back({"part-" + std::to_string(q) + ".h5", n * (q + 1) / w - n * q / w});
    WriteRecallManifest(partial, rm);
    if (PathExists(out)) Fail("--out: ", out, " appeared while the lists were written; not replaced");
    if (std::rename(partial.c_str(), out.c_str()) != 0) Fail(out, ": cannot rename the finished lists into place: ", std::strerror(errno));
    try {
      SyncPath(Dirname(out));
    } catch (const UserError&) {
      std::rename(out.c_str(), partial.c_str());  // not durably in place: back to its temporary name, removed
      throw;
    }
  }, remove_partial);
  return r;
}

}  // namespace shardrec
