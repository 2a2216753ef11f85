#include "train/step.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>

#include "common/rng.h"
#include "model/precision.h"

namespace shardrec {

// A batch's rows in groups of similar length (`StepOptions::length_groups`): each group is its own
// [rows x width] history, padded only to its own longest row.
struct TrainStep::Inputs {
  std::vector<HistoryBatch> groups;     // inputs: positions [0, width - 1) of each row
  std::vector<at::Tensor> positions;    // per group, int64: its real input positions, flat
  at::Tensor targets;                   // int64 [P]: the next item of every position, group by group
  ExcludedItems excluded;               // exclude_history: each position's earlier items
  int64_t global_positions = 0;
};

TrainStep::TrainStep(TwoTowerModel& model, const RetrievalLoss& loss, torch::optim::AdamW& adam, Communicator& comm,
                     const StepOptions& options)
    : model_(model), loss_(loss), adam_(adam), comm_(comm), options_(options), params_(model.dense_parameters()) {}

TrainStep::~TrainStep() = default;

TrainStep::Inputs TrainStep::Prepare(const Batch& b) const {
  const c10::Device dev(comm_.device());
  // Rows by length; groups of equal row counts. Everything is laid out on the host: no
  // data-dependent indexing on the device.
  std::vector<int64_t> order(static_cast<size_t>(b.rows));
  for (int64_t i = 0; i < b.rows; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return b.lengths[x] < b.lengths[y]; });
  const int64_t groups = std::clamp<int64_t>(options_.length_groups, 1, std::max<int64_t>(1, b.rows));
  const bool gaps = !b.timestamps.empty();
  Inputs in;
  std::vector<int64_t> targets, excluded_at, excluded;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = b.rows * g / groups, last = b.rows * (g + 1) / groups;
    int64_t width = 0;
    for (int64_t r = first; r < last; ++r) width = std::max<int64_t>(width, b.lengths[order[r]]);
    const int64_t n = last - first, l = std::max<int64_t>(0, width - 1);
    std::vector<int64_t> items(static_cast<size_t>(n * l), -1), stamps(gaps ? items.size() : 0, 0), lengths, pos, requests, keys;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = order[first + r], len = b.lengths[row] - 1;
      lengths.push_back(len);
      keys.push_back(b.row_offset + row);
      // The last input's request is the time of the row's last event, the one it predicts.
      if (gaps) requests.push_back(len >= 0 ? b.timestamps[row * b.width + len] : kUnknownTime);
      for (int64_t k = 0; k < len; ++k) {
        items[r * l + k] = b.items[row * b.width + k];
        if (gaps) stamps[r * l + k] = b.timestamps[row * b.width + k];
        if (!b.first_targets.empty() && k + 1 < b.first_targets[row]) continue;  // input only
        pos.push_back(r * l + k);
        const int64_t target = b.items[row * b.width + k + 1];
        if (options_.exclude_history) {
          for (int64_t e = 0; e <= k; ++e) {
            const int64_t earlier = b.items[row * b.width + e];
            if (earlier == target) continue;  // a repeated item stays a target
            excluded_at.push_back(static_cast<int64_t>(targets.size()));
            excluded.push_back(earlier);
          }
        }
        targets.push_back(target);
      }
    }
    in.groups.push_back(MakeHistoryBatch(n, l, items, stamps, lengths, requests, model_.config().history_features(), dev));
    in.groups.back().keys = at::tensor(keys, at::kLong);
    in.positions.push_back(at::tensor(pos, at::kLong).to(dev));
  }
  in.targets = at::tensor(targets, at::kLong).to(dev);
  if (options_.exclude_history) {
    in.excluded.positions = at::tensor(excluded_at, at::kLong);
    in.excluded.items = at::tensor(excluded, at::kLong).to(dev);
  }
  in.global_positions = std::max<int64_t>(1, b.global_positions);
  return in;
}

