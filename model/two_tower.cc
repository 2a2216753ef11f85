#include "model/two_tower.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "common/error.h"

namespace shardrec {
namespace {

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

  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
    auto parts = qkv(ln1(x)).view({b, l, 3, heads, d / heads}).permute({2, 0, 3, 1, 4});
    auto att = at::scaled_dot_product_attention(parts[0], parts[1], parts[2], {}, is_training() ? dropout : 0.0,
                                                /*is_causal=*/true);
    auto h = x + torch::dropout(proj(att.transpose(1, 2).reshape({b, l, d})), dropout, is_training());
    return h + torch::dropout(ff2(torch::gelu(ff1(ln2(h)))), dropout, is_training());
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
    if (content_dim > 0) content = register_module("content", torch::nn::Linear(content_dim, c.dim));
    for (int64_t i = 0; i < c.blocks; ++i) {
      blocks.push_back(register_module("block" + std::to_string(i), Block(c.dim, c.heads, c.dropout)));
    }
    ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim})));
  }
  torch::nn::Embedding positions{nullptr}, gaps{nullptr};
  torch::nn::Linear content{nullptr};
  std::vector<Block> blocks;
  torch::nn::LayerNorm ln_final{nullptr};
};
TORCH_MODULE(Dense);

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
    } else if (name.rfind("positions", 0) == 0 || name.rfind("gaps", 0) == 0) {
      cpu.normal_(0.0, 0.02, gen);
    } else {
      const int64_t fan_in = t.dim() == 2 ? t.size(1) : std::max<int64_t>(1, t.size(0));
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      cpu.uniform_(-bound, bound, gen);
    }
    t.copy_(cpu);
  }
}

}  // namespace

struct TwoTowerModel::Impl {
  ModelConfig config;
  ItemCatalog catalog;
  Communicator* comm;
  torch::Device device{torch::kCPU};
  std::unique_ptr<ShardedEmbeddingCollection> embeddings;
  Dense dense{nullptr};
  at::Tensor content;  // on device
  // Leaves of the last EncodeItems, for BackwardEmbeddings.
  at::Tensor id_leaf, cat_leaf;
  bool pending = false;
};

TwoTowerModel::TwoTowerModel(const ModelConfig& config, const ItemCatalog& catalog, Communicator* comm,
                             uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = config;
  m.catalog = catalog;
  m.comm = comm;
  m.device = torch::Device(comm->device());
  if (config.dim % config.heads != 0) Fail("model: dim ", config.dim, " is not divisible by heads ", config.heads);
  if (catalog.num_items < 1) Fail("model: the catalogue is empty");
  if (!config.use_categories) m.catalog.num_categories = 0;
  if (!config.use_content) m.catalog.content = at::Tensor();
  std::vector<TableSpec> tables;
  TableSpec items{.name = "item_id", .rows = catalog.num_items, .dim = config.dim, .features = {"item_id"}};
  items.optimizer = config.embedding_optimizer;
  items.lookups_per_sample = static_cast<double>(config.max_len);
  tables.push_back(items);
  if (m.catalog.num_categories > 0) {
    TableSpec cats{.name = "item_category", .rows = m.catalog.num_categories, .dim = config.dim,
                   .features = {"item_category"}, .pooling = Pooling::kMean};
    cats.optimizer = config.embedding_optimizer;
    cats.lookups_per_sample = static_cast<double>(config.max_len) * 2;
    tables.push_back(cats);
  }
  if (config.sharding != "auto") {
    const ShardingType t = ParseShardingType(config.sharding);
    for (auto& spec : tables) spec.pinned = t;
  }
  ShardingPlan plan;
  if (comm->rank() == 0) {
    PlannerOptions po;
    po.world_size = comm->world_size();
    plan = PlanSharding(tables, po);
  }
  plan = BroadcastPlan(*comm, plan);
  m.embeddings = std::make_unique<ShardedEmbeddingCollection>(tables, plan, comm,
                                                              CollectionOptions{.seed = seed, .dedup = true});
  const int64_t content_dim = m.catalog.content.defined() ? m.catalog.content.size(1) : 0;
  m.dense = Dense(config, content_dim);
  InitDense(*m.dense, seed);
  m.dense->to(m.device);
  if (m.catalog.content.defined()) m.content = m.catalog.content.to(m.device, at::kFloat);
  // Identical dense parameters everywhere, whatever each rank's generator did.
  torch::NoGradGuard no_grad;
  for (auto& p : m.dense->parameters()) {
    at::Tensor t = p.detach();
    comm->Broadcast(t, 0);
  }
}

