// `shardrec export`: runs the item tower over the whole catalogue and the user tower over every
// known user, each rank its own id range (no gather to rank 0), and publishes ROOT/<version>
// (io/export_format.h) atomically.
#pragma once

#include <functional>
#include <string>

#include "distributed/communicator.h"
#include "model/two_tower.h"
#include "train/stream.h"

namespace shardrec {

struct ExportOptions {
  std::string run_dir;   // the trained model: run_dir/model
  std::string model_dir;  // the model, when not run_dir/model (a stream's published model)
  std::string data;      // the dataset it was trained on
  // A dataset whose catalogue holds items new since training (its own users and events are the
  // ones exported): the model's rows move to its ids by raw id and each new item is embedded from
  // its content and categories by the trained item tower (LoadModelForCatalogue). The export's
  // `data` is then this file. "" = export `data` as trained.
  std::string add_items;
  // The users' histories, when not the dataset's: user u's vector encodes histories->items(u)
  // (a stream's histories: the data's events and the stream's since; users beyond the dataset's
  // are not exported).
  const UserHistories* histories = nullptr;
  std::string root;      // ROOT: versions live in ROOT/<version>
  std::string version;   // "" = v<UTC time>
  ModelConfig model;
  uint64_t seed = 1;
  int64_t chunk = 8192;  // ids per collective encode call
  // Point ROOT/LATEST at the new version; false: it is complete but not served (`shardrec publish`
  // serves it only once its index is built and the gate passes).
  bool move_latest = true;
  double lock_wait = 0;  // with move_latest: seconds to wait for the root's lock (serve/export_root.h)
  // After each chunk, on every rank: the pass ("items", "users"), chunks done and in all, rows
  // encoded so far by every rank.
  std::function<void(const char* pass, int64_t done, int64_t chunks, int64_t rows)> progress;
};

// COLLECTIVE. Returns ROOT/<version>; `added` (optional): the items embedded from content alone
// (new since training; 0 without add_items).
std::string ExportEmbeddings(const ExportOptions& options, Communicator& comm, int64_t* added = nullptr);

}  // namespace shardrec
