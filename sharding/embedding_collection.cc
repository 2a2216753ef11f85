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
  std::vector<Shard> shards;  // sorted by rank
  const Shard* local = nullptr;
  int64_t max_cols = 0;  // width of rows on the wire (column shards are padded to it)
  at::Tensor weight;
  std::unique_ptr<SparseOptimizer> optimizer;

  // Context of the last Forward.
  std::vector<int64_t> feature_counts;
  std::vector<at::Tensor> feature_lengths;
  at::Tensor ids;      // all ids of the table's features, concatenated
  at::Tensor unique;   // distinct ids (or all ids without dedup)
  at::Tensor inverse;  // ids[i] == unique[inverse[i]]
  std::vector<at::Tensor> send_pos;  // per shard: positions in `unique` it serves
  std::vector<int64_t> send_splits, recv_splits;
  at::Tensor recv_rows;  // local rows other ranks asked this rank for
  bool has_context = false;

  bool data_parallel() const { return plan.type == ShardingType::kDataParallel; }
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
    for (const Shard& s : t->shards) {
      t->max_cols = std::max(t->max_cols, s.col_end - s.col_begin);
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

at::Tensor PadCols(const at::Tensor& x, int64_t width) {
  if (x.size(1) == width) return x;
  return at::constant_pad_nd(x, {0, width - x.size(1)});
}

}  // namespace

FeatureOutputs ShardedEmbeddingCollection::Forward(const FeatureBatch& batch) {
  const at::Device device(comm_->device());
  FeatureOutputs out;
  comm_bytes_ = 0;
  for (auto& tp : tables_) {
    Table& t = *tp;
    const TableSpec& spec = t.spec;
    // Input: the ids of every feature of the table, concatenated.
    std::vector<at::Tensor> parts;
    t.feature_counts.clear();
    t.feature_lengths.clear();
    for (const auto& f : spec.features) {
      auto it = batch.find(f);
      if (it == batch.end()) Fail("feature batch has no feature '", f, "' (table '", spec.name, "')");
      at::Tensor ids = it->second.ids.to(device, at::kLong).contiguous().view({-1});
      at::Tensor lengths = it->second.lengths.to(device, at::kLong).contiguous().view({-1});
      const int64_t total = lengths.numel() ? lengths.sum().item<int64_t>() : 0;
      if (total != ids.numel() || (lengths.numel() && lengths.min().item<int64_t>() < 0)) {
        Fail("feature '", f, "': lengths sum to ", total, " but there are ", ids.numel(), " ids");
      }
      parts.push_back(ids);
      t.feature_counts.push_back(ids.numel());
      t.feature_lengths.push_back(lengths);
    }
    t.ids = parts.size() == 1 ? parts[0] : at::cat(parts);
    // Ids out of range: name the table, feature, id and position (never clamp).
    if (t.ids.numel() > 0) {
      at::Tensor bad = at::logical_or(t.ids < 0, t.ids >= spec.rows);
      if (bad.any().item<bool>()) {
        int64_t pos = at::nonzero(bad)[0][0].item<int64_t>();
        const int64_t id = t.ids[pos].item<int64_t>();
        size_t f = 0;
        while (pos >= t.feature_counts[f]) pos -= t.feature_counts[f++];
        at::Tensor ends = t.feature_lengths[f].cumsum(0).cpu();
        int64_t sample = 0;
        while (ends[sample].item<int64_t>() <= pos) ++sample;
        Fail("table '", spec.name, "': feature '", spec.features[f], "' has id ", id, " at position ", pos,
             " (sample ", sample, ") outside [0, ", spec.rows, ")");
      }
    }
    at::Tensor values;
    if (t.data_parallel()) {
      values = t.weight.index_select(0, t.ids);
    } else {
      // input_dist: distinct ids, bucketed by owning shard, sent to the owners.
      if (options_.dedup) {
        auto [u, inv, counts] = at::_unique2(t.ids, /*sorted=*/true, /*return_inverse=*/true, false);
        t.unique = u;
        t.inverse = inv;
      } else {
        t.unique = t.ids;
        t.inverse = at::arange(t.ids.numel(), t.ids.options());
      }
      const int w = comm_->world_size();
      t.send_splits.assign(w, 0);
      t.send_pos.clear();
      std::vector<at::Tensor> send_ids;
      for (const Shard& s : t.shards) {
        at::Tensor pos = at::nonzero(at::logical_and(t.unique >= s.row_begin, t.unique < s.row_end)).view({-1});
        t.send_pos.push_back(pos);
        send_ids.push_back(t.unique.index_select(0, pos).sub(s.row_begin));
        t.send_splits[s.rank] = pos.numel();
      }
      at::Tensor send = at::cat(send_ids);
      AllToAllResult req = comm_->AllToAll(send, t.send_splits);
      t.recv_rows = req.output;
      t.recv_splits = req.recv_splits;
      // lookup: rows of the local shard.
      at::Tensor rows = t.local ? PadCols(t.weight.index_select(0, t.recv_rows), t.max_cols)
                                : at::zeros({0, t.max_cols}, at::TensorOptions().device(device));
      if (!t.local) CHECK_EQ(t.recv_rows.numel(), 0) << "rank without a shard of " << spec.name << " got requests";
      // output_dist: rows back to the requesters, placed into the distinct-id matrix.
      AllToAllResult back = comm_->AllToAll(rows, t.recv_splits, t.send_splits);
      comm_bytes_ += send.numel() * 8 + rows.numel() * 4;
      at::Tensor unique_values = at::zeros({t.unique.numel(), spec.dim}, at::TensorOptions().device(device));
      int64_t offset = 0;
      for (size_t k = 0; k < t.shards.size(); ++k) {
        const Shard& s = t.shards[k];
        const int64_t n = t.send_pos[k].numel();
        unique_values.narrow(1, s.col_begin, s.col_end - s.col_begin)
            .index_copy_(0, t.send_pos[k], back.output.narrow(0, offset, n).narrow(1, 0, s.col_end - s.col_begin));
        offset += n;
      }
      values = unique_values.index_select(0, t.inverse);
    }
    t.has_context = true;
    int64_t offset = 0;
    for (size_t f = 0; f < spec.features.size(); ++f) {
      at::Tensor v = values.narrow(0, offset, t.feature_counts[f]);
      offset += t.feature_counts[f];
      out[spec.features[f]] = spec.pooling == Pooling::kNone ? v : Pool(v, t.feature_lengths[f], spec.pooling);
    }
  }
  return out;
}

