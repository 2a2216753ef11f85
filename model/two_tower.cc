#include "model/two_tower.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include <glog/logging.h>

#include "common/error.h"
#include "model/keyed_mask.h"
#include "sharding/lookup_function.h"

namespace shardrec {
namespace {

// What keys a training step's dropout masks (model/keyed_mask.h): the step's seed, each row's key
// in the global batch, and the full extent of a history (max_len) that numbers its positions.
struct MaskKeys {
  uint64_t seed = 0;
  at::Tensor rows;  // int64 [B] on the host
  int64_t max_len = 1;
};

// Dropout sites: the input, then three per block (attention weights, projection, feed-forward).
constexpr uint64_t kInputSite = 0, kIdDropoutSite = ~0ULL;
uint64_t BlockSite(int64_t block, int64_t part) { return 1 + 3 * static_cast<uint64_t>(block) + static_cast<uint64_t>(part); }

// Inverted dropout of x [B x W x dim] (or [B x heads x W x W] attention weights, full_heads > 0).
at::Tensor Dropout(const at::Tensor& x, double p, bool training, const MaskKeys& keys, uint64_t site, int64_t full_heads = 0) {
  if (!training || p <= 0.0) return x;
  const std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  const std::vector<int64_t> full = full_heads > 0 ? std::vector<int64_t>{full_heads, keys.max_len, keys.max_len}
                                                   : std::vector<int64_t>{keys.max_len, x.size(2)};
  const at::Tensor keep = KeyedKeepMask(shape, full, keys.rows, keys.seed, site, p);
  return x * keep.to(x.device(), x.scalar_type()) * (1.0 / (1.0 - p));
}

// Causal attention over [B x heads x L x d] parts. With attention dropout the product is written
// out (as SDPA's CPU path does with dropout too) so that the mask is the keyed one.
at::Tensor CausalAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout,
                           const MaskKeys& keys, uint64_t site) {
  if (dropout <= 0.0) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  const int64_t b = q.size(0), h = q.size(1), l = q.size(2), d = q.size(3);
  const at::Tensor future = at::zeros({l, l}, q.options()).masked_fill(
      at::ones({l, l}, q.options().dtype(at::kBool)).triu(1), -std::numeric_limits<float>::infinity());
  at::Tensor scores = at::baddbmm(future.expand({b * h, l, l}), (q * (1.0 / std::sqrt(static_cast<double>(d)))).reshape({b * h, l, d}),
                                  k.reshape({b * h, l, d}).transpose(1, 2));
  at::Tensor weights = at::softmax(scores, -1).view({b, h, l, l});
  return at::matmul(Dropout(weights, dropout, true, keys, site, h), v);
}

// Pre-norm causal self-attention block.
struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t dim, int64_t heads, double dropout)
      : heads(heads),
        dropout(dropout),
        ln1(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        ln2(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        qkv(register_module("qkv", torch::nn::Linear(dim, 3 * dim))),
        proj(register_module("proj", torch::nn::Linear(dim, dim))),
        ff1(register_module("ff1", torch::nn::Linear(dim, 4 * dim))),
        ff2(register_module("ff2", torch::nn::Linear(4 * dim, dim))) {}

  torch::Tensor forward(const torch::Tensor& x, const MaskKeys& keys, int64_t index) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
    const bool on = is_training();
    auto parts = qkv(ln1(x)).view({b, l, 3, heads, d / heads}).permute({2, 0, 3, 1, 4});
    auto att = CausalAttention(parts[0], parts[1], parts[2], on ? dropout : 0.0, keys, BlockSite(index, 0));
    auto h = x + Dropout(proj(att.transpose(1, 2).reshape({b, l, d})), dropout, on, keys, BlockSite(index, 1));
    return h + Dropout(ff2(torch::gelu(ff1(ln2(h)))), dropout, on, keys, BlockSite(index, 2));
  }

  int64_t heads;
  double dropout;
  torch::nn::LayerNorm ln1, ln2;
  torch::nn::Linear qkv, proj, ff1, ff2;
};
TORCH_MODULE(Block);

