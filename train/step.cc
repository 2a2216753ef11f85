#include "train/step.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>

#include "model/precision.h"

namespace shardrec {

struct TrainStep::Inputs {
  HistoryBatch history;      // the inputs: positions [0, width - 1) of each row
  at::Tensor positions;      // int64 [P]: the real input positions, flat (row * (width - 1) + k)
  at::Tensor targets;        // int64 [P]: the next item of each of them
  int64_t global_positions = 0;
};

TrainStep::TrainStep(TwoTowerModel& model, const RetrievalLoss& loss, torch::optim::AdamW& adam, Communicator& comm,
                     const StepOptions& options)
    : model_(model), loss_(loss), adam_(adam), comm_(comm), options_(options), params_(model.dense_parameters()) {}

TrainStep::~TrainStep() = default;

TrainStep::Inputs TrainStep::Prepare(const Batch& b) const {
  const c10::Device dev(comm_.device());
  std::vector<int64_t> lengths(b.lengths.begin(), b.lengths.end());
  HistoryBatch full = MakeHistoryBatch(b.rows, b.width, b.items, b.timestamps, lengths, model_.config().time_buckets, dev);
  Inputs in;
  const int64_t l = std::max<int64_t>(0, b.width - 1);
  in.history = full.Prefix(l);
  in.history.lengths = full.lengths - 1;
  // Positions and targets come from the host batch: no data-dependent indexing on the device.
  std::vector<int64_t> positions, targets;
  for (int64_t i = 0; i < b.rows; ++i) {
    for (int64_t k = 0; k + 1 < b.lengths[i]; ++k) {
      positions.push_back(i * l + k);
      targets.push_back(b.items[i * b.width + k + 1]);
    }
  }
  in.positions = at::tensor(positions, at::kLong).to(dev);
  in.targets = at::tensor(targets, at::kLong).to(dev);
  in.global_positions = std::max<int64_t>(1, b.global_positions);
  return in;
}

at::Tensor TrainStep::LossSum(const Inputs& in, int64_t step) {
  const Candidates cand = loss_.MakeCandidates(in.targets, in.global_positions, step, comm_);
  // Item vectors of everything the step touches: the candidates, and (sampled) the history items.
  at::Tensor vectors, candidate_vectors;
  HistoryBatch h = in.history;
  if (loss_.full()) {
    vectors = candidate_vectors = model_.EncodeItems(cand.ids);
  } else {
    const at::Tensor hist = h.items.clamp_min(0).reshape({-1});
    const at::Tensor ids = std::get<0>(at::_unique2(at::cat({cand.ids, hist}), true, false, false));
    vectors = model_.EncodeItems(ids);
    h.items = at::searchsorted(ids, hist).view_as(h.items);
    candidate_vectors = vectors.index_select(0, at::searchsorted(ids, cand.ids));
  }
  if (h.rows == 0 || h.width == 0) return vectors.sum() * 0.0;  // keeps every rank's backward collective
  at::Tensor users;
  {
    AutocastScope autocast(options_.bfloat16, vectors.device().type());
    users = model_.EncodeHistory(h, vectors, /*all_positions=*/true);
  }
  at::Tensor u = users.reshape({-1, users.size(-1)}).index_select(0, in.positions).to(at::kFloat);
  return loss_.Sum(u, candidate_vectors, in.targets, cand);
}

void TrainStep::Update(int64_t step) {
  AllReduceDenseGrads(params_, comm_, options_.bucket_elements);
  if (options_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params_, options_.clip_norm);
  const double lr = options_.lr * std::min(1.0, static_cast<double>(step) / std::max<int64_t>(1, options_.warmup_steps));
  for (auto& g : adam_.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  adam_.step();
  adam_.zero_grad();
}

at::Tensor TrainStep::Run(const Batch& batch, int64_t step) {
  comm_.SetStep(step);
  const Inputs in = Prepare(batch);
  at::Tensor sum = LossSum(in, step);
  // The embedding rows are updated inside this call (the lookup's backward).
  (sum / static_cast<double>(in.global_positions)).backward();
  Update(step);
  return sum.detach();
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
