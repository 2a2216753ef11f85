#include "sharding/embedding_collection.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <glog/logging.h>

#include <algorithm>

#include "common/error.h"
#include "common/rng.h"

namespace shardrec {

namespace {
uint64_t NameHash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}
}  // namespace

at::Tensor InitRows(const TableSpec& spec, uint64_t seed, int64_t row_begin, int64_t row_end,
                    int64_t col_begin, int64_t col_end) {
  const int64_t cols = col_end - col_begin;
  at::Tensor out = at::empty({row_end - row_begin, cols}, at::kFloat);
  float* p = out.data_ptr<float>();
  const double scale = spec.init_scale > 0 ? spec.init_scale : 1.0 / std::sqrt(static_cast<double>(spec.dim));
  const uint64_t table = NameHash(spec.name);
  at::parallel_for(row_begin, row_end, 1024, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      Rng rng(HashKeys({seed, table, static_cast<uint64_t>(r)}));
      float* row = p + (r - row_begin) * cols;
      for (int64_t c = 0; c < spec.dim; ++c) {
        const double u = rng.Uniform();  // every column is drawn so a row never depends on the split
        if (c >= col_begin && c < col_end) row[c - col_begin] = static_cast<float>((2 * u - 1) * scale);
      }
    }
  });
  return out;
}

struct ShardedEmbeddingCollection::Table {
  TableSpec spec;
  TablePlan plan;
  std::vector<Shard> shards;       // sorted by rank
  std::vector<int> shard_of_rank;  // [world] index into shards, or -1
  const Shard* local = nullptr;
  at::Tensor weight;
  std::unique_ptr<SparseOptimizer> optimizer;

  // Context of the last forward.
  std::vector<int64_t> feature_counts;
  std::vector<at::Tensor> feature_lengths;
  at::Tensor ids;      // all ids of the table's features, concatenated
  at::Tensor unique;   // distinct ids (or all ids without dedup)
  at::Tensor inverse;  // ids[i] == unique[inverse[i]]
  std::vector<at::Tensor> send_pos;  // [world] positions in `unique` that rank serves
  std::vector<int64_t> send_counts;  // [world] ids asked of each rank
  std::vector<int64_t> recv_counts;  // [world] ids each rank asked of this one
  at::Tensor recv_rows;  // local rows asked of this rank, grouped by requesting rank
  at::Tensor rows;       // lookup result [recv_rows x local cols]
  bool has_context = false;

  bool data_parallel() const { return plan.type == ShardingType::kDataParallel; }
  int64_t cols_at(int r) const {
    const int k = shard_of_rank[r];
    return k < 0 ? 0 : shards[k].col_end - shards[k].col_begin;
  }
  int64_t local_cols() const { return local ? local->col_end - local->col_begin : 0; }
};

ShardedEmbeddingCollection::ShardedEmbeddingCollection(std::vector<TableSpec> specs, ShardingPlan plan,
                                                       Communicator* comm, CollectionOptions options)
    : specs_(std::move(specs)), plan_(std::move(plan)), comm_(comm), options_(options) {
  ValidateTables(specs_);
  if (plan_.world_size != comm_->world_size()) {
    Fail("sharding plan is for ", plan_.world_size, " ranks but the job has ", comm_->world_size());
  }
  plan_.Validate(specs_);
  const at::Device device(comm_->device());
  for (const TableSpec& spec : specs_) {
    auto t = std::make_unique<Table>();
    t->spec = spec;
    t->plan = plan_.Find(spec.name);
    t->shards = t->plan.shards;
    std::sort(t->shards.begin(), t->shards.end(), [](const Shard& a, const Shard& b) { return a.rank < b.rank; });
    t->shard_of_rank.assign(comm_->world_size(), -1);
    for (size_t k = 0; k < t->shards.size(); ++k) {
      const Shard& s = t->shards[k];
      CHECK_EQ(t->shard_of_rank[s.rank], -1) << "two shards of " << spec.name << " on rank " << s.rank;
      t->shard_of_rank[s.rank] = static_cast<int>(k);
      if (s.rank == comm_->rank()) t->local = &s;
    }
    if (t->plan.type == ShardingType::kColumnWise && spec.optimizer.type == OptimizerType::kRowWiseAdagrad &&
        static_cast<int>(t->shards.size()) != comm_->world_size()) {
      Fail("table '", spec.name, "': column-wise sharding with row-wise Adagrad needs one column block per rank (dim ",
           spec.dim, " >= ", comm_->world_size(), " ranks)");
    }
    if (t->local) {
      const Shard& s = *t->local;
      t->weight = InitRows(spec, options_.seed, s.row_begin, s.row_end, s.col_begin, s.col_end).to(device);
      t->optimizer = std::make_unique<SparseOptimizer>(spec.optimizer, s.row_end - s.row_begin,
                                                       s.col_end - s.col_begin, spec.dim,
                                                       at::TensorOptions().device(device));
    }
    if (!t->data_parallel()) sharded_.push_back(t.get());
    tables_.push_back(std::move(t));
  }
}