struct DenseImpl : torch::nn::Module {
  DenseImpl(const ModelConfig& c, int64_t content_dim) {
    positions = register_module("positions", torch::nn::Embedding(c.max_len + 1, c.dim));
    torch::nn::init::normal_(positions->weight, 0.0, 0.02);
    if (c.time_buckets > 0) {
      gaps = register_module("gaps", torch::nn::Embedding(c.time_buckets, c.dim));
      torch::nn::init::normal_(gaps->weight, 0.0, 0.02);
    }
    if (c.context) context = register_module("context", torch::nn::Embedding(ContextRows::kTotal, c.dim));
    if (content_dim > 0) content = register_module("content", torch::nn::Linear(content_dim, c.dim));
    for (int64_t i = 0; i < c.blocks; ++i) {
      blocks.push_back(register_module("block" + std::to_string(i), Block(c.dim, c.heads, c.dropout)));
    }
    ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
  }
  torch::nn::Embedding positions{nullptr}, gaps{nullptr}, context{nullptr};
  torch::nn::Linear content{nullptr};
  std::vector<Block> blocks;
  torch::nn::LayerNorm ln_final{nullptr};
};
TORCH_MODULE(Dense);

}  // namespace

int64_t DenseParameterCount(const ModelConfig& config, int64_t content_dim) {
  Dense dense(config, content_dim);
  int64_t n = 0;
  for (const auto& p : dense->parameters()) n += p.numel();
  return n;
}

namespace {

at::Tensor Normalize(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

// Deterministic initialisation from a private generator: torch's default generator is shared by
// every thread of the process (ranks of the in-process backend), so module constructors would draw
// interleaved values. Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); embeddings: N(0, 0.02);
// LayerNorm: weight 1, bias 0.
void InitDense(torch::nn::Module& module, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : module.named_parameters()) {
    const std::string& name = p.key();
    at::Tensor t = p.value();
    at::Tensor cpu = at::empty(t.sizes(), at::kFloat);
    const bool norm = name.find("ln") != std::string::npos;
    if (norm) {
      cpu.fill_(name.find("weight") != std::string::npos ? 1.0 : 0.0);
    } else if (name.rfind("positions", 0) == 0 || name.rfind("gaps", 0) == 0 || name.rfind("context", 0) == 0) {
      cpu.normal_(0.0, 0.02, gen);
      if (name.rfind("context", 0) == 0) {
        // The unknown-request rows stay zero: no real position reads them in training, so they
        // get no gradient, and an unknown request adds nothing.
        for (int64_t row : {ContextRows::kRequestHour, ContextRows::kRequestDay, ContextRows::kRequestGap}) cpu[row].zero_();
      }
    } else {
      const int64_t fan_in = t.dim() == 2 ? t.size(1) : std::max<int64_t>(1, t.size(0));
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      cpu.uniform_(-bound, bound, gen);
    }
    t.copy_(cpu);
  }
}

}  // namespace

void CheckModelConfig(const ModelConfig& m) {
  // Upper bounds far past any model that fits a machine: past them a size computation could overflow.
  RequireFlag(m.dim >= 1 && m.dim <= 65536, "dim", "1 to 65536", m.dim);
  RequireFlag(m.blocks >= 0 && m.blocks <= 1024, "blocks", "0 to 1024", m.blocks);
  RequireFlag(m.heads >= 1 && m.heads <= m.dim, "heads", "1 to --dim", m.heads);
  if (m.dim % m.heads != 0) Fail("--dim ", m.dim, " is not divisible by --heads ", m.heads);
  RequireFlag(m.max_len >= 1 && m.max_len <= (1 << 20), "max-len", "1 to 1048576", m.max_len);
  RequireFlag(m.dropout >= 0 && m.dropout < 1, "dropout", "a rate in [0, 1)", m.dropout);
  RequireFlag(m.id_dropout >= 0 && m.id_dropout < 1, "id-dropout", "a rate in [0, 1)", m.id_dropout);
  RequireFlag(m.time_buckets >= 0 && m.time_buckets <= 4096, "time-buckets", "0 (off) to 4096", m.time_buckets);
  RequireFlag(std::isfinite(m.embedding_optimizer.lr) && m.embedding_optimizer.lr > 0, "embedding-lr", "a finite rate > 0",
          m.embedding_optimizer.lr);
}

struct TwoTowerModel::Impl {
  ModelConfig config;
  ItemCatalog catalog;
  Communicator* comm;
  torch::Device device{torch::kCPU};
  std::unique_ptr<ShardedEmbeddingCollection> embeddings;
  Dense dense{nullptr};
  at::Tensor content;  // on device
  uint64_t dropout_seed = 0;  // the step's (SeedDropout)
  // The catalogue's categories as tensors (CPU): CSR offsets [I+1] and values.
  at::Tensor category_offsets, category_values;