TwoTowerModel::~TwoTowerModel() = default;

at::Tensor TwoTowerModel::EncodeItems(const at::Tensor& ids_in) {
  Impl& m = *impl_;
  at::Tensor ids = ids_in.to(m.device, at::kLong).view({-1});
  auto [uniq, inv, counts] = at::_unique2(ids, true, true, false);
  FeatureBatch batch;
  batch["item_id"] = {uniq, at::ones({uniq.numel()}, uniq.options())};
  if (m.catalog.num_categories > 0) {
    at::Tensor u = uniq.cpu();
    std::vector<int64_t> values, lengths;
    for (int64_t i = 0; i < u.numel(); ++i) {
      const int64_t item = u[i].item<int64_t>();
      const int64_t b = m.catalog.category_offsets[item], e = m.catalog.category_offsets[item + 1];
      lengths.push_back(e - b);
      values.insert(values.end(), m.catalog.category_values.begin() + b, m.catalog.category_values.begin() + e);
    }
    batch["item_category"] = {torch::tensor(values, torch::kLong), torch::tensor(lengths, torch::kLong)};
  }
  FeatureOutputs out = m.embeddings->Forward(batch);
  m.id_leaf = out["item_id"].detach().requires_grad_(true);
  at::Tensor v = m.id_leaf;
  if (m.catalog.num_categories > 0) {
    m.cat_leaf = out["item_category"].detach().requires_grad_(true);
    v = v + m.cat_leaf;
  }
  if (m.content.defined()) v = v + m.dense->content(m.content.index_select(0, uniq));
  m.pending = true;
  return Normalize(v).index_select(0, inv);
}

at::Tensor TwoTowerModel::EncodeUsers(const at::Tensor& history, const at::Tensor& lengths,
                                      const at::Tensor& gap_buckets) {
  Impl& m = *impl_;
  const int64_t l = history.size(1);
  if (l > m.config.max_len + 1) Fail("model: history of ", l, " positions exceeds max_len ", m.config.max_len);
  at::Tensor x = history + m.dense->positions(torch::arange(l, torch::TensorOptions().device(m.device)).to(torch::kLong)).unsqueeze(0);
  if (m.dense->gaps && gap_buckets.defined()) x = x + m.dense->gaps(gap_buckets.to(m.device));
  x = torch::dropout(x, m.config.dropout, m.dense->is_training());
  for (auto& block : m.dense->blocks) x = block->forward(x);
  (void)lengths;  // left-aligned sequences + causal attention: positions < length never see padding
  return Normalize(m.dense->ln_final(x));
}

void TwoTowerModel::BackwardEmbeddings() {
  Impl& m = *impl_;
  CHECK(m.pending) << "BackwardEmbeddings without EncodeItems";
  FeatureOutputs grads;
  auto grad_of = [](const at::Tensor& leaf) {
    return leaf.grad().defined() ? leaf.grad() : at::zeros_like(leaf);
  };
  grads["item_id"] = grad_of(m.id_leaf);
  if (m.catalog.num_categories > 0) grads["item_category"] = grad_of(m.cat_leaf);
  m.embeddings->Backward(grads);
  m.pending = false;
  m.id_leaf = m.cat_leaf = at::Tensor();
}

void TwoTowerModel::DiscardEmbeddingGradients() {
  impl_->pending = false;
  impl_->id_leaf = impl_->cat_leaf = at::Tensor();
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
const ModelConfig& TwoTowerModel::config() const { return impl_->config; }
ShardedEmbeddingCollection& TwoTowerModel::embeddings() { return *impl_->embeddings; }

int64_t TwoTowerModel::GapBucket(int64_t gap_seconds, int64_t buckets) {
  if (gap_seconds < 0) return 0;
  const int64_t b = 1 + static_cast<int64_t>(std::floor(std::log2(1.0 + gap_seconds / 60.0)));
  return std::min(b, buckets - 1);
}

}  // namespace shardrec
