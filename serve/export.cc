#include "serve/export.h"

#include <torch/torch.h>

#include <cmath>
#include <ctime>
#include <functional>
#include <numeric>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/process_memory.h"
#include "io/dataset.h"
#include "distributed/staged_dir.h"
#include "io/export_format.h"
#include "model/history.h"
#include "eval/evaluate.h"
#include "model/catalogue.h"
#include "serve/export_root.h"
#include "train/trainer.h"
#include "train/model_files.h"
#include "train/run_dir.h"

namespace shardrec {
namespace {

// Export loops return free heap to the system every this many chunks (common/process_memory.h).
constexpr int64_t kTrimEveryChunks = 64;

std::vector<float> Floats(const at::Tensor& t) {
  at::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// A vector with a NaN or infinity is never published (a diverged model): the first one's id.
void RequireFinite(const std::vector<float>& f, int64_t dim, int64_t first_id, const char* kind) {
  for (size_t i = 0; i < f.size(); ++i) {
    if (!std::isfinite(f[i])) Fail("export: ", kind, " ", first_id + static_cast<int64_t>(i) / dim, " has a non-finite vector (the model diverged)");
  }
}

std::string DefaultVersion() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "v%Y%m%d-%H%M%S", std::gmtime(&now));
  return buf;
}

// The version's name, the same on every rank (rank 0's): --export-version or the UTC time.
std::string VersionName(const ExportOptions& o, Communicator& comm) {
  const std::string version = BroadcastString(comm, o.version.empty() ? DefaultVersion() : o.version, 0);
  CheckVersionName(version, "--export-version");
  return version;
}

// A rank's shard file, written as it is encoded. A failed write (a full disk) is kept, not thrown:
// the rank goes on making the collective calls the others make, the ranks agree after each chunk
// whether any failed, and they stop together (Finish then ends every rank with the first error).
class StreamedShard {
 public:
  StreamedShard(const std::string& path, const std::string& kind, int64_t dim, bool with_titles) {
    Try([&] { writer_ = std::make_unique<VectorShardWriter>(path, kind, dim, with_titles); });
  }
  void Try(const std::function<void()>& write) {
    if (!error_.empty()) return;
    try {
      write();
    } catch (const UserError& e) {
      error_ = e.what();
    } catch (const std::exception& e) {  // agreed too (as RunAgreed does): the others must not wait
      error_ = std::string("internal error: ") + e.what();
    }
  }
  VectorShardWriter& writer() { return *writer_; }
  // COLLECTIVE. Whether some rank's write failed.
  bool AnyFailed(Communicator& comm) const {
    at::Tensor f = torch::tensor({error_.empty() ? 0 : 1}, torch::kInt).to(torch::Device(comm.device()));
    comm.AllReduce(f, ReduceOp::kMax);
    return f.item<int>() != 0;
  }
  // COLLECTIVE. Completes the file in `out`, or ends every rank with the first rank's error (the
  // staged version is then removed).
  void Finish(StagedDir& out) {
    out.Run([&] {
      if (!error_.empty()) {
        writer_.reset();  // closed before rank 0 removes the unpublished version
        Fail(error_);
      }
      writer_->Close();
    });
  }