  FeatureBatch CategoryFeature(const at::Tensor& uniq) const;
};

// Categories of the distinct items `uniq` as a jagged feature, gathered without a per-item loop.
FeatureBatch TwoTowerModel::Impl::CategoryFeature(const at::Tensor& uniq) const {
  const at::Tensor u = uniq.cpu();
  const at::Tensor begin = category_offsets.index_select(0, u);
  const at::Tensor lengths = category_offsets.index_select(0, u + 1) - begin;
  // Position of every value: its item's begin + its rank inside the item.
  const at::Tensor starts = at::repeat_interleave(begin, lengths);
  const at::Tensor first = at::cumsum(lengths, 0) - lengths;
  const at::Tensor within = at::arange(starts.numel(), at::kLong) - at::repeat_interleave(first, lengths);
  FeatureBatch b;
  b["item_category"] = {category_values.index_select(0, starts + within), lengths};
  return b;
}

std::vector<TableSpec> ItemTowerTables(const ModelConfig& config, const ItemCatalog& catalog) {
  std::vector<TableSpec> tables;
  TableSpec items{.name = "item_id", .rows = catalog.num_items, .dim = config.dim, .features = {"item_id"}};
  items.optimizer = config.embedding_optimizer;
  items.lookups_per_sample = static_cast<double>(config.max_len);
  tables.push_back(items);
  if (config.separate_input_vectors) {
    TableSpec input{.name = "item_input_id", .rows = catalog.num_items, .dim = config.dim, .features = {"item_input_id"}};
    input.optimizer = config.embedding_optimizer;
    input.lookups_per_sample = static_cast<double>(config.max_len);
    tables.push_back(input);
  }
  if (config.use_categories && catalog.num_categories > 0) {
    TableSpec cats{.name = "item_category", .rows = catalog.num_categories, .dim = config.dim,
                   .features = {"item_category"}, .pooling = Pooling::kMean};
    cats.optimizer = config.embedding_optimizer;
    cats.lookups_per_sample = static_cast<double>(config.max_len) * 2;
    tables.push_back(cats);
  }
  if (config.sharding != "auto") {
    const ShardingType t = ParseShardingType(config.sharding);
    for (auto& spec : tables) spec.pinned = t;
  }
  return tables;
}

ShardingPlan PlanItemTables(const ModelConfig& config, const ItemCatalog& catalog, Communicator& comm,
                            PlannerOptions options) {
  ShardingPlan plan;
  options.world_size = comm.world_size();
  if (comm.rank() == 0) plan = PlanSharding(ItemTowerTables(config, catalog), options);
  return BroadcastPlan(comm, plan);
}

TwoTowerModel::TwoTowerModel(const ModelConfig& config, const ItemCatalog& catalog, const ShardingPlan& plan,
                             Communicator* comm, uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = config;
  m.catalog = catalog;
  m.comm = comm;
  m.device = torch::Device(comm->device());
  CheckModelConfig(config);
  if (catalog.num_items < 1) Fail("model: the catalogue is empty");
  if (!config.use_categories) m.catalog.num_categories = 0;
  if (!config.use_content) m.catalog.content = at::Tensor();
  if (m.catalog.num_categories > 0) {
    m.category_offsets = torch::tensor(m.catalog.category_offsets, torch::kLong);
    m.category_values = torch::tensor(m.catalog.category_values, torch::kLong);
  }
  m.embeddings = std::make_unique<ShardedEmbeddingCollection>(ItemTowerTables(config, catalog), plan, comm,
                                                              CollectionOptions{.seed = seed, .dedup = true});
  const int64_t content_dim = m.catalog.content.defined() ? m.catalog.content.size(1) : 0;
  m.dense = Dense(config, content_dim);
  InitDense(*m.dense, seed);
  m.dense->to(m.device);
  m.dropout_seed = seed;
  if (m.catalog.content.defined()) m.content = m.catalog.content.to(m.device, at::kFloat);
  // Identical dense parameters everywhere, whatever each rank's generator did.
  torch::NoGradGuard no_grad;
  for (auto& p : m.dense->parameters()) {
    at::Tensor t = p.detach();
    comm->Broadcast(t, 0);
  }
}

TwoTowerModel::~TwoTowerModel() = default;

at::Tensor TwoTowerModel::EncodeDistinctItems(const at::Tensor& sorted_ids) {
  return EncodeItemVectors(sorted_ids, at::empty({0}, at::kLong)).output;
}

