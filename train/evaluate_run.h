// Evaluation of a trained run (its model, or a baseline) from its run directory: what `shardrec
// eval` and the demo call; the ranking itself is eval/evaluate.h's (which the publish gate and the
// trainer's validation call directly).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "distributed/communicator.h"
#include "eval/scoring.h"
#include "model/two_tower.h"

namespace shardrec {

// COLLECTIVE. Full-ranking metrics on `split` ("valid" or "test") of a model saved by Train, or of a
// baseline ("pop": most popular; "cooc": item-to-item transitions from the previous item).
struct EvalOptions {
  std::string data;
  std::string run_dir;   // model source (ignored by baselines)
  std::string split = "test";
  std::string baseline;  // "", "pop" or "cooc"
  int64_t batch_size = 256;
  ModelConfig model;
  uint64_t seed = 1;
  // Also rank through the ANN index of this export (ROOT or ROOT/<version>): "ann_" metrics,
  // computed from the index's top 200 (MRR is then MRR@200).
  std::string ann_export;
  // The cold-start protocol: warm / cold slices by the cold items of (data, cold_items, cold_seed).
  // The histories are the protocol's (RUN/cold-start.h5) when the run was trained under the same
  // protocol, else `data`'s own (a model trained on everything, sliced the same way). 0 = off.
  double cold_items = 0;
  uint64_t cold_seed = 1;
  // > 0: evaluate a uniform sample of this many of the split's users, drawn from a fixed seed (the
  // same users for every model of the data); 0 = all.
  int64_t sample_users = 0;
  EvalScoring scoring = EvalScoring::kAuto;  // --eval-scoring (eval/evaluate.h)
  // After each batch, on every rank: batches done, batches in all, users ranked so far (all ranks').
  std::function<void(int64_t, int64_t, int64_t)> progress;
};
// Fills `histories` with the data it ranked: the protocol's file or `options.data`.
std::map<std::string, double> Evaluate(const EvalOptions& options, Communicator& comm, std::string* histories = nullptr);

// eval.json: the metrics `m` of Evaluate (counts as integers), the split, the model ("two_tower" or
// "baseline:<name>"), the data, and the protocol in words (with the cold-start slices' and the
// sample's, and the histories ranked: Evaluate's `histories`).
std::string EvalReportJson(const EvalOptions& options, const std::map<std::string, double>& m,
                           const std::string& histories);

}  // namespace shardrec
