// A trained model's files (the checkpoint layout of train/checkpoint.h without training state),
// and the loads that serving and export make of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "model/two_tower.h"
#include "train/checkpoint.h"

namespace shardrec {

// Writes / reads a model (train/checkpoint.h layout without training state). LoadModel imputes the
// untrained id rows when the config says so (ModelConfig::impute_untrained).
void SaveModel(TwoTowerModel& model, const std::string& dir, Communicator& comm, const RetiredRows* retired = nullptr,
               int64_t step = 0);
void LoadModel(TwoTowerModel& model, const std::string& dir, Communicator& comm);
// COLLECTIVE. LoadModel for a catalogue that may have grown since training (`shardrec export
// --add-items`, and the queries of such an export): rows go to the model's items by raw id, and an
// item the model was not trained on gets zero id rows, so it is served from its content and
// categories alone (or, with ModelConfig::impute_untrained, from its nearest trained items). Returns the number of such items. A UserError if there are any and the model
// has no content path (nothing to embed them from).
int64_t LoadModelForCatalogue(TwoTowerModel& model, const std::string& dir, Communicator& comm);
// COLLECTIVE. What LoadModelForCatalogue does, without requiring a content path for new items (a
// caller that masks them, such as the publish gate ranking the served model): zero rows for
// items and categories the model lacks, rows by raw id, imputation per the config. Returns the
// load's report (LoadReport::items_known says which items the model has).
LoadReport LoadModelForServing(TwoTowerModel& model, const std::string& dir, Communicator& comm);

// How OpenModel loads a model's rows.
enum class LoadMode {
  kSameData,   // LoadModel: the catalogue is the one the model was trained on
  kServing,    // LoadModelForServing: rows by raw id, zero rows for what the model lacks
  kCatalogue,  // LoadModelForCatalogue: kServing, and new items need a content path
};
struct OpenedModel {
  std::unique_ptr<TwoTowerModel> model;  // in eval mode (no dropout)
  LoadReport report;                     // kServing and kCatalogue
  int64_t added = 0;                     // kCatalogue: items new to the model
};
// COLLECTIVE. The one way to a trained model: plan the item tables of `catalog` (model/catalogue.h),
// build the towers from `config` (initialised from `seed` before the rows load) and load `dir`.
OpenedModel OpenModel(const std::string& dir, const ModelConfig& config, const ItemCatalog& catalog, LoadMode mode,
                      uint64_t seed, Communicator& comm);

// The model directory a previous run's PREV names (--init-from, --max-len 0 with it): a checkpoint
// or model directory itself; a run's newest checkpoint (with `comm`: the newest that verifies,
// checked collectively, and `verified` set), else its model; an export root or version's model (or
// the checkpoint its run wrote at the same step, which carries the optimizer state too). A UserError
// when PREV is none of these.
struct PreviousModel {
  std::string dir;
  bool verified = false;
};
PreviousModel ResolvePreviousModel(const std::string& prev, Communicator* comm);

}  // namespace shardrec
