// The sharded lookup as an autograd function: the forward pass is the collection's input_dist ->
// lookup -> output_dist, and autograd's backward pass sends the row gradients to their owners and
// applies the fused sparse optimizer (FBGEMM's "optimizer fused into backward"), so a training step
// needs no hand-called embedding backward. No dense gradient of a table ever exists.
#pragma once

#include "sharding/embedding_collection.h"

namespace shardrec {

// COLLECTIVE (forward, and backward when autograd runs it). Outputs as Forward's; under grad mode
// they take part in autograd, and backward() of anything computed from them runs
// collection.Backward with their gradients (zeros for outputs the loss does not use). Every rank
// must then run backward exactly once per differentiable lookup, in the same order. Under
// torch::NoGradGuard this is Forward with no backward pending.
FeatureOutputs DifferentiableLookup(ShardedEmbeddingCollection& collection, const FeatureBatch& batch);

}  // namespace shardrec
