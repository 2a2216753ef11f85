// The sharded-vs-unsharded oracle: an unsharded reference (plain arrays, the optimizers written out
// as loops) trains on the whole global batch; every rank of a ShardedEmbeddingCollection trains on
// its piece of the same batch. Forward outputs and the tables after several steps must agree within
// 1e-6. Shared by the in-process tests and the MPI test.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/rng.h"
#include "sharding/embedding_collection.h"
#include "sharding/lookup_function.h"
#include "sharding/planner.h"

namespace shardrec::testing {

constexpr uint64_t kSeed = 17;

// Three tables, each with another optimizer and pooling; rows that split unevenly over 2, 3, 4.
inline std::vector<TableSpec> OracleTables() {
  TableSpec items{.name = "items", .rows = 23, .dim = 8, .features = {"history", "candidates"}};
  items.optimizer = {.type = OptimizerType::kRowWiseAdagrad, .lr = 0.1};
  TableSpec genres{.name = "genres", .rows = 7, .dim = 6, .features = {"genre_bag"}, .pooling = Pooling::kSum};
  genres.optimizer = {.type = OptimizerType::kAdam, .lr = 0.05};
  TableSpec tags{.name = "tags", .rows = 10, .dim = 5, .features = {"tag_bag"}, .pooling = Pooling::kMean};
  tags.optimizer = {.type = OptimizerType::kSgd, .lr = 0.3};
  return {items, genres, tags};
}

// ---- the global batch of a step (identical on every rank) ------------------------------------

struct GlobalFeature {
  std::vector<int64_t> lengths, ids;
};
using GlobalBatch = std::map<std::string, GlobalFeature>;

inline int64_t GlobalBatchSize(int step) { return step == 2 ? 2 : 13; }  // step 2: ranks without rows

inline GlobalBatch MakeGlobalBatch(const std::vector<TableSpec>& tables, int step) {
  GlobalBatch b;
  const int64_t n = GlobalBatchSize(step);
  for (const auto& t : tables) {
    for (const auto& f : t.features) {
      Rng rng(HashKeys({99, static_cast<uint64_t>(step), std::hash<std::string>{}(f)}));
      GlobalFeature& g = b[f];
      for (int64_t i = 0; i < n; ++i) {
        const int64_t len = static_cast<int64_t>(rng.Below(4));  // 0..3: empty samples included
        g.lengths.push_back(len);
        for (int64_t k = 0; k < len; ++k) {
          // Half the ids from a few hot rows (duplicates within and across ranks), half anywhere.
          g.ids.push_back(rng.Bernoulli(0.5) ? static_cast<int64_t>(rng.Below(3)) : static_cast<int64_t>(rng.Below(t.rows)));
        }
      }
    }
  }
  return b;
}

// Deterministic gradient of output row `row` (global numbering), column c.
inline float GradValue(int step, const std::string& feature, int64_t row, int64_t c) {
  Rng rng(HashKeys({7, static_cast<uint64_t>(step), std::hash<std::string>{}(feature), static_cast<uint64_t>(row),
                    static_cast<uint64_t>(c)}));
  return static_cast<float>(rng.Uniform() - 0.5);
}

// ---- the unsharded reference ------------------------------------------------------------------

struct RefTable {
  TableSpec spec;
  std::vector<float> w, s1, s2;  // weights, optimizer state
  int64_t steps = 0;
};

inline std::map<std::string, RefTable> MakeReference(const std::vector<TableSpec>& tables) {
  std::map<std::string, RefTable> ref;
  for (const auto& t : tables) {
    RefTable r;
    r.spec = t;
    at::Tensor init = InitRows(t, kSeed, 0, t.rows, 0, t.dim);
    r.w.assign(init.data_ptr<float>(), init.data_ptr<float>() + init.numel());
    r.s1.assign(t.optimizer.type == OptimizerType::kAdam ? t.rows * t.dim : t.rows, 0.f);
    r.s2.assign(t.rows * t.dim, 0.f);
    ref[t.name] = r;
  }
  return ref;
}

// Output rows of a feature for the whole global batch: [rows x dim], row-major.
inline std::vector<float> RefForward(const RefTable& t, const GlobalFeature& f) {
  const int64_t d = t.spec.dim;
  std::vector<float> out;
  size_t k = 0;
  for (int64_t len : f.lengths) {
    std::vector<float> pooled(d, 0.f);
    for (int64_t j = 0; j < len; ++j, ++k) {
      for (int64_t c = 0; c < d; ++c) {
        const float v = t.w[f.ids[k] * d + c];
        if (t.spec.pooling == Pooling::kNone) {
          out.push_back(v);
        } else {
          pooled[c] += v;
        }
      }
    }
    if (t.spec.pooling != Pooling::kNone) {
      for (int64_t c = 0; c < d; ++c) out.push_back(t.spec.pooling == Pooling::kMean && len ? pooled[c] / len : pooled[c]);
    }
  }
  return out;
}

inline void RefStep(RefTable& t, const GlobalBatch& b, int step) {
  const int64_t d = t.spec.dim;
  std::map<int64_t, std::vector<double>> grad;  // merged per row
  for (const auto& fname : t.spec.features) {
    const GlobalFeature& f = b.at(fname);
    size_t k = 0;
    for (size_t i = 0; i < f.lengths.size(); ++i) {
      for (int64_t j = 0; j < f.lengths[i]; ++j, ++k) {
        auto& g = grad[f.ids[k]];
        g.resize(d, 0.0);
        for (int64_t c = 0; c < d; ++c) {
          const float gv = t.spec.pooling == Pooling::kNone ? GradValue(step, fname, k, c)
                           : t.spec.pooling == Pooling::kSum ? GradValue(step, fname, i, c)
                                                             : GradValue(step, fname, i, c) / f.lengths[i];
          g[c] += gv;
        }
      }
    }
  }
  ++t.steps;
  const OptimizerConfig& o = t.spec.optimizer;
  for (auto& [row, g] : grad) {
    float* w = &t.w[row * d];
    if (o.type == OptimizerType::kSgd) {
      for (int64_t c = 0; c < d; ++c) w[c] -= static_cast<float>(o.lr * g[c]);
    } else if (o.type == OptimizerType::kRowWiseAdagrad) {
      double sq = 0;
      for (int64_t c = 0; c < d; ++c) sq += g[c] * g[c];
      t.s1[row] += static_cast<float>(sq / d);
      const double scale = o.lr / (std::sqrt(static_cast<double>(t.s1[row])) + o.eps);
      for (int64_t c = 0; c < d; ++c) w[c] -= static_cast<float>(scale * g[c]);
    } else {
      const double c1 = 1 - std::pow(o.beta1, t.steps), c2 = 1 - std::pow(o.beta2, t.steps);
      for (int64_t c = 0; c < d; ++c) {
        float& m = t.s1[row * d + c];
        float& v = t.s2[row * d + c];
        m = static_cast<float>(o.beta1 * m + (1 - o.beta1) * g[c]);
        v = static_cast<float>(o.beta2 * v + (1 - o.beta2) * g[c] * g[c]);
        w[c] -= static_cast<float>(o.lr * (m / c1) / (std::sqrt(v / c2) + o.eps));
      }
    }
  }
}

// ---- the sharded side ---------------------------------------------------------------------------

// Rank r's piece of the global batch: samples [n*r/w, n*(r+1)/w).
struct Piece {
  int64_t sample_begin, sample_end;
};
inline Piece PieceOf(int64_t n, int rank, int world) { return {n * rank / world, n * (rank + 1) / world}; }

enum class PlanKind { kTableWise, kRowWise, kColumnWise, kDataParallel, kMixed, kPlanner };
inline const char* PlanKindName(PlanKind k) {
  switch (k) {
    case PlanKind::kTableWise: return "table_wise";
    case PlanKind::kRowWise: return "row_wise";
    case PlanKind::kColumnWise: return "column_wise";
    case PlanKind::kDataParallel: return "data_parallel";
    case PlanKind::kMixed: return "mixed";
    case PlanKind::kPlanner: return "planner";
  }
  return "?";
}

inline void PrintTo(PlanKind k, std::ostream* os) { *os << PlanKindName(k); }

inline ShardingPlan MakePlan(const std::vector<TableSpec>& tables, PlanKind kind, int world) {
  if (kind == PlanKind::kPlanner) {
    PlannerOptions o;
    o.world_size = world;
    return PlanSharding(tables, o);
  }
  ShardingPlan p;
  p.world_size = world;
  for (size_t i = 0; i < tables.size(); ++i) {
    ShardingType t;
    int rank = 0;
    switch (kind) {
      case PlanKind::kTableWise: t = ShardingType::kTableWise; rank = static_cast<int>(i + 1) % world; break;
      case PlanKind::kRowWise: t = ShardingType::kRowWise; break;
      case PlanKind::kColumnWise: t = ShardingType::kColumnWise; break;
      case PlanKind::kDataParallel: t = ShardingType::kDataParallel; break;
      default: {  // mixed: items row-wise, genres table-wise on the last rank, tags column-wise
        const ShardingType mixed[] = {ShardingType::kRowWise, ShardingType::kTableWise, ShardingType::kColumnWise};
        t = mixed[i % 3];
        rank = world - 1;
      }
    }
    p.tables.push_back({tables[i].name, t, MakeShards(tables[i], t, world, rank)});
  }
  return p;
}

inline void ExpectClose(const at::Tensor& got, const std::vector<float>& want, const std::string& what) {
  at::Tensor g = got.cpu().contiguous().view({-1});
  ASSERT_EQ(g.numel(), static_cast<int64_t>(want.size())) << what;
  const float* p = g.data_ptr<float>();
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(p[i], want[i], 1e-6) << what << " at " << i;
  }
}