 private:
  std::unique_ptr<VectorShardWriter> writer_;
  std::string error_;
};

// Items: this rank's dense-id range, encoded and written in chunks (the same number of calls on
// every rank).
void ExportItems(TwoTowerModel& model, const Dataset& ds, const ExportOptions& o, Communicator& comm,
                 StreamedShard& out) {
  const torch::Device dev(comm.device());
  const int64_t n = ds.info().num_items, w = comm.world_size();
  const auto [ib, ie] = RankRange(n, comm);
  const int64_t chunks = ((n + w - 1) / w + o.chunk - 1) / o.chunk;
  for (int64_t c = 0; c < std::max<int64_t>(1, chunks); ++c) {
    const int64_t b = std::min(ie, ib + c * o.chunk), e = std::min(ie, b + o.chunk);
    const auto f = Floats(model.EncodeDistinctItems(torch::arange(b, e, torch::TensorOptions().dtype(torch::kLong).device(dev))));
    out.Try([&] {
      RequireFinite(f, o.model.dim, b, "item");
      std::vector<int64_t> ids(static_cast<size_t>(e - b));
      std::iota(ids.begin(), ids.end(), b);
      out.writer().Append(ids, ds.ReadItemRawIds(b, e), ds.info().has_titles ? ds.ReadItemTitles(b, e) : std::vector<std::string>(),
                          f.data());
    });
    if (out.AnyFailed(comm)) break;
    if (c % kTrimEveryChunks == kTrimEveryChunks - 1) ReleaseFreeMemory();
    if (o.progress) o.progress("items", c + 1, std::max<int64_t>(1, chunks), std::min(n, (c + 1) * o.chunk * w));
  }
}

// Users: the user tower over each user's whole known history (its last max_len events), this
// rank's dense-id range, 256 users per (collective) call, written as they come.
void ExportUsers(TwoTowerModel& model, const Dataset& ds, const ExportOptions& o, Communicator& comm, StreamedShard& out) {
  const torch::Device dev(comm.device());
  const DatasetInfo& info = ds.info();
  const int64_t w = comm.world_size();
  const auto [ub, ue] = RankRange(info.num_users, comm);
  const int64_t per_call = 256;
  const int64_t user_chunks = ((info.num_users + w - 1) / w + per_call - 1) / per_call;
  const auto& off = ds.user_offsets();
  for (int64_t c = 0; c < std::max<int64_t>(1, user_chunks); ++c) {
    const int64_t b = std::min(ue, ub + c * per_call), e = std::min(ue, b + per_call);
    const int64_t n = e - b;
    // One read for the chunk's events (its users' events are contiguous).
    HistoryBuilder histories(o.model.max_len, info.has_timestamps);
    if (o.histories != nullptr) {
      for (int64_t u = b; u < e; ++u) histories.Add(o.histories->items(u), info.has_timestamps ? o.histories->times(u) : std::span<const int64_t>());
    } else {
      const std::vector<int32_t> items_read = n ? ds.ReadItems(off[b], off[e]) : std::vector<int32_t>();
      const std::vector<int64_t> ts_read = n && info.has_timestamps ? ds.ReadTimestamps(off[b], off[e]) : std::vector<int64_t>();
      for (int64_t u = b; u < e; ++u) {
        const size_t at = static_cast<size_t>(off[u] - off[b]), len = static_cast<size_t>(off[u + 1] - off[u]);
        histories.Add(std::span<const int32_t>(items_read).subspan(at, len),
                      ts_read.empty() ? std::span<const int64_t>() : std::span<const int64_t>(ts_read).subspan(at, len));
      }
    }
    at::Tensor last = model.EncodeHistory(histories.Build(o.model.history_features(), dev));  // collective, even when n == 0
    if (n > 0) {
      const auto f = Floats(last);
      out.Try([&] {
        RequireFinite(f, o.model.dim, b, "user");
        std::vector<int64_t> ids(static_cast<size_t>(n));
        std::iota(ids.begin(), ids.end(), b);
        out.writer().Append(ids, ds.ReadUserRawIds(b, e), {}, f.data());
      });
    }
    if (out.AnyFailed(comm)) break;
    if (c % kTrimEveryChunks == kTrimEveryChunks - 1) ReleaseFreeMemory();
    if (o.progress) o.progress("users", c + 1, std::max<int64_t>(1, user_chunks), std::min(info.num_users, (c + 1) * per_call * w));
  }
}

// The version's manifest (with the run's eval.json metrics), written last into `dir`.
void WriteManifest(const ExportOptions& o, const std::string& data, const DatasetInfo& info, const std::string& version,
                   int w, const std::string& dir) {
  ExportManifest m;
  m.version = version;
  m.source = RealPath(o.model_dir.empty() ? RunDir(o.run_dir).model() : o.model_dir);  // absolute: publish reloads it from anywhere
  m.data = RealPath(data);  // absolute too: a server reads titles and histories from it, from its own directory
  m.dim = o.model.dim;
  m.normalization = o.model.cosine ? "l2" : "none";  // --score dot: raw vectors, scores are inner products
  m.num_items = info.num_items;
  m.num_users = info.num_users;
  for (int r = 0; r < w; ++r) {  // the rows each rank exported (ExportItems, ExportUsers)
    const auto [ib, ie] = RankRange(info.num_items, w, r);
    const auto [ub, ue] = RankRange(info.num_users, w, r);
    m.item_shards.push_back({"items-" + std::to_string(r) + ".h5", ib, ie});
    m.user_shards.push_back({"users-" + std::to_string(r) + ".h5", ub, ue});
  }
  const std::string eval = RunDir(o.run_dir).eval();
  if (PathExists(eval)) {
    JsonValue j = JsonValue::Parse(ReadFileToString(eval), eval);
    for (const auto& [k, v] : j.object) {
      if (v.type == JsonValue::kNumber) m.eval[k] = v.number;
    }
  }
  WriteExportManifest(dir, m);
}

}  // namespace

