#include "sharding/types.h"

#include <set>

#include "common/error.h"
#include "common/strings.h"

namespace shardrec {

const char* ShardingTypeName(ShardingType t) {
  switch (t) {
    case ShardingType::kTableWise: return "table_wise";
    case ShardingType::kRowWise: return "row_wise";
    case ShardingType::kColumnWise: return "column_wise";
    case ShardingType::kDataParallel: return "data_parallel";
  }
  return "?";
}

ShardingType ParseShardingType(const std::string& s) {
  if (s == "table_wise" || s == "tw") return ShardingType::kTableWise;
  if (s == "row_wise" || s == "rw") return ShardingType::kRowWise;
  if (s == "column_wise" || s == "cw") return ShardingType::kColumnWise;
  if (s == "data_parallel" || s == "dp") return ShardingType::kDataParallel;
  Fail("sharding: expected table_wise, row_wise, column_wise or data_parallel, got ", Quote(s));
}

const char* OptimizerName(OptimizerType o) {
  switch (o) {
    case OptimizerType::kSgd: return "sgd";
    case OptimizerType::kRowWiseAdagrad: return "rowwise_adagrad";
    case OptimizerType::kAdam: return "adam";
  }
  return "?";
}

OptimizerType ParseOptimizer(const std::string& s) {
  if (s == "sgd") return OptimizerType::kSgd;
  if (s == "rowwise_adagrad" || s == "adagrad") return OptimizerType::kRowWiseAdagrad;
  if (s == "adam") return OptimizerType::kAdam;
  Fail("optimizer: expected sgd, rowwise_adagrad or adam, got ", Quote(s));
}

double OptimizerConfig::StateFactor(int64_t dim) const {
  switch (type) {
    case OptimizerType::kSgd: return 0.0;
    case OptimizerType::kRowWiseAdagrad: return 1.0 / static_cast<double>(dim);
    case OptimizerType::kAdam: return 2.0;
  }
  return 0.0;
}

void ValidateTables(const std::vector<TableSpec>& tables) {
  std::set<std::string> names, features;
  for (const auto& t : tables) {
    if (t.name.empty()) Fail("table: empty name");
    if (!names.insert(t.name).second) Fail("table '", t.name, "': defined twice");
    if (t.rows < 1) Fail("table '", t.name, "': rows must be >= 1, got ", t.rows);
    if (t.dim < 1) Fail("table '", t.name, "': dim must be >= 1, got ", t.dim);
    if (t.features.empty()) Fail("table '", t.name, "': no feature looks it up");
    for (const auto& f : t.features) {
      if (!features.insert(f).second) Fail("feature '", f, "' looks up two tables");
    }
    if (!(t.optimizer.lr > 0)) Fail("table '", t.name, "': optimizer lr must be > 0");
  }
}

}  // namespace shardrec
