#include "train/model_files.h"

#include "io/h5.h"

#include <torch/torch.h>

#include "common/error.h"
#include "common/file_util.h"
#include "io/export_format.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"

namespace shardrec {

void SaveModel(TwoTowerModel& model, const std::string& dir, Communicator& comm, const RetiredRows* retired, int64_t step) {
  SaveCheckpoint(dir, model, nullptr, nullptr, comm, retired, step);
}

void LoadModel(TwoTowerModel& model, const std::string& dir, Communicator& comm) {
  if (!PathExists(dir)) Fail(dir, ": no trained model; run `shardrec train` first");
  LoadCheckpoint(dir, model, nullptr, nullptr, comm);
  if (model.config().impute_untrained) model.ImputeUntrainedIdRows();
}

LoadReport LoadModelForServing(TwoTowerModel& model, const std::string& dir, Communicator& comm) {
  if (!PathExists(dir)) Fail(dir, ": no trained model; run `shardrec train` first");
  // Every id row starts at zero: what the load does not fill (items new to the model; rows kept as
  // retired come back) stays zero, so a new item is served from its content; so do new categories.
  model.ZeroIdRows(std::vector<int64_t>(static_cast<size_t>(model.catalog().num_items), 0));
  const LoadReport r = LoadCheckpoint(dir, model, nullptr, nullptr, comm, {.remap_by_raw_id = true});
  if (r.remapped) model.ZeroUnknownCategoryRows(r.categories_known);
  if (model.config().impute_untrained) model.ImputeUntrainedIdRows();
  return r;
}

int64_t LoadModelForCatalogue(TwoTowerModel& model, const std::string& dir, Communicator& comm) {
  const LoadReport r = LoadModelForServing(model, dir, comm);
  if (!r.remapped) return 0;
  const int64_t added = r.items_known.numel() - r.items_known.sum().item<int64_t>() - r.returned;
  if (added > 0 && !model.has_content_path()) {
    Fail(model.catalog().data, ": ", added, " items are new to the model in ", dir,
         ", which has neither categories nor content vectors to embed them from");
  }
  return added;
}

OpenedModel OpenModel(const std::string& dir, const ModelConfig& config, const ItemCatalog& catalog, LoadMode mode,
                      uint64_t seed, Communicator& comm) {
  OpenedModel out;
  out.model = std::make_unique<TwoTowerModel>(config, catalog, PlanItemTables(config, catalog, comm), &comm, seed);
  switch (mode) {
    case LoadMode::kSameData:
      LoadModel(*out.model, dir, comm);
      break;
    case LoadMode::kServing:
      out.report = LoadModelForServing(*out.model, dir, comm);
      break;
    case LoadMode::kCatalogue:
      out.added = LoadModelForCatalogue(*out.model, dir, comm);
      break;
  }
  out.model->train(false);
  return out;
}

namespace {
std::string SavedIdsFingerprint(const std::string& dir) {
  if (!PathExists(dir + "/" + kIdsFile)) return "";
  return h5::File::Open(dir + "/" + kIdsFile).GetStringAttr("/", "item_ids_fingerprint").value_or("");
}
}  // namespace

PreviousModel ResolvePreviousModel(const std::string& prev, Communicator* comm) {
  if (PathExists(prev + "/dense.h5")) return {prev};  // a checkpoint or model directory
  const RunDir run(prev);
  if (PathExists(run.config()) || IsDirectory(run.checkpoints()) || IsDirectory(run.model())) {  // a run
    const std::vector<std::string> all = ListCheckpoints(prev);
    if (!all.empty() && comm != nullptr) return {PickCheckpoint(prev, "latest-valid", *comm).dir, true};
    if (!all.empty()) return {all.back()};
    if (PathExists(run.model() + "/dense.h5")) return {run.model()};
    Fail("--init-from ", prev, ": the run has no checkpoint and no model yet");
  }
  if (PathExists(prev + "/LATEST") || PathExists(prev + "/manifest.json")) {  // an export root or version
    // The exported model; the checkpoint its run wrote at the same step when there is one (the
    // same rows and dense parameters, with the AdamW state too).
    const std::string model = ReadExportManifest(ResolveExport(prev)).source;
    const int64_t step = PathExists(model + "/manifest.json") ? SavedStep(model) : 0;
    // The run is the model's directory's parent (RUN/model), or two up for a stream's published
    // models (RUN/published/<version>, serve/stream_job.h).
    const std::string parent = Dirname(model), run = Basename(parent) == "published" ? Dirname(parent) : parent;
    const std::string same = CheckpointDir(run, step);
    // Only if it names its rows as the model does (a stream's checkpoints name the rows held for
    // new items by placeholder, its published models by the items' raw ids).
    if (step > 0 && PathExists(same + "/manifest.json") && SavedStep(same) == step && SavedIdsFingerprint(same) == SavedIdsFingerprint(model)) {
      return {same};
    }
    return {model};
  }
  Fail("--init-from ", prev, ": not a run directory, checkpoint, model or export");
}

}  // namespace shardrec