std::string ExportEmbeddings(const ExportOptions& o, Communicator& comm, int64_t* added) {
  const std::string data = o.add_items.empty() ? o.data : o.add_items;
  auto ds = Dataset::Open(data);
  if (!o.add_items.empty()) {
    // The new catalogue must feed the item tower what it was trained with: a missing content matrix
    // or category list would silently drop that path for every item.
    const DatasetInfo trained = Dataset::Open(o.data)->info();
    const DatasetInfo now = ds->info();
    if (o.model.use_content && trained.content_dim != now.content_dim) {
      Fail("--add-items ", o.add_items, ": content vectors of ", now.content_dim, " dimensions, the model was trained with ",
           trained.content_dim, " (", o.data, "); run tools/embed_item_text.py on it as on the training data");
    }
    if (o.model.use_categories && (trained.num_categories > 0) != (now.num_categories > 0)) {
      Fail("--add-items ", o.add_items, (now.num_categories > 0 ? ": has categories, " : ": has no categories, "),
           "the training data ", o.data, (trained.num_categories > 0 ? " has" : " has none"));
    }
  }
  const ItemCatalog catalog = LoadItemCatalog(*ds);
  OpenedModel opened = OpenModel(o.model_dir.empty() ? RunDir(o.run_dir).model() : o.model_dir, o.model, catalog,
                                 o.add_items.empty() ? LoadMode::kSameData : LoadMode::kCatalogue, o.seed, comm);
  TwoTowerModel& model = *opened.model;
  if (added) *added = opened.added;
  torch::NoGradGuard no_grad;
  const std::string version = VersionName(o, comm);  // checked before anything is written
  // An export that serves itself is one of the root's writers (a publish holds the lock already).
  std::unique_ptr<DirectoryLock> lock;
  RunAgreed(comm, [&] {
    if (comm.rank() == 0 && o.move_latest) lock = LockExportRoot(o.root, "an export", o.lock_wait);
  });
  // Every write is checked; a failure on any rank ends every rank with its message and removes
  // the unpublished version (the published ones and LATEST stay as they were).
  StagedDir out(o.root + "/" + version, comm, StagedDir::Existing::kRefuse, "--export-version");
  const std::string me = std::to_string(comm.rank());
  {
    StreamedShard items(out.path() + "/items-" + me + ".h5", "items", o.model.dim, ds->info().has_titles);
    ExportItems(model, *ds, o, comm, items);
    items.Finish(out);
  }
  {
    StreamedShard users(out.path() + "/users-" + me + ".h5", "users", o.model.dim, /*with_titles=*/false);
    ExportUsers(model, *ds, o, comm, users);
    users.Finish(out);
  }
  out.Commit([&] { WriteManifest(o, data, ds->info(), version, comm.world_size(), out.path()); });
  if (o.move_latest) {
    RunAgreed(comm, [&] {
      if (comm.rank() != 0) return;
      try {
        SetLatest(o.root, version);
      } catch (const UserError&) {
        // Never served (LATEST still names the previous version): back to its staging name, so no
        // reader meets a version being removed, then gone.
        const std::string staged = StagedDir::StagingPath(o.root + "/" + version);
        if (std::rename((o.root + "/" + version).c_str(), staged.c_str()) == 0) RemoveAll(staged);
        throw;
      }
    });
  }
  return o.root + "/" + version;
}

}  // namespace shardrec
