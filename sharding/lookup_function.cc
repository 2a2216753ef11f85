#include "sharding/lookup_function.h"

#include <torch/autograd.h>

namespace shardrec {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LookupFunction : torch::autograd::Function<LookupFunction> {
  // `anchor`: an empty tensor that requires grad, so autograd records the node even though the
  // tables themselves are not autograd leaves (the optimizer owns them).
  static variable_list forward(AutogradContext* ctx, const at::Tensor& anchor, ShardedEmbeddingCollection* collection,
                               const FeatureBatch* batch) {
    (void)anchor;
    FeatureOutputs out = collection->Forward(*batch);
    ctx->saved_data["collection"] = reinterpret_cast<int64_t>(collection);
    std::vector<std::string> names;
    variable_list outputs;
    for (auto& [name, value] : out) {
      names.push_back(name);
      outputs.push_back(value);
      ctx->saved_data["shape:" + name] = value.sizes().vec();
      ctx->saved_data["device"] = value.device();
    }
    ctx->saved_data["names"] = c10::List<std::string>(names);
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto* collection = reinterpret_cast<ShardedEmbeddingCollection*>(ctx->saved_data["collection"].toInt());
    const auto names = ctx->saved_data["names"].toList();
    FeatureOutputs grads;
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string name = names.get(i).toStringRef();
      at::Tensor g = grad_outputs[i];
      if (!g.defined()) {
        g = at::zeros(ctx->saved_data["shape:" + name].toIntVector(),
                      at::TensorOptions().dtype(at::kFloat).device(ctx->saved_data["device"].toDevice()));
      }
      grads[name] = g;
    }
    collection->Backward(grads);
    return {at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

FeatureOutputs DifferentiableLookup(ShardedEmbeddingCollection& collection, const FeatureBatch& batch) {
  at::Tensor anchor = at::empty({0}, at::kFloat).requires_grad_(true);
  variable_list outputs = LookupFunction::apply(anchor, &collection, &batch);
  FeatureOutputs out;
  size_t i = 0;
  // std::map iterates in the same (sorted) order as in forward.
  for (const auto& table : collection.specs()) {
    for (const auto& f : table.features) out[f] = at::Tensor();
  }
  for (auto& [name, value] : out) value = outputs[i++];
  return out;
}

}  // namespace shardrec