ItemVectors TwoTowerModel::EncodeItemVectors(const at::Tensor& output_ids, const at::Tensor& input_ids, bool with_content) {
  Impl& m = *impl_;
  const at::Tensor out_ids = output_ids.to(m.device, at::kLong).view({-1});
  const at::Tensor in_ids = input_ids.to(m.device, at::kLong).view({-1});
  // Tied vectors: the rows of both sets are one lookup of their union. Separate: the id tables
  // are looked up apart, and categories and content once for the union.
  const bool same = output_ids.is_same(input_ids);
  const at::Tensor all = same || in_ids.numel() == 0 ? out_ids
                         : out_ids.numel() == 0      ? in_ids
                                                     : std::get<0>(at::_unique2(at::cat({out_ids, in_ids}), true, false, false));
  FeatureBatch batch;
  if (m.catalog.num_categories > 0) batch = m.CategoryFeature(all);
  const auto ones = [](const at::Tensor& ids) { return at::ones({ids.numel()}, at::kLong); };  // lengths on the host
  if (m.config.separate_input_vectors) {
    batch["item_id"] = {out_ids, ones(out_ids)};
    batch["item_input_id"] = {in_ids, ones(in_ids)};
  } else {
    batch["item_id"] = {all, ones(all)};
  }
  FeatureOutputs looked_up = DifferentiableLookup(*m.embeddings, batch);
  at::Tensor shared;  // [all x dim]: categories + content, or undefined
  if (m.catalog.num_categories > 0) shared = looked_up["item_category"];
  if (m.content.defined()) {
    at::Tensor c = m.dense->content(m.content.index_select(0, all));
    shared = shared.defined() ? shared + c : c;
  }
  const auto rows_of = [&](const at::Tensor& t, const at::Tensor& ids) {
    return t.size(0) == ids.numel() ? t : t.index_select(0, at::searchsorted(all, ids));
  };
  // Id dropout: one draw per distinct item of the call, shared by its output and input vectors.
  if (shared.defined() && m.config.id_dropout > 0 && m.dense->is_training() && all.numel() > 0) {
    const at::Tensor keep =
        KeyedKeep(all, m.dropout_seed, kIdDropoutSite, m.config.id_dropout).to(shared.device(), shared.scalar_type()).view({-1, 1});
    looked_up["item_id"] = looked_up["item_id"] * rows_of(keep, m.config.separate_input_vectors ? out_ids : all);
    if (m.config.separate_input_vectors) looked_up["item_input_id"] = looked_up["item_input_id"] * rows_of(keep, in_ids);
  }
  const auto finish = [&](at::Tensor v, const at::Tensor& ids) {
    if (shared.defined()) v = v + rows_of(shared, ids);
    return m.config.cosine ? Normalize(v) : v;
  };
  ItemVectors r;
  if (with_content && shared.defined()) {
    const at::Tensor c = rows_of(shared, out_ids);
    r.content = m.config.cosine ? Normalize(c) : c;
  }
  if (m.config.separate_input_vectors) {
    r.output = finish(looked_up["item_id"], out_ids);
    r.input = finish(looked_up["item_input_id"], in_ids);
  } else {
    const at::Tensor v = finish(looked_up["item_id"], all);
    r.output = rows_of(v, out_ids);
    r.input = rows_of(v, in_ids);
  }
  return r;
}

at::Tensor TwoTowerModel::EncodeHistory(const HistoryBatch& h, const at::Tensor& input_vectors, bool all_positions) {
  Impl& m = *impl_;
  const int64_t b = h.rows, l = std::max<int64_t>(1, h.width);
  if (h.width > m.config.max_len) Fail("model: history of ", h.width, " positions exceeds max_len ", m.config.max_len);
  at::Tensor rows = h.width > 0 ? h.items.clamp_min(0) : at::zeros({b, 1}, h.items.options());
  at::Tensor x = input_vectors.index_select(0, rows.reshape({-1})).view({b, l, -1});
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(m.device);
  at::Tensor pos = torch::arange(l, longs).unsqueeze(0);
  // From the newest: event k of a history of length n sits at max_len - n + k, so the last event is
  // always at max_len - 1; padding takes the spare row max_len.
  if (m.config.positions_from_newest) pos = (pos + (m.config.max_len - h.lengths).unsqueeze(1)).clamp_max(m.config.max_len);
  x = x + m.dense->positions(pos);
  if (m.dense->gaps && h.gaps.defined() && h.width > 0) x = x + m.dense->gaps(h.gaps);
  if (m.dense->context && h.context.defined() && h.width > 0) x = x + m.dense->context(h.context).sum(2);
  const MaskKeys keys{.seed = m.dropout_seed, .rows = h.keys.defined() ? h.keys : torch::arange(b, torch::kLong),
                      .max_len = m.config.max_len};
  x = Dropout(x, m.config.dropout, m.dense->is_training(), keys, kInputSite);
  // Left-aligned histories under causal attention: positions < length never see padding.
  for (size_t i = 0; i < m.dense->blocks.size(); ++i) x = m.dense->blocks[i]->forward(x, keys, static_cast<int64_t>(i));
  at::Tensor out = m.dense->ln_final(x);
  if (m.config.cosine) out = Normalize(out);
  if (all_positions) return out;
  at::Tensor last = (h.lengths - 1).clamp_min(0);
  return out.index({torch::arange(b, longs), last});
}