ShardedEmbeddingCollection::~ShardedEmbeddingCollection() = default;

const Shard* ShardedEmbeddingCollection::LocalShard(const std::string& table) const {
  for (const auto& t : tables_) {
    if (t->spec.name == table) return t->local;
  }
  return nullptr;
}

at::Tensor ShardedEmbeddingCollection::LocalWeights(const std::string& table) const {
  for (const auto& t : tables_) {
    if (t->spec.name == table) return t->weight;
  }
  return at::Tensor();
}

SparseOptimizer* ShardedEmbeddingCollection::LocalOptimizer(const std::string& table) {
  for (const auto& t : tables_) {
    if (t->spec.name == table) return t->optimizer.get();
  }
  return nullptr;
}

namespace {

// Row i of a pooled feature sums (or averages) the ids of sample i.
at::Tensor Pool(const at::Tensor& values, const at::Tensor& lengths, Pooling pooling) {
  const int64_t b = lengths.size(0);
  at::Tensor seg = at::repeat_interleave(lengths);
  at::Tensor out = at::zeros({b, values.size(1)}, values.options()).index_add_(0, seg, values);
  if (pooling == Pooling::kMean) out.div_(lengths.clamp_min(1).to(values.scalar_type()).unsqueeze(1));
  return out;
}

// Gradient of Pool w.r.t. its values.
at::Tensor Unpool(const at::Tensor& grad, const at::Tensor& lengths, Pooling pooling) {
  at::Tensor seg = at::repeat_interleave(lengths);
  at::Tensor g = grad.index_select(0, seg);
  if (pooling == Pooling::kMean) g.div_(lengths.index_select(0, seg).to(g.scalar_type()).unsqueeze(1));
  return g;
}

at::Tensor CatOrEmpty(const std::vector<at::Tensor>& parts, const at::TensorOptions& options) {
  if (parts.empty()) return at::empty({0}, options);
  return parts.size() == 1 ? parts[0] : at::cat(parts);
}

}  // namespace

void ShardedEmbeddingCollection::GatherIds(Table& t, const FeatureBatch& batch) {
  const at::Device device(comm_->device());
  const TableSpec& spec = t.spec;
  std::vector<at::Tensor> parts;
  t.feature_counts.clear();
  t.feature_lengths.clear();
  for (const auto& f : spec.features) {
    auto it = batch.find(f);
    if (it == batch.end()) Fail("feature batch has no feature '", f, "' (table '", spec.name, "')");
    // Lengths are checked on the host (callers pass them there: no device round trip).
    at::Tensor ids = it->second.ids.to(at::kLong).contiguous().view({-1});
    at::Tensor lengths = it->second.lengths.to(at::kLong).contiguous().view({-1});
    const at::Tensor host_lengths = lengths.cpu();
    const int64_t* len = host_lengths.data_ptr<int64_t>();
    int64_t total = 0;
    bool negative = false;
    for (int64_t i = 0; i < host_lengths.numel(); ++i) {
      total += len[i];
      negative |= len[i] < 0;
    }
    if (total != ids.numel() || negative) {
      Fail("feature '", f, "': lengths sum to ", total, " but there are ", ids.numel(), " ids");
    }
    parts.push_back(ids.to(device));
    t.feature_counts.push_back(ids.numel());
    t.feature_lengths.push_back(lengths.to(device));
  }
  t.ids = parts.size() == 1 ? parts[0] : at::cat(parts);
  if (t.ids.numel() == 0) return;
  if (!t.ids.is_cpu()) {
    // On an accelerator the check must not wait for the device: it fails at the next synchronisation.
    const std::string what = "table '" + spec.name + "': an id is outside [0, " + std::to_string(spec.rows) + ")";
    at::_assert_async(at::logical_and(t.ids >= 0, t.ids < spec.rows).all(), what);
    return;
  }
  // Ids out of range: name the table, feature, id and position (never clamp).
  const auto [lo, hi] = at::aminmax(t.ids);
  if (lo.item<int64_t>() >= 0 && hi.item<int64_t>() < spec.rows) return;
  const at::Tensor host = t.ids.cpu();
  const int64_t* id = host.data_ptr<int64_t>();
  int64_t pos = 0;
  while (id[pos] >= 0 && id[pos] < spec.rows) ++pos;
  const int64_t bad = id[pos];
  size_t f = 0;
  while (pos >= t.feature_counts[f]) pos -= t.feature_counts[f++];
  const at::Tensor ends = t.feature_lengths[f].cumsum(0).cpu();
  int64_t sample = 0;
  while (ends.data_ptr<int64_t>()[sample] <= pos) ++sample;
  Fail("table '", spec.name, "': feature '", spec.features[f], "' has id ", bad, " at position ", pos, " (sample ",
       sample, ") outside [0, ", spec.rows, ")");
}