at::Tensor TrainStep::LossSum(const Inputs& in, int64_t step) {
  const Candidates cand = loss_.MakeCandidates(in.targets, in.global_positions, step, comm_);
  // Item vectors of everything the step touches: output vectors of the candidates, input vectors of
  // the real history items (a padding id would put a row into the lookup with a zero gradient,
  // which an optimizer with momentum such as Adam still moves). Full softmax with tied vectors
  // encodes the whole catalogue anyway: the histories read it directly, with no unique pass.
  at::Tensor ids = cand.ids;
  if (!loss_.full() || model_.config().separate_input_vectors) {
    std::vector<at::Tensor> history_items;
    for (const auto& h : in.groups) history_items.push_back(h.items.masked_select(h.items >= 0));
    ids = history_items.empty() ? at::empty({0}, in.targets.options())
                                : std::get<0>(at::_unique2(at::cat(history_items), true, false, false));
  }
  const bool content_loss = options_.content_loss > 0 && model_.has_content_path();
  const ItemVectors vectors = model_.EncodeItemVectors(cand.ids, ids, content_loss);
  if (in.targets.numel() == 0) return (vectors.output.sum() + vectors.input.sum()) * 0.0;  // a collective backward
  std::vector<at::Tensor> users;
  {
    AutocastScope autocast(options_.bfloat16, vectors.output.device().type());
    for (size_t g = 0; g < in.groups.size(); ++g) {
      if (in.groups[g].width == 0) continue;
      at::Tensor out = model_.EncodeHistory(in.groups[g].IndexedBy(ids), vectors.input, /*all_positions=*/true);
      users.push_back(out.reshape({-1, out.size(-1)}).index_select(0, in.positions[g]));
    }
  }
  // The content loss scores each target by its content-only vector against the same candidates
  // (under id dropout, about that share of them content-only too).
  const TargetVariant content{vectors.content, options_.content_loss};
  return loss_.Sum(at::cat(users).to(at::kFloat), vectors.output, in.targets, cand,
                   options_.exclude_history ? &in.excluded : nullptr, content_loss ? &content : nullptr);
}

void TrainStep::Update(int64_t step) {
  AllReduceDenseGrads(params_, comm_, options_.bucket_elements);
  if (options_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params_, options_.clip_norm);
  const double lr = DenseLr(options_, step);
  for (auto& g : adam_.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  adam_.step();
  adam_.zero_grad();
}

at::Tensor TrainStep::Run(const Batch& batch, int64_t step) {
  comm_.SetStep(step);
  // Dropout masks are a function of (seed, step) and each row's place in the global batch (each
  // item's id under id dropout), never of the rank: 1, 2 and 4 ranks draw the same masks, and a
  // resumed run draws those of an uninterrupted one.
  model_.SeedDropout(HashKeys({options_.seed, 0x44524F50ULL, static_cast<uint64_t>(step)}));
  const Inputs in = Prepare(batch);
  at::Tensor sum = LossSum(in, step);
  // The embedding rows are updated inside this call (the lookup's backward).
  (sum / static_cast<double>(in.global_positions)).backward();
  Update(step);
  return sum.detach();
}

double DenseLr(const StepOptions& o, int64_t step) {
  const double warm = std::min(1.0, static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, o.warmup_steps)));
  if (!o.cosine || o.total_steps <= o.warmup_steps) return o.lr * warm;
  const double done = std::clamp(static_cast<double>(step - o.warmup_steps) / static_cast<double>(o.total_steps - o.warmup_steps),
                                 0.0, 1.0);
  return o.lr * warm * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * done)));
}

void AllReduceDenseGrads(std::vector<at::Tensor>& params, Communicator& comm, int64_t bucket_elements) {
  size_t i = 0;
  while (i < params.size()) {
    std::vector<at::Tensor> grads;
    int64_t n = 0;
    size_t j = i;
    for (; j < params.size() && (n == 0 || n + params[j].numel() <= bucket_elements); ++j) {
      at::Tensor& p = params[j];
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad().view({-1}));
      n += p.numel();
    }
    at::Tensor flat = at::cat(grads);
    comm.AllReduce(flat, ReduceOp::kSum);
    int64_t offset = 0;
    for (size_t k = i; k < j; ++k) {
      params[k].grad().view({-1}).copy_(flat.narrow(0, offset, params[k].numel()));
      offset += params[k].numel();
    }
    i = j;
  }
}

}  // namespace shardrec