// How the sharded side runs a step: Forward + a hand-called Backward with the output gradients, or
// DifferentiableLookup + autograd's backward() of sum(output * gradient) (nobody calls Backward).
enum class BackwardPath { kExplicit, kAutograd };

// Runs `steps` forward/backward steps on this rank and on the reference; checks outputs every step
// and the local shards at the end.
inline void RunOracle(Communicator& comm, PlanKind kind, int steps, bool dedup = true,
                      BackwardPath path = BackwardPath::kExplicit) {
  const int w = comm.world_size(), me = comm.rank();
  const auto tables = OracleTables();
  ShardingPlan plan = BroadcastPlan(comm, me == 0 ? MakePlan(tables, kind, w) : ShardingPlan());
  ShardedEmbeddingCollection coll(tables, plan, &comm, {.seed = kSeed, .dedup = dedup});
  auto ref = MakeReference(tables);
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    comm.SetStep(step);
    const GlobalBatch global = MakeGlobalBatch(tables, step);
    const Piece piece = PieceOf(GlobalBatchSize(step), me, w);
    FeatureBatch local;
    std::map<std::string, std::pair<int64_t, int64_t>> id_range;  // global id positions of the piece
    for (const auto& [name, f] : global) {
      int64_t first = 0;
      for (int64_t i = 0; i < piece.sample_begin; ++i) first += f.lengths[i];
      int64_t count = 0;
      for (int64_t i = piece.sample_begin; i < piece.sample_end; ++i) count += f.lengths[i];
      id_range[name] = {first, count};
      std::vector<int64_t> lengths(f.lengths.begin() + piece.sample_begin, f.lengths.begin() + piece.sample_end);
      std::vector<int64_t> ids(f.ids.begin() + first, f.ids.begin() + first + count);
      local[name] = {at::tensor(ids, at::kLong), at::tensor(lengths, at::kLong)};
    }
    FeatureOutputs out = path == BackwardPath::kExplicit ? coll.Forward(local) : DifferentiableLookup(coll, local);
    FeatureOutputs grads;
    for (const auto& t : tables) {
      for (const auto& fname : t.features) {
        std::vector<float> want_all = RefForward(ref.at(t.name), global.at(fname));
        const bool pooled = t.pooling != Pooling::kNone;
        const int64_t row0 = pooled ? piece.sample_begin : id_range[fname].first;
        const int64_t rows = pooled ? piece.sample_end - piece.sample_begin : id_range[fname].second;
        std::vector<float> want(want_all.begin() + row0 * t.dim, want_all.begin() + (row0 + rows) * t.dim);
        ExpectClose(out.at(fname).detach(), want, "forward " + fname);
        at::Tensor g = at::empty({rows, t.dim}, at::kFloat);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < t.dim; ++c) g[r][c] = GradValue(step, fname, row0 + r, c);
        }
        grads[fname] = g;
      }
    }
    if (path == BackwardPath::kExplicit) {
      coll.Backward(grads);
    } else {
      // A loss whose gradient w.r.t. each output is `grads`; backward() alone updates the tables.
      at::Tensor loss = at::zeros({}, at::kFloat);
      for (const auto& [fname, g] : grads) loss = loss + (out.at(fname) * g).sum();
      ASSERT_TRUE(loss.requires_grad());
      loss.backward();
    }
    for (auto& [name, r] : ref) RefStep(r, global, step);
  }
  for (const auto& t : tables) {
    const Shard* s = coll.LocalShard(t.name);
    if (!s) continue;
    std::vector<float> want;
    const RefTable& r = ref.at(t.name);
    for (int64_t row = s->row_begin; row < s->row_end; ++row) {
      for (int64_t c = s->col_begin; c < s->col_end; ++c) want.push_back(r.w[row * t.dim + c]);
    }
    ExpectClose(coll.LocalWeights(t.name), want, "table " + t.name + " after training");
  }
}

}  // namespace shardrec::testing