void ShardedEmbeddingCollection::InputDist(const FeatureBatch& batch) {
  const int w = comm_->world_size();
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(comm_->device());
  for (auto& tp : tables_) GatherIds(*tp, batch);
  // Distinct ids of every sharded table, bucketed by owner: (owner rank, table) blocks.
  std::vector<at::Tensor> send;
  std::vector<int64_t> counts(static_cast<size_t>(w) * sharded_.size(), 0);
  for (size_t k = 0; k < sharded_.size(); ++k) {
    Table& t = *sharded_[k];
    if (options_.dedup) {
      auto [u, inv, unused] = at::_unique2(t.ids, /*sorted=*/true, /*return_inverse=*/true, false);
      t.unique = u;
      t.inverse = inv;
    } else {
      t.unique = t.ids;
      t.inverse = at::arange(t.ids.numel(), longs);
    }
    t.send_pos.assign(w, at::Tensor());
    t.send_counts.assign(w, 0);
    for (const Shard& s : t.shards) {
      at::Tensor pos = at::nonzero(at::logical_and(t.unique >= s.row_begin, t.unique < s.row_end)).view({-1});
      t.send_pos[s.rank] = pos;
      t.send_counts[s.rank] = pos.numel();
    }
  }
  for (int r = 0; r < w; ++r) {
    for (size_t k = 0; k < sharded_.size(); ++k) {
      Table& t = *sharded_[k];
      counts[r * sharded_.size() + k] = t.send_counts[r];
      const int s = t.shard_of_rank[r];
      if (s >= 0 && t.send_counts[r] > 0) send.push_back(t.unique.index_select(0, t.send_pos[r]).sub(t.shards[s].row_begin));
    }
  }
  // One exchange of the (rank, table) counts, then one of the ids of every table.
  const int64_t tables = static_cast<int64_t>(sharded_.size());
  at::Tensor count_tensor = at::tensor(counts, at::kLong).to(comm_->device());
  std::vector<int64_t> per_rank(w, tables);
  const at::Tensor got_counts = comm_->AllToAll(count_tensor, per_rank, per_rank).output.cpu();
  std::vector<int64_t> send_splits(w, 0), recv_splits(w, 0);
  for (size_t k = 0; k < sharded_.size(); ++k) sharded_[k]->recv_counts.assign(w, 0);
  for (int r = 0; r < w; ++r) {
    for (int64_t k = 0; k < tables; ++k) {
      send_splits[r] += counts[r * tables + k];
      const int64_t n = got_counts.data_ptr<int64_t>()[r * tables + k];
      sharded_[k]->recv_counts[r] = n;
      recv_splits[r] += n;
    }
  }
  at::Tensor ids = comm_->AllToAll(CatOrEmpty(send, longs), send_splits, recv_splits).output;
  comm_bytes_ += ids.numel() * 8;
  // Received ids: per source rank, table by table. Each table keeps its requests in rank order.
  std::vector<std::vector<at::Tensor>> by_table(sharded_.size());
  int64_t offset = 0;
  for (int r = 0; r < w; ++r) {
    for (int64_t k = 0; k < tables; ++k) {
      const int64_t n = sharded_[k]->recv_counts[r];
      by_table[k].push_back(ids.narrow(0, offset, n));
      offset += n;
    }
  }
  for (int64_t k = 0; k < tables; ++k) {
    Table& t = *sharded_[k];
    t.recv_rows = CatOrEmpty(by_table[k], longs);
    if (!t.local) CHECK_EQ(t.recv_rows.numel(), 0) << "rank without a shard of " << t.spec.name << " got requests";
  }
}