void ShardedEmbeddingCollection::Backward(const FeatureOutputs& grads) {
  const at::Device device(comm_->device());
  for (auto& tp : tables_) {
    Table& t = *tp;
    const TableSpec& spec = t.spec;
    CHECK(t.has_context) << "Backward without Forward";
    t.has_context = false;
    std::vector<at::Tensor> parts;
    for (size_t f = 0; f < spec.features.size(); ++f) {
      auto it = grads.find(spec.features[f]);
      if (it == grads.end()) Fail("gradients have no feature '", spec.features[f], "'");
      at::Tensor g = it->second.to(device, at::kFloat).contiguous();
      const int64_t rows = spec.pooling == Pooling::kNone ? t.feature_counts[f] : t.feature_lengths[f].numel();
      if (g.dim() != 2 || g.size(0) != rows || g.size(1) != spec.dim) {
        Fail("gradient of feature '", spec.features[f], "' has shape ", c10::str(g.sizes()), ", expected [", rows,
             ", ", spec.dim, "]");
      }
      parts.push_back(spec.pooling == Pooling::kNone ? g : Unpool(g, t.feature_lengths[f], spec.pooling));
    }
    at::Tensor grad_values = parts.size() == 1 ? parts[0] : at::cat(parts);
    if (t.data_parallel()) {
      // Small replicated table: dense gradient and touched-row mask, summed over ranks.
      at::Tensor dense = at::zeros({spec.rows, spec.dim}, grad_values.options()).index_add_(0, t.ids, grad_values);
      at::Tensor touched = at::zeros({spec.rows}, grad_values.options())
                               .index_add_(0, t.ids, at::ones({t.ids.numel()}, grad_values.options()));
      comm_->AllReduce(dense, ReduceOp::kSum);
      comm_->AllReduce(touched, ReduceOp::kSum);
      at::Tensor rows = at::nonzero(touched > 0).view({-1});
      t.optimizer->Step(t.weight, rows, dense.index_select(0, rows));
      continue;
    }
    // Merge per distinct id locally, then send each owner its columns of those rows.
    at::Tensor grad_unique = at::zeros({t.unique.numel(), spec.dim}, grad_values.options())
                                 .index_add_(0, t.inverse, grad_values);
    std::vector<at::Tensor> send;
    for (size_t k = 0; k < t.shards.size(); ++k) {
      const Shard& s = t.shards[k];
      send.push_back(PadCols(grad_unique.index_select(0, t.send_pos[k]).narrow(1, s.col_begin, s.col_end - s.col_begin),
                             t.max_cols));
    }
    at::Tensor send_all = send.empty() ? at::zeros({0, t.max_cols}, grad_values.options()) : at::cat(send);
    AllToAllResult got = comm_->AllToAll(send_all, t.send_splits, t.recv_splits);
    comm_bytes_ += send_all.numel() * 4;
    if (!t.local) continue;
    const int64_t cols = t.local->col_end - t.local->col_begin;
    // Merge the gradients of each row across requesting ranks, then one fused update.
    auto [rows, inv, counts] = at::_unique2(t.recv_rows, true, true, false);
    at::Tensor merged = at::zeros({rows.numel(), cols}, grad_values.options())
                            .index_add_(0, inv, got.output.narrow(1, 0, cols));
    std::optional<at::Tensor> row_sq;
    if (t.plan.type == ShardingType::kColumnWise && spec.optimizer.type == OptimizerType::kRowWiseAdagrad) {
      // Every rank holds a column block of the same distinct rows: sum the squares over blocks.
      at::Tensor sq = merged.pow(2).sum(1);
      comm_->AllReduce(sq, ReduceOp::kSum);
      row_sq = sq;
    }
    t.optimizer->Step(t.weight, rows, merged, row_sq);
  }
}

}  // namespace shardrec
