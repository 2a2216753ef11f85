// Sharding plans: which rank holds which block of each table. Plain data: printable as a per-rank
// table, serialisable, computed on rank 0 (sharding/planner.h) and broadcast.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "sharding/types.h"

namespace shardrec {

// A block of a table held by one rank: rows [row_begin, row_end) x columns [col_begin, col_end).
// Data-parallel tables have one full shard per rank.
struct Shard {
  int rank = 0;
  int64_t row_begin = 0, row_end = 0;
  int64_t col_begin = 0, col_end = 0;
  bool operator==(const Shard&) const = default;
};

struct TablePlan {
  std::string table;
  ShardingType type = ShardingType::kTableWise;
  std::vector<Shard> shards;  // TW: 1, RW: N (contiguous rows), CW: up to N (columns), DP: N
  bool operator==(const TablePlan&) const = default;
};

struct RankLoad {
  double memory_bytes = 0;  // weights + optimizer state
  double seconds = 0;       // estimated lookup + communication time per global batch
};

struct ShardingPlan {
  int world_size = 1;
  std::vector<TablePlan> tables;
  std::vector<RankLoad> loads;  // estimates, per rank (not part of equality)

  const TablePlan& Find(const std::string& table) const;  // CHECKs presence
  // Per-rank table: tables and shards held, rows, memory, estimated time.
  std::string ToTable() const;
  // Line-oriented text; Parse(Serialize(p)) == p. Parse throws UserError on malformed text.
  std::string Serialize() const;
  static ShardingPlan Parse(const std::string& text);
  // Checks that the plan covers every table exactly (rows x columns, ranks in range).
  void Validate(const std::vector<TableSpec>& specs) const;
  bool operator==(const ShardingPlan& o) const { return world_size == o.world_size && tables == o.tables; }
};

// Shards of one table for a given type (RW: ceil(rows/N) blocks; CW: dim split into
// min(N, dim) blocks; TW: on `rank`).
std::vector<Shard> MakeShards(const TableSpec& spec, ShardingType type, int world_size, int rank = 0);

// Writes `path` atomically: `description` (the per-rank table people read) and then, after a line
// "--- plan ---", the plan's Serialize() text. Throws UserError if the write fails.
void WritePlanFile(const std::string& path, const ShardingPlan& plan, const std::string& description);
// The plan of a file written by WritePlanFile; throws UserError naming the file if it is not one.
ShardingPlan ReadPlanFile(const std::string& path);

// Collective: rank 0's plan, serialised, broadcast to every rank.
ShardingPlan BroadcastPlan(Communicator& comm, const ShardingPlan& plan_on_root);

}  // namespace shardrec