void ShardedEmbeddingCollection::Lookup() {
  for (Table* t : sharded_) {
    if (t->local) t->rows = t->weight.index_select(0, t->recv_rows);
  }
}

// Splits (in floats) of one flat exchange of rows, rank by rank and within a rank table by table:
// the rows this rank serves to each rank at its local width (asked_of_me), or the rows it asked of
// each rank at that rank's shard width.
std::vector<int64_t> ShardedEmbeddingCollection::RowSplits(bool asked_of_me) const {
  const int w = comm_->world_size();
  std::vector<int64_t> splits(w, 0);
  for (int r = 0; r < w; ++r) {
    for (const Table* t : sharded_) {
      splits[r] += asked_of_me ? t->recv_counts[r] * t->local_cols() : t->send_counts[r] * t->cols_at(r);
    }
  }
  return splits;
}

FeatureOutputs ShardedEmbeddingCollection::OutputDist() {
  const int w = comm_->world_size();
  const at::TensorOptions floats = at::TensorOptions().dtype(at::kFloat).device(comm_->device());
  // Rows back to the requesters in one flat exchange for all tables.
  std::vector<at::Tensor> send;
  std::vector<int64_t> row_offset(sharded_.size(), 0);
  for (int r = 0; r < w; ++r) {
    for (size_t k = 0; k < sharded_.size(); ++k) {
      Table& t = *sharded_[k];
      const int64_t n = t.recv_counts[r];
      if (n > 0) send.push_back(t.rows.narrow(0, row_offset[k], n).reshape({-1}));
      row_offset[k] += n;
    }
  }
  at::Tensor got = comm_->AllToAll(CatOrEmpty(send, floats), RowSplits(true), RowSplits(false)).output;
  comm_bytes_ += got.numel() * 4;
  std::vector<at::Tensor> unique_values;
  for (Table* t : sharded_) unique_values.push_back(at::zeros({t->unique.numel(), t->spec.dim}, floats));
  int64_t offset = 0;
  for (int r = 0; r < w; ++r) {
    for (size_t k = 0; k < sharded_.size(); ++k) {
      Table& t = *sharded_[k];
      const int64_t n = t.send_counts[r], cols = t.cols_at(r);
      if (n == 0) continue;
      const Shard& s = t.shards[t.shard_of_rank[r]];
      unique_values[k].narrow(1, s.col_begin, cols).index_copy_(0, t.send_pos[r], got.narrow(0, offset, n * cols).view({n, cols}));
      offset += n * cols;
    }
  }
  FeatureOutputs out;
  size_t k = 0;
  for (auto& tp : tables_) {
    Table& t = *tp;
    at::Tensor values = t.data_parallel() ? t.weight.index_select(0, t.ids) : unique_values[k++].index_select(0, t.inverse);
    t.has_context = true;
    int64_t pos = 0;
    for (size_t f = 0; f < t.spec.features.size(); ++f) {
      at::Tensor v = values.narrow(0, pos, t.feature_counts[f]);
      pos += t.feature_counts[f];
      out[t.spec.features[f]] = t.spec.pooling == Pooling::kNone ? v : Pool(v, t.feature_lengths[f], t.spec.pooling);
    }
  }
  return out;
}

FeatureOutputs ShardedEmbeddingCollection::Forward(const FeatureBatch& batch) {
  comm_bytes_ = 0;
  InputDist(batch);
  Lookup();
  return OutputDist();
}

