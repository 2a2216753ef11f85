// How a multi-rank evaluation scores the catalogue (eval/evaluate.h), apart so that option
// structs can name it without the evaluation's headers.
#pragma once

namespace shardrec {

// How a multi-rank evaluation scores the catalogue:
// - kReplicated: every rank encodes the whole catalogue and scores its own users against it;
// - kSharded: each rank encodes 1/W of the catalogue and scores every rank's users against it; the
//   ranks add up each target's rank and merge the per-rank top lists (the catalogue's vectors are
//   never on one rank);
// - kAuto: sharded above 1 GiB of catalogue vectors with more than one rank.
// Both give the same ranks and lists, up to ties of scores computed in different matrix products.
enum class EvalScoring { kAuto, kReplicated, kSharded };

}  // namespace shardrec
