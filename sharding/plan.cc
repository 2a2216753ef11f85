#include "sharding/plan.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/file_util.h"
#include "common/strings.h"

namespace shardrec {

const TablePlan& ShardingPlan::Find(const std::string& table) const {
  for (const auto& t : tables) {
    if (t.table == table) return t;
  }
  LOG(FATAL) << "table " << table << " is not in the plan";
}

std::vector<Shard> MakeShards(const TableSpec& spec, ShardingType type, int world, int rank) {
  std::vector<Shard> out;
  switch (type) {
    case ShardingType::kTableWise:
      out.push_back({rank, 0, spec.rows, 0, spec.dim});
      break;
    case ShardingType::kRowWise: {
      const int64_t block = (spec.rows + world - 1) / world;
      for (int r = 0; r < world; ++r) {
        const int64_t b = std::min(spec.rows, r * block), e = std::min(spec.rows, (r + 1) * block);
        out.push_back({r, b, e, 0, spec.dim});  // trailing ranks may hold 0 rows
      }
      break;
    }
    case ShardingType::kColumnWise: {
      // One block per rank (fewer when dim < world); row-wise Adagrad needs one per rank.
      const int k = static_cast<int>(std::min<int64_t>(world, spec.dim));
      for (int r = 0; r < k; ++r) {
        out.push_back({r, 0, spec.rows, spec.dim * r / k, spec.dim * (r + 1) / k});
      }
      break;
    }
    case ShardingType::kDataParallel:
      for (int r = 0; r < world; ++r) out.push_back({r, 0, spec.rows, 0, spec.dim});
      break;
  }
  return out;
}

std::string ShardingPlan::ToTable() const {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%-5s %-14s %-34s %12s %12s %12s\n", "rank", "table", "sharding (rows x cols)",
                "rows", "memory MiB", "est. ms");
  os << buf;
  for (int r = 0; r < world_size; ++r) {
    bool first = true;
    for (const auto& t : tables) {
      for (const auto& sh : t.shards) {
        if (sh.rank != r) continue;
        std::string shape = std::string(ShardingTypeName(t.type)) + " [" + std::to_string(sh.row_begin) + "," +
                            std::to_string(sh.row_end) + ")x[" + std::to_string(sh.col_begin) + "," +
                            std::to_string(sh.col_end) + ")";
        std::snprintf(buf, sizeof(buf), "%-5s %-14s %-34s %12lld %12s %12s\n", first ? std::to_string(r).c_str() : "",
                      t.table.c_str(), shape.c_str(), static_cast<long long>(sh.row_end - sh.row_begin), "", "");
        os << buf;
        first = false;
      }
    }
    const RankLoad l = r < static_cast<int>(loads.size()) ? loads[r] : RankLoad();
    std::snprintf(buf, sizeof(buf), "%-5s %-14s %-34s %12s %12.1f %12.3f\n", first ? std::to_string(r).c_str() : "",
                  "(total)", "", "", l.memory_bytes / (1 << 20), l.seconds * 1e3);
    os << buf;
  }
  return os.str();
}

std::string ShardingPlan::Serialize() const {
  std::ostringstream os;
  os << "shardrec.plan 1\nworld_size " << world_size << "\n";
  for (const auto& t : tables) {
    os << "table " << t.table << " " << ShardingTypeName(t.type) << " " << t.shards.size() << "\n";
    for (const auto& s : t.shards) {
      os << "shard " << s.rank << " " << s.row_begin << " " << s.row_end << " " << s.col_begin << " " << s.col_end << "\n";
    }
  }
  return os.str();
}