at::Tensor TwoTowerModel::EncodeHistory(const HistoryBatch& h) {
  // Each distinct history item is encoded once; the histories then index those rows.
  const at::Tensor ids = std::get<0>(at::_unique2(h.items.masked_select(h.items >= 0), true, false, false));
  at::Tensor vectors = EncodeItemVectors(at::empty({0}, at::kLong), ids).input;  // collective, also with no histories
  if (h.rows == 0) return at::zeros({0, impl_->config.dim}, vectors.options());
  return EncodeHistory(h.IndexedBy(ids), vectors);
}

bool TwoTowerModel::has_content_path() const {
  return impl_->catalog.num_categories > 0 || impl_->content.defined();
}

void TwoTowerModel::ZeroIdRows(const std::vector<int64_t>& train_counts) {
  Impl& m = *impl_;
  CHECK_EQ(static_cast<int64_t>(train_counts.size()), m.catalog.num_items);
  torch::NoGradGuard no_grad;
  for (const char* table : {"item_id", "item_input_id"}) {
    const Shard* s = m.embeddings->LocalShard(table);
    if (!s) continue;
    std::vector<int64_t> rows;
    for (int64_t r = s->row_begin; r < s->row_end; ++r) {
      if (train_counts[static_cast<size_t>(r)] == 0) rows.push_back(r - s->row_begin);
    }
    if (rows.empty()) continue;
    at::Tensor w = m.embeddings->LocalWeights(table);
    w.index_fill_(0, torch::tensor(rows, torch::kLong).to(w.device()), 0.0);
  }
}

void TwoTowerModel::ZeroUnknownCategoryRows(const at::Tensor& known) {
  Impl& m = *impl_;
  if (m.catalog.num_categories == 0 || !known.defined()) return;
  CHECK_EQ(known.numel(), m.catalog.num_categories);
  const Shard* s = m.embeddings->LocalShard("item_category");
  if (!s) return;
  torch::NoGradGuard no_grad;
  const at::Tensor rows = at::nonzero(known.narrow(0, s->row_begin, s->row_end - s->row_begin).logical_not()).view({-1});
  if (rows.numel() == 0) return;
  at::Tensor w = m.embeddings->LocalWeights("item_category");
  w.index_fill_(0, rows.to(w.device()), 0.0);
}

at::Tensor TwoTowerModel::EncodeContent(const at::Tensor& ids_in) {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  const at::Tensor ids = ids_in.to(m.device, at::kLong).view({-1});
  at::Tensor out = at::zeros({ids.numel(), m.config.dim}, at::TensorOptions().dtype(at::kFloat).device(m.device));
  if (m.catalog.num_categories > 0) {
    // Every table's feature takes part in a lookup (empty ones included): the call is collective.
    FeatureBatch batch = m.CategoryFeature(ids);
    const at::Tensor none = at::empty({0}, at::kLong);
    batch["item_id"] = {none, none};
    if (m.config.separate_input_vectors) batch["item_input_id"] = {none, none};
    out = out + m.embeddings->Forward(batch)["item_category"];
  }
  if (m.content.defined()) out = out + m.dense->content(m.content.index_select(0, ids));
  return out;
}