void ShardedEmbeddingCollection::Backward(const FeatureOutputs& grads) {
  const int w = comm_->world_size();
  const at::TensorOptions floats = at::TensorOptions().dtype(at::kFloat).device(comm_->device());
  std::vector<at::Tensor> grad_unique;
  for (auto& tp : tables_) {
    Table& t = *tp;
    const TableSpec& spec = t.spec;
    CHECK(t.has_context) << "Backward without Forward";
    t.has_context = false;
    std::vector<at::Tensor> parts;
    for (size_t f = 0; f < spec.features.size(); ++f) {
      auto it = grads.find(spec.features[f]);
      if (it == grads.end()) Fail("gradients have no feature '", spec.features[f], "'");
      at::Tensor g = it->second.to(floats).contiguous();
      const int64_t rows = spec.pooling == Pooling::kNone ? t.feature_counts[f] : t.feature_lengths[f].numel();
      if (g.dim() != 2 || g.size(0) != rows || g.size(1) != spec.dim) {
        Fail("gradient of feature '", spec.features[f], "' has shape ", c10::str(g.sizes()), ", expected [", rows,
             ", ", spec.dim, "]");
      }
      parts.push_back(spec.pooling == Pooling::kNone ? g : Unpool(g, t.feature_lengths[f], spec.pooling));
    }
    at::Tensor grad_values = CatOrEmpty(parts, floats).view({-1, spec.dim});
    if (t.data_parallel()) {
      // Small replicated table: dense gradient and touched-row mask, summed over ranks.
      at::Tensor dense = at::zeros({spec.rows, spec.dim}, floats).index_add_(0, t.ids, grad_values);
      at::Tensor touched = at::zeros({spec.rows}, floats).index_add_(0, t.ids, at::ones({t.ids.numel()}, floats));
      comm_->AllReduce(dense, ReduceOp::kSum);
      comm_->AllReduce(touched, ReduceOp::kSum);
      at::Tensor rows = at::nonzero(touched > 0).view({-1});
      t.optimizer->Step(t.weight, rows, dense.index_select(0, rows));
      continue;
    }
    // Merged per distinct id locally before anything is sent.
    grad_unique.push_back(at::zeros({t.unique.numel(), spec.dim}, floats).index_add_(0, t.inverse, grad_values));
  }
  // Each owner gets its columns of its rows, all tables in one exchange (the reverse of OutputDist).
  std::vector<at::Tensor> send;
  for (int r = 0; r < w; ++r) {
    for (size_t k = 0; k < sharded_.size(); ++k) {
      const Table& t = *sharded_[k];
      if (t.send_counts[r] == 0) continue;
      const Shard& s = t.shards[t.shard_of_rank[r]];
      send.push_back(grad_unique[k].index_select(0, t.send_pos[r]).narrow(1, s.col_begin, s.col_end - s.col_begin).reshape({-1}));
    }
  }
  at::Tensor got = comm_->AllToAll(CatOrEmpty(send, floats), RowSplits(false), RowSplits(true)).output;
  comm_bytes_ += got.numel() * 4;
  std::vector<std::vector<at::Tensor>> by_table(sharded_.size());
  int64_t offset = 0;
  for (int r = 0; r < w; ++r) {
    for (size_t k = 0; k < sharded_.size(); ++k) {
      const Table& t = *sharded_[k];
      const int64_t n = t.recv_counts[r] * t.local_cols();
      if (n > 0) by_table[k].push_back(got.narrow(0, offset, n).view({t.recv_counts[r], t.local_cols()}));
      offset += n;
    }
  }
  for (size_t k = 0; k < sharded_.size(); ++k) {
    Table& t = *sharded_[k];
    if (!t.local) continue;
    ApplyRowGradients(t, CatOrEmpty(by_table[k], floats).view({-1, t.local_cols()}));
  }
}

void ShardedEmbeddingCollection::ApplyRowGradients(Table& t, const at::Tensor& row_grads) {
  // Merge the gradients of each row across requesting ranks, then one fused update.
  auto [rows, inv, unused] = at::_unique2(t.recv_rows, true, true, false);
  at::Tensor merged = at::zeros({rows.numel(), t.local_cols()}, row_grads.options()).index_add_(0, inv, row_grads);
  std::optional<at::Tensor> row_sq;
  if (t.plan.type == ShardingType::kColumnWise && t.spec.optimizer.type == OptimizerType::kRowWiseAdagrad) {
    // Every rank holds a column block of the same distinct rows: sum the squares over blocks.
    at::Tensor sq = merged.pow(2).sum(1);
    comm_->AllReduce(sq, ReduceOp::kSum);
    row_sq = sq;
  }
  t.optimizer->Step(t.weight, rows, merged, row_sq);
}

}  // namespace shardrec