ShardingPlan ShardingPlan::Parse(const std::string& text) {
  ShardingPlan p;
  LineIterator it(text);
  std::string_view line;
  auto bad = [&](const std::string& what) { Fail("sharding plan line ", it.line_number(), ": ", what, ": ", Quote(line)); };
  auto num = [&](std::string_view f) {
    auto v = ParseInt64(f);
    if (!v) bad("expected an integer");
    return *v;
  };
  if (!it.Next(&line) || line != "shardrec.plan 1") bad("expected 'shardrec.plan 1'");
  if (!it.Next(&line)) bad("missing world_size");
  auto f = SplitWhitespace(line);
  if (f.size() != 2 || f[0] != "world_size") bad("expected 'world_size N'");
  p.world_size = static_cast<int>(num(f[1]));
  size_t pending = 0;
  while (it.Next(&line)) {
    f = SplitWhitespace(line);
    if (f.empty()) continue;
    if (f[0] == "table" && f.size() == 4 && pending == 0) {
      p.tables.push_back({std::string(f[1]), ParseShardingType(std::string(f[2])), {}});
      pending = static_cast<size_t>(num(f[3]));
    } else if (f[0] == "shard" && f.size() == 6 && pending > 0) {
      p.tables.back().shards.push_back({static_cast<int>(num(f[1])), num(f[2]), num(f[3]), num(f[4]), num(f[5])});
      --pending;
    } else {
      bad("expected 'table NAME TYPE N' or 'shard RANK ROW_BEGIN ROW_END COL_BEGIN COL_END'");
    }
  }
  if (pending != 0) bad("missing shard lines");
  return p;
}

void ShardingPlan::Validate(const std::vector<TableSpec>& specs) const {
  for (const auto& s : specs) {
    const TablePlan* tp = nullptr;
    for (const auto& t : tables) {
      if (t.table == s.name) tp = &t;
    }
    if (!tp) Fail("sharding plan: no entry for table '", s.name, "'");
    if (tp->shards.empty()) Fail("sharding plan: table '", s.name, "' has no shards");
    for (const auto& sh : tp->shards) {
      if (sh.rank < 0 || sh.rank >= world_size) Fail("sharding plan: table '", s.name, "': rank ", sh.rank, " out of range");
      if (sh.row_begin < 0 || sh.row_end > s.rows || sh.row_begin > sh.row_end || sh.col_begin < 0 ||
          sh.col_end > s.dim || sh.col_begin >= sh.col_end) {
        Fail("sharding plan: table '", s.name, "': shard outside ", s.rows, " x ", s.dim);
      }
    }
    // Coverage: every (row, col) exactly once, or exactly once per rank for DP.
    const int copies = tp->type == ShardingType::kDataParallel ? world_size : 1;
    int64_t area = 0;
    for (const auto& sh : tp->shards) area += (sh.row_end - sh.row_begin) * (sh.col_end - sh.col_begin);
    if (area != s.rows * s.dim * copies) {
      Fail("sharding plan: table '", s.name, "': shards cover ", area, " cells, expected ", s.rows * s.dim * copies);
    }
    std::vector<int> per_rank(world_size, 0);
    for (const auto& sh : tp->shards) {
      if (++per_rank[sh.rank] > 1) Fail("sharding plan: table '", s.name, "': two shards on rank ", sh.rank);
    }
  }
  if (tables.size() != specs.size()) Fail("sharding plan: ", tables.size(), " tables, the model has ", specs.size());
}

namespace {
constexpr const char* kPlanMarker = "--- plan ---\n";
}

void WritePlanFile(const std::string& path, const ShardingPlan& plan, const std::string& description) {
  WriteFileAtomically(path, description + kPlanMarker + plan.Serialize());
}

ShardingPlan ReadPlanFile(const std::string& path) {
  const std::string text = ReadFileToString(path);
  const size_t at = text.find(kPlanMarker);
  if (at == std::string::npos) Fail(path, ": not a plan file (no '--- plan ---' line)");
  try {
    return ShardingPlan::Parse(text.substr(at + std::strlen(kPlanMarker)));
  } catch (const UserError& e) {
    Fail(path, ": ", e.what());
  }
}

ShardingPlan BroadcastPlan(Communicator& comm, const ShardingPlan& plan_on_root) {
  ShardingPlan p = ShardingPlan::Parse(BroadcastString(comm, comm.rank() == 0 ? plan_on_root.Serialize() : "", 0));
  if (comm.rank() == 0) p.loads = plan_on_root.loads;
  return p;
}

}  // namespace shardrec