int64_t TwoTowerModel::ImputeUntrainedIdRows(int64_t neighbours) {
  Impl& m = *impl_;
  CHECK_GE(neighbours, 1);
  if (!has_content_path()) return 0;
  torch::NoGradGuard no_grad;
  const int64_t n = m.catalog.num_items;
  const auto on = [&](at::ScalarType t) { return at::TensorOptions().dtype(t).device(m.device); };
  // Which rows are all zero, over every shard (a column-wise row is zero when all its pieces are).
  at::Tensor nonzero = at::zeros({n}, on(at::kInt));
  std::vector<std::string> tables = {"item_id"};
  if (m.config.separate_input_vectors) tables.push_back("item_input_id");
  for (const std::string& t : tables) {
    const Shard* s = m.embeddings->LocalShard(t);
    if (!s) continue;
    const at::Tensor w = m.embeddings->LocalWeights(t);
    nonzero.narrow(0, s->row_begin, s->row_end - s->row_begin).add_(w.ne(0).any(1).to(at::kInt));
  }
  m.comm->AllReduce(nonzero, ReduceOp::kSum);
  const at::Tensor untrained = at::nonzero(nonzero.eq(0)).view({-1}).cpu(), trained = at::nonzero(nonzero.gt(0)).view({-1});
  if (untrained.numel() == 0 || trained.numel() == 0) return 0;
  // Content-path vectors of the catalogue, unit length.
  std::vector<at::Tensor> parts;
  for (int64_t b = 0; b < n; b += 65536) parts.push_back(EncodeContent(at::arange(b, std::min(n, b + 65536), at::kLong)));
  const at::Tensor content = at::cat(parts);
  const at::Tensor unit = content / content.norm(2, 1, true).clamp_min(1e-12);
  const at::Tensor trained_unit = unit.index_select(0, trained);
  const int64_t k = std::min<int64_t>(neighbours, trained.numel());
  // Blocks of untrained items: at most ~64M similarities at a time, and the same calls on every rank.
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 26) / std::max<int64_t>(1, trained.numel()));
  for (int64_t b = 0; b < untrained.numel(); b += block) {
    const at::Tensor ids = untrained.narrow(0, b, std::min(block, untrained.numel() - b));
    const at::Tensor sims = at::matmul(unit.index_select(0, ids.to(m.device)), trained_unit.t());
    const at::Tensor nearest = trained.index_select(0, std::get<1>(at::topk(sims, k, 1)).reshape({-1}));  // [rows x k] ids
    FeatureBatch batch;
    const at::Tensor ones = at::ones({nearest.numel()}, at::kLong), none = at::empty({0}, at::kLong);
    for (const std::string& t : tables) batch[t] = {nearest, ones};
    if (m.catalog.num_categories > 0) batch["item_category"] = {none, none};
    FeatureOutputs rows = m.embeddings->Forward(batch);
    for (const std::string& t : tables) {
      // The neighbours' mean direction at their mean length: averaging shortens a vector, and an id
      // vector's length carries its item's popularity.
      const at::Tensor near = rows[t].view({ids.numel(), k, -1});
      const at::Tensor direction = near.mean(1);
      const at::Tensor mean = direction * (near.norm(2, 2).mean(1, true) / direction.norm(2, 1, true).clamp_min(1e-12));
      const Shard* s = m.embeddings->LocalShard(t);
      if (!s) continue;
      at::Tensor w = m.embeddings->LocalWeights(t);
      const at::Tensor id = ids.to(m.device);
      const at::Tensor mine = at::nonzero(id.ge(s->row_begin).logical_and(id.lt(s->row_end))).view({-1});
      if (mine.numel() == 0) continue;
      w.index_copy_(0, id.index_select(0, mine) - s->row_begin,
                    mean.index_select(0, mine).narrow(1, s->col_begin, s->col_end - s->col_begin).to(w.scalar_type()));
    }
  }
  return untrained.numel();
}

std::vector<at::Tensor> TwoTowerModel::dense_parameters() {
  std::vector<at::Tensor> out;
  for (auto& p : impl_->dense->parameters()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> TwoTowerModel::named_dense_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : impl_->dense->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

void TwoTowerModel::train(bool on) { impl_->dense->train(on); }
bool TwoTowerModel::is_training() const { return impl_->dense->is_training(); }
void TwoTowerModel::SeedDropout(uint64_t seed) { impl_->dropout_seed = seed; }
const ModelConfig& TwoTowerModel::config() const { return impl_->config; }

const ItemCatalog& TwoTowerModel::catalog() const { return impl_->catalog; }
ShardedEmbeddingCollection& TwoTowerModel::embeddings() { return *impl_->embeddings; }

}  // namespace shardrec
