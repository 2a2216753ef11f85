#include "train/checkpoint.h"

#include <glog/logging.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/manifest.h"
#include "common/strings.h"
#include "distributed/staged_dir.h"
#include "io/dataset.h"
#include "io/h5.h"
#include "train/run_dir.h"

namespace shardrec {
namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kRetiredFile = "retired.h5";

std::vector<float> ToFloats(const at::Tensor& t) {
  at::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

at::Tensor FromFloats(const std::vector<float>& v, at::IntArrayRef shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat).clone();  // copied, never written
}

struct Manifest {
  int64_t step = 0;
  int64_t world_size = 0;
  std::map<std::string, FileDigest> files;
};

Manifest ReadManifest(const std::string& dir) {
  const std::string path = dir + "/" + kManifest;
  if (!PathExists(path)) Fail(dir, ": no ", kManifest, " (an incomplete checkpoint; it is never loaded)");
  Manifest m;
  ReadManifestFile(path, "shardrec.checkpoint", 1, [&](const JsonValue& j) {
    m.step = j.at("step").integer();
    m.world_size = j.at("world_size").integer();
    m.files = FileDigestsFromJson(j.at("files"));
  });
  if (m.files.empty()) Fail(path, ": lists no files (damaged?)");
  return m;
}

// Lists every .h5 file of `dir` (and the plan) with its size and CRC-32C; written last, atomically.
void WriteManifest(const std::string& dir, int world_size, int64_t step) {
  std::map<std::string, FileDigest> files;
  for (const auto& n : ListDirectory(dir)) {
    if ((n.size() > 3 && n.substr(n.size() - 3) == ".h5") || n == "plan.txt") files[n] = DigestFile(dir + "/" + n);
  }
  JsonObject m;
  m.Add("format", "shardrec.checkpoint").Add("format_version", int64_t{1}).Add("step", step)
      .Add("world_size", world_size).Add("files", FileDigestsToJson(files));
  WriteManifestFile(dir + "/" + kManifest, m);
}

// An attribute the format requires; a missing one names the file, object and attribute.
int64_t NeedInt(const h5::File& f, const std::string& object, const std::string& name) {
  auto v = f.GetIntAttr(object, name);
  if (!v) Fail(f.path(), ": ", object, " has no attribute '", name, "' (damaged or another format)");
  return *v;
}

}  // namespace

namespace {

// This rank's tables: rows, vectors and optimizer state.
// Writes a [rows x width] (or [rows]) float tensor as a dataset a block of rows at a time, so a
// shard is never copied whole (a rank's table can be most of its memory).
void StreamRows(h5::File& f, const std::string& name, const at::Tensor& t, int64_t width) {
  h5::Appender<float> out(&f, name, width);
  const at::Tensor all = t.detach();
  const int64_t rows = all.size(0), block = std::max<int64_t>(1, (int64_t{1} << 20) / width);
  for (int64_t b = 0; b < rows; b += block) {
    const at::Tensor part = all.narrow(0, b, std::min(block, rows - b)).to(torch::kCPU, torch::kFloat).contiguous();
    CHECK_EQ(part.numel(), part.size(0) * width);
    out.Append(part.data_ptr<float>(), part.size(0));
  }
  out.Flush();
}

void WriteEmbeddings(const std::string& path, TwoTowerModel& model, Communicator& comm) {
  ShardedEmbeddingCollection& emb = model.embeddings();
  h5::File f = h5::File::Create(path);
  f.SetAttr("/", "format", std::string("shardrec.embeddings"));
  f.SetAttr("/", "format_version", int64_t{1});
  for (const auto& spec : emb.specs()) {
    const Shard* s = emb.LocalShard(spec.name);
    if (!s) continue;
    // Replicas of data-parallel tables are identical: rank 0 writes one.
    if (emb.plan().Find(spec.name).type == ShardingType::kDataParallel && comm.rank() != 0) continue;
    const std::string g = "/tables/" + spec.name;
    const int64_t cols = s->col_end - s->col_begin;
    {
      h5::Appender<int64_t> rows(&f, g + "/rows");
      for (int64_t r = s->row_begin; r < s->row_end; ++r) rows.Append(r);
      rows.Flush();
    }
    StreamRows(f, g + "/vectors", emb.LocalWeights(spec.name), cols);
    f.SetAttr(g, "col_begin", s->col_begin);
    f.SetAttr(g, "col_end", s->col_end);
    SparseOptimizer* opt = emb.LocalOptimizer(spec.name);
    f.SetAttr(g, "optimizer", std::string(OptimizerName(opt->config().type)));
    f.SetAttr(g, "optimizer_steps", opt->steps());
    if (opt->state1().defined()) StreamRows(f, g + "/state1", opt->state1(), opt->state1().dim() == 2 ? cols : 1);
    if (opt->state2().defined()) StreamRows(f, g + "/state2", opt->state2(), cols);
  }
  f.Close();
}

// Dense parameters, their AdamW state and the trainer's counters (rank 0).
void WriteDense(const std::string& path, TwoTowerModel& model, torch::optim::AdamW* adam, const TrainerState* state) {
  h5::File f = h5::File::Create(path);
  f.SetAttr("/", "format", std::string("shardrec.dense"));
  f.SetAttr("/", "format_version", int64_t{1});
  for (auto& [name, p] : model.named_dense_parameters()) {
    f.Write<float>("/dense/" + name, ToFloats(p));
    if (!adam) continue;
    auto it = adam->state().find(p.unsafeGetTensorImpl());
    if (it == adam->state().end()) continue;
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    f.Write<float>("/adamw/" + name + "/exp_avg", ToFloats(st.exp_avg()));
    f.Write<float>("/adamw/" + name + "/exp_avg_sq", ToFloats(st.exp_avg_sq()));
    f.SetAttr("/adamw/" + name, "step", st.step());
  }
  if (state) {
    f.EnsureParents("/trainer/x");
    f.Write<int64_t>("/trainer/counters", {state->step, state->epoch, state->next_batch, state->best_epoch,
                                           state->bad_validations});
    f.SetAttr("/trainer", "best_valid_ndcg10", state->best_valid_ndcg10);
  }
  f.Close();
}

// The id space of the tables' rows (rank 0): the item raw ids in row order, the category names, and
// the dataset they came from with its fingerprints.
void WriteIds(const std::string& path, const ItemCatalog& c) {
  auto ds = Dataset::Open(c.data);
  if (ds->ItemIdsFingerprint() != c.item_ids_fingerprint) {
    Fail(c.data, ": the dataset was replaced while the run used it (other item ids now); the checkpoint cannot name its rows");
  }
  SavedIds ids{.data = c.data, .item_ids_fingerprint = c.item_ids_fingerprint, .data_fingerprint = ds->DataFingerprint()};
  ids.raw_ids.reserve(static_cast<size_t>(ds->info().num_items));
  ds->ForEachItemRawId([&](const std::string& id) { ids.raw_ids.push_back(id); });
  ids.category_names = ds->ReadCategoryNames();
  WriteIdsFile(path, ids);
}

void WriteRetired(const std::string& path, const RetiredRows& r) {
  h5::File f = h5::File::Create(path);
  f.SetAttr("/", "format", std::string("shardrec.retired"));
  f.SetAttr("/", "format_version", int64_t{1});
  f.SetAttr("/", "num_items", static_cast<int64_t>(r.raw_ids.size()));
  {
    h5::StringAppender ids(&f, "/items/raw_ids");
    for (const auto& id : r.raw_ids) ids.Append(id);
    ids.Flush();
  }
  for (const auto& [name, t] : r.tables) {
    const std::string g = "/tables/" + name;
    f.Write<float>(g + "/vectors", t.vectors, t.width);
    if (t.state1_width > 0) f.Write<float>(g + "/state1", t.state1, t.state1_width);
    if (t.state2_width > 0) f.Write<float>(g + "/state2", t.state2, t.state2_width);
  }
  f.Close();
}

RetiredRows ReadRetired(const std::string& path) {
  h5::File f = h5::File::Open(path);
  if (f.GetStringAttr("/", "format").value_or("") != "shardrec.retired") Fail(path, ": not a retired-rows file");
  RetiredRows r;
  const int64_t n = f.GetIntAttr("/", "num_items").value_or(0);
  r.raw_ids = n == 0 ? std::vector<std::string>() : h5::ReadStrings(f, "/items/raw_ids", 0, n);
  for (const char* name : {"item_id", "item_input_id"}) {
    const std::string g = std::string("/tables/") + name;
    if (!f.Exists(g + "/vectors")) continue;
    RetiredRows::Table t;
    auto read = [&](const std::string& what, std::vector<float>* out, int64_t* width) {
      if (!f.Exists(g + "/" + what)) return;
      const auto shape = f.Shape(g + "/" + what);
      *width = shape.size() == 2 ? shape[1] : 1;
      if (shape.empty() || shape[0] != n) Fail(path, ": ", g, "/", what, " does not hold ", n, " rows");
      *out = f.ReadAll<float>(g + "/" + what);
    };
    read("vectors", &t.vectors, &t.width);
    read("state1", &t.state1, &t.state1_width);
    read("state2", &t.state2, &t.state2_width);
    r.tables[name] = std::move(t);
  }
  return r;
}

}  // namespace

void WriteIdsFile(const std::string& path, const SavedIds& ids) {
  h5::File f = h5::File::Create(path);
  f.SetAttr("/", "format", std::string("shardrec.ids"));
  f.SetAttr("/", "format_version", int64_t{1});
  f.SetAttr("/", "data", ids.data);
  f.SetAttr("/", "item_ids_fingerprint", ids.item_ids_fingerprint);
  f.SetAttr("/", "data_fingerprint", ids.data_fingerprint);
  f.SetAttr("/", "num_items", static_cast<int64_t>(ids.raw_ids.size()));
  f.SetAttr("/", "num_categories", static_cast<int64_t>(ids.category_names.size()));
  {
    h5::StringAppender items(&f, "/items/raw_ids");
    for (const auto& id : ids.raw_ids) items.Append(id);
    items.Flush();
  }
  if (!ids.category_names.empty()) {
    h5::StringAppender out(&f, "/categories/names");
    for (const auto& name : ids.category_names) out.Append(name);
    out.Flush();
  }
  f.Close();
}

void SaveCheckpoint(const std::string& dir, TwoTowerModel& model, torch::optim::AdamW* adam,
                    const TrainerState* state, Communicator& comm, const RetiredRows* retired, int64_t step,
                    const std::function<void(const std::string& staging)>& extra) {
  // Every write is checked, up to each file's close; a failure on any rank (a full disk) ends the
  // save on every rank with that rank's message, and nothing partial stays behind. An older
  // directory of the same name disappears only once the new one is in place.
  StagedDir out(dir, comm, StagedDir::Existing::kReplace, "checkpoint");
  const std::string& tmp = out.path();
  out.Run([&] {
    WriteEmbeddings(tmp + "/embeddings-rank" + std::to_string(comm.rank()) + ".h5", model, comm);
    if (comm.rank() != 0) return;
    // The plan the tables were trained under (any plan can load the checkpoint: rows are global).
    ShardedEmbeddingCollection& emb = model.embeddings();
    WritePlanFile(tmp + "/plan.txt", emb.plan(), emb.plan().ToTable());
    WriteDense(tmp + "/dense.h5", model, adam, state);
    if (!model.catalog().data.empty()) WriteIds(tmp + "/" + kIdsFile, model.catalog());
    if (retired != nullptr && !retired->empty()) WriteRetired(tmp + "/" + kRetiredFile, *retired);
    if (extra) extra(tmp);
  });
  out.Commit([&] { WriteManifest(tmp, comm.world_size(), state ? state->step : step); });
}

void VerifyCheckpoint(const std::string& dir, int part, int parts) {
  const Manifest m = ReadManifest(dir);
  if (!m.files.count("dense.h5")) Fail(dir, "/", kManifest, ": lists no dense.h5");
  for (int64_t r = 0; r < m.world_size; ++r) {
    if (!m.files.count("embeddings-rank" + std::to_string(r) + ".h5")) {
      Fail(dir, "/", kManifest, ": lists no embeddings-rank", r, ".h5 for world size ", m.world_size);
    }
  }
  int i = 0;
  for (const auto& [name, digest] : m.files) {  // name order
    if (i++ % parts == part) VerifyFileDigest(dir + "/" + name, digest);
  }
}

void VerifyCheckpoint(const std::string& dir, Communicator& comm) {
  std::string error;
  try {
    VerifyCheckpoint(dir, comm.rank(), comm.world_size());
  } catch (const UserError& e) {
    error = e.what();
  }
  ThrowIfAnyRankFailed(comm, error);
}

namespace {

// Dense parameters (and, when given, their AdamW state) from dense.h5. A warm start (`fresh`
// given) from a model saved before context features existed keeps the context rows as initialised
// and lists them in *fresh.
void LoadDense(const std::string& dir, const h5::File& f, TwoTowerModel& model, torch::optim::AdamW* adam,
               std::vector<std::string>* fresh) {
  for (auto& [name, p] : model.named_dense_parameters()) {
    const std::string key = "/dense/" + name;
    if (!f.Exists(key) && fresh && name.rfind("context.", 0) == 0) {
      fresh->push_back(name);
      continue;
    }
    if (!f.Exists(key)) Fail(dir, "/dense.h5: no parameter ", name, " (a model of another configuration?)");
    std::vector<float> v = f.ReadAll<float>(key);
    if (static_cast<int64_t>(v.size()) != p.numel()) {
      Fail(dir, "/dense.h5: parameter ", name, " has ", v.size(), " values, the model expects ", p.numel(),
           " (a model of another configuration?)");
    }
    p.copy_(FromFloats(v, p.sizes()).to(p.device()));
    if (!adam || !f.Exists("/adamw/" + name + "/exp_avg")) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    std::vector<float> m = f.ReadAll<float>("/adamw/" + name + "/exp_avg");
    std::vector<float> v2 = f.ReadAll<float>("/adamw/" + name + "/exp_avg_sq");
    s->exp_avg(FromFloats(m, p.sizes()).to(p.device()));
    s->exp_avg_sq(FromFloats(v2, p.sizes()).to(p.device()));
    s->step(NeedInt(f, "/adamw/" + name, "step"));
    adam->state()[p.unsafeGetTensorImpl()] = std::move(s);
  }
}

// Trainer counters from dense.h5 (dropout masks are a function of the seed and step: no generator
// state is saved).
void LoadTrainerState(const std::string& dir, const h5::File& f, TrainerState* state) {
  if (!f.Exists("/trainer/counters")) Fail(dir, "/dense.h5: no trainer state (a model, not a checkpoint)");
  auto c = f.ReadAll<int64_t>("/trainer/counters");
  if (c.size() != 5) Fail(dir, "/dense.h5: /trainer/counters has ", c.size(), " values, expected 5");
  state->step = c[0];
  state->epoch = c[1];
  state->next_batch = c[2];
  state->best_epoch = c[3];
  state->bad_validations = c[4];
  auto best = f.GetDoubleAttr("/trainer", "best_valid_ndcg10");
  if (!best) Fail(f.path(), ": /trainer has no attribute 'best_valid_ndcg10' (damaged or another format)");
  state->best_valid_ndcg10 = *best;
}

// Per table: saved row -> the model's row, -1 where the id is gone. No entry: rows are the same.
using RowMaps = std::map<std::string, at::Tensor>;

std::vector<std::string> AllStrings(const h5::File& f, const std::string& name, int64_t n) {
  return n == 0 ? std::vector<std::string>() : h5::ReadStrings(f, name, 0, n);
}

// Names of `n` categories: the stored names, or their numbers where a file has none.
std::vector<std::string> CategoryKeys(std::vector<std::string> names, int64_t n) {
  if (!names.empty()) return names;
  for (int64_t i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

at::Tensor MapByKey(const std::vector<std::string>& saved, const std::vector<std::string>& now, LoadReport::Counts* counts) {
  std::unordered_map<std::string_view, int64_t> row;
  row.reserve(now.size());
  for (size_t i = 0; i < now.size(); ++i) row.emplace(now[i], static_cast<int64_t>(i));
  std::vector<int64_t> map(saved.size(), -1);
  for (size_t i = 0; i < saved.size(); ++i) {
    auto it = row.find(saved[i]);
    if (it != row.end()) map[i] = it->second;
  }
  counts->carried = static_cast<int64_t>(map.size()) - std::count(map.begin(), map.end(), int64_t{-1});
  counts->dropped = static_cast<int64_t>(map.size()) - counts->carried;
  counts->fresh = static_cast<int64_t>(now.size()) - counts->carried;
  return torch::tensor(map, torch::kLong);
}

// Compares the id space `dir` was saved in with the model's. The same (or unknown: a checkpoint
// from before ids were saved, or a catalogue built in code): no maps. Different: an error naming
// both datasets, or, when remapping, the row maps by raw id (items and categories).
struct IdSpaces {
  std::vector<std::string> saved, now;  // item raw ids in row order, when remapping
};

RowMaps MatchIds(const std::string& dir, const TwoTowerModel& model, bool remap, LoadReport* report, IdSpaces* ids) {
  const ItemCatalog& now = model.catalog();
  const std::string path = dir + "/" + kIdsFile;
  if (now.item_ids_fingerprint.empty()) return {};
  if (!PathExists(path)) {
    if (remap) Fail(dir, ": saved before checkpoints recorded their item ids (no ", kIdsFile, "); its rows cannot be mapped by raw id");
    return {};  // an old checkpoint loaded as before (the row-count check below still applies)
  }
  h5::File f = h5::File::Open(path);
  const std::string saved_fp = f.GetStringAttr("/", "item_ids_fingerprint").value_or("");
  if (saved_fp == now.item_ids_fingerprint) return {};
  const std::string saved_data = f.GetStringAttr("/", "data").value_or("?");
  const int64_t saved_items = f.GetIntAttr("/", "num_items").value_or(0);
  if (!remap) {
    Fail(dir, " was trained on ", saved_data, " (", saved_items, " items, ids ", saved_fp, ") but ", now.data,
         " has other item ids (", now.num_items, " items, ids ", now.item_ids_fingerprint,
         "): its rows would land on the wrong items. To carry the rows over by raw id, start a new run with "
         "`shardrec train --init-from ", dir, " --data ", now.data, "`");
  }
  auto ds = Dataset::Open(now.data);
  RowMaps maps;
  ids->saved = AllStrings(f, "/items/raw_ids", saved_items);
  ids->now = ds->ReadItemRawIds(0, ds->info().num_items);
  const at::Tensor items = MapByKey(ids->saved, ids->now, &report->items);
  maps["item_id"] = maps["item_input_id"] = items;
  report->items_known = torch::zeros({ds->info().num_items}, torch::kBool);
  const at::Tensor carried = items.masked_select(items >= 0);
  report->items_known.index_fill_(0, carried, true);
  const int64_t saved_cats = f.GetIntAttr("/", "num_categories").value_or(0);
  const int64_t now_cats = ds->info().has_categories ? ds->info().num_categories : 0;
  const std::vector<std::string> saved_names =
      f.Exists("/categories/names/offsets") ? AllStrings(f, "/categories/names", saved_cats) : std::vector<std::string>();
  const at::Tensor cats =
      MapByKey(CategoryKeys(saved_names, saved_cats), CategoryKeys(ds->ReadCategoryNames(), now_cats), &report->categories);
  maps["item_category"] = cats;
  report->categories_known = torch::zeros({now_cats}, torch::kBool);
  report->categories_known.index_fill_(0, cats.masked_select(cats >= 0), true);
  report->remapped = true;
  return maps;
}

// This rank's rows of every table, from the shard files of however many ranks saved them (through
// `maps` where the id space changed).
bool IsItemTable(const std::string& name) { return name == "item_id" || name == "item_input_id"; }

// The saved rows of retired items (mapped to -1), full width, gathered from every saved file into
// `out` (whose raw_ids, in `slot` order, name them). Column-sharded tables fill their columns.
class RetiredCollector {
 public:
  RetiredCollector(RetiredRows* out, const std::vector<std::string>* saved_raw) : out_(out), saved_raw_(saved_raw) {}
  void Add(const h5::File& f, const std::string& g, const std::string& table, const at::Tensor& saved_rows,
           const at::Tensor& mapped, int64_t cb, int64_t ce, int64_t full_width) {
    at::Tensor gone = torch::nonzero(mapped < 0).view({-1});
    if (gone.numel() == 0) return;
    const int64_t n = saved_rows.numel();
    auto read = [&](const std::string& what) -> std::pair<std::vector<float>, int64_t> {
      if (!f.Exists(g + "/" + what)) return {{}, 0};
      std::vector<float> v = f.ReadAll<float>(g + "/" + what);
      return {std::move(v), n ? static_cast<int64_t>(v.size()) / n : 0};
    };
    auto [vec, vw] = read("vectors");
    auto [s1, s1w] = read("state1");
    auto [s2, s2w] = read("state2");
    RetiredRows::Table& t = out_->tables[table];
    t.width = full_width;
    // A per-column state is as wide as the table; a per-row state (row-wise Adagrad) is 1 wide.
    t.state1_width = s1w == 0 ? t.state1_width : (s1w == ce - cb ? full_width : 1);
    t.state2_width = s2w == 0 ? t.state2_width : full_width;
    const auto* rows = saved_rows.data_ptr<int64_t>();
    for (int64_t i : std::vector<int64_t>(gone.data_ptr<int64_t>(), gone.data_ptr<int64_t>() + gone.numel())) {
      const int64_t at = Slot((*saved_raw_)[rows[i]]);
      auto fill = [&](std::vector<float>& dst, int64_t width, const std::vector<float>& src, int64_t src_width, bool per_col) {
        if (src_width == 0) return;
        dst.resize(static_cast<size_t>(out_->raw_ids.size() * width), 0.f);
        if (per_col) {
          std::copy_n(src.begin() + i * src_width, ce - cb, dst.begin() + at * width + cb);
        } else {
          dst[at] = src[i];
        }
      };
      fill(t.vectors, t.width, vec, vw, true);
      fill(t.state1, t.state1_width, s1, s1w, t.state1_width != 1);
      fill(t.state2, t.state2_width, s2, s2w, true);
    }
  }
  // Row i of `src` (a retired row still retired) under its raw id.
  void AddRow(const RetiredRows& src, int64_t i) {
    const int64_t at = Slot(src.raw_ids[i]);
    for (const auto& [name, st] : src.tables) {
      RetiredRows::Table& t = out_->tables[name];
      if (t.width != 0 && (t.width != st.width || t.state1_width != st.state1_width || t.state2_width != st.state2_width)) {
        Fail("kept retired rows of table ", name, " have another width or optimizer state than the ones retired now ",
             "(another --dim or --embedding-optimizer): warm-start with --retired drop");
      }
      t.width = st.width;
      t.state1_width = st.state1_width;
      t.state2_width = st.state2_width;
      auto copy = [&](std::vector<float>& dst, const std::vector<float>& from, int64_t w) {
        if (w == 0) return;
        dst.resize(out_->raw_ids.size() * w, 0.f);
        std::copy_n(from.begin() + i * w, w, dst.begin() + at * w);
      };
      copy(t.vectors, st.vectors, st.width);
      copy(t.state1, st.state1, st.state1_width);
      copy(t.state2, st.state2, st.state2_width);
    }
  }
  // The row of `raw` in the output, added at the end (every table grows with it) if new.
  int64_t Slot(const std::string& raw) {
    auto [it, fresh] = slot_.emplace(raw, static_cast<int64_t>(out_->raw_ids.size()));
    if (fresh) {
      out_->raw_ids.push_back(raw);
      for (auto& [name, t] : out_->tables) {
        t.vectors.resize(out_->raw_ids.size() * t.width, 0.f);
        t.state1.resize(out_->raw_ids.size() * t.state1_width, 0.f);
        t.state2.resize(out_->raw_ids.size() * t.state2_width, 0.f);
      }
    }
    return it->second;
  }

 private:
  RetiredRows* out_;
  const std::vector<std::string>* saved_raw_;
  std::unordered_map<std::string, int64_t> slot_;
};

// The rows at positions `keep` (ascending) of a [rows x width] float dataset, a block at a time:
// fn(i, j, rows of keep[i, j)). Kept positions at most kSpanGap apart share one read, so a rank
// reads about the rows it keeps, not the whole file; a read spans at most kSpanRows rows.
void ForEachKeptBlock(const h5::File& f, const std::string& key, int64_t rows, const at::Tensor& keep, int64_t width,
                      const std::function<void(int64_t, int64_t, const at::Tensor&)>& fn) {
  constexpr int64_t kSpanGap = 4096;
  // A span is read whole and handed on before the next: at most kSpanRows rows are in memory, not
  // a copy of the shard.
  constexpr int64_t kSpanRows = int64_t{1} << 16;
  if (const int64_t saved = f.Shape(key)[0]; saved != rows) {
    Fail(f.path(), ": ", key, " has ", saved, " rows, its table's row ids ", rows, " (damaged?)");
  }
  const at::Tensor k_cpu = keep.to(torch::kCPU).contiguous();
  const int64_t* k = k_cpu.data_ptr<int64_t>();
  const int64_t n = k_cpu.numel();
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && k[j + 1] - k[j] <= kSpanGap && k[j + 1] - k[i] < kSpanRows) ++j;
    const int64_t begin = k[i], end = k[j] + 1;
    std::vector<float> v = f.Read<float>(key, begin, end);
    if (static_cast<int64_t>(v.size()) != (end - begin) * width) {
      Fail(f.path(), ": ", key, " has ", v.size(), " values in rows [", begin, ", ", end, "), expected ", (end - begin) * width,
           " (damaged?)");
    }
    const at::Tensor block = torch::from_blob(v.data(), {end - begin, width}, torch::kFloat);  // v outlives fn
    fn(i, j + 1, end - begin == j - i + 1 ? block : block.index_select(0, k_cpu.slice(0, i, j + 1) - begin));
    i = j + 1;
  }
}

void LoadEmbeddings(const std::string& dir, int64_t saved_world, TwoTowerModel& model, const RowMaps& maps,
                    RetiredCollector* retired) {
  ShardedEmbeddingCollection& emb = model.embeddings();
  std::set<std::string> saved_tables;  // every rank reads every file: all ranks agree on a missing table
  for (int64_t r = 0; r < saved_world; ++r) {
    h5::File f = h5::File::Open(dir + "/embeddings-rank" + std::to_string(r) + ".h5");
    for (const auto& spec : emb.specs()) {
      const Shard* s = emb.LocalShard(spec.name);
      const std::string g = "/tables/" + spec.name;
      if (!f.Exists(g + "/rows")) continue;
      saved_tables.insert(spec.name);
      const bool collect = retired != nullptr && IsItemTable(spec.name) && maps.count(spec.name);
      if (!s && !collect) continue;
      const int64_t cb = NeedInt(f, g, "col_begin"), ce = NeedInt(f, g, "col_end");
      const int64_t lo = s ? std::max(cb, s->col_begin) : 0, hi = s ? std::min(ce, s->col_end) : 0;
      if (lo >= hi && !collect) continue;
      std::vector<int64_t> rows = f.ReadAll<int64_t>(g + "/rows");
      if (rows.empty()) continue;
      at::Tensor ids = torch::tensor(rows, torch::kLong);
      if (auto m = maps.find(spec.name); m != maps.end()) {
        if (ids.max().item<int64_t>() >= m->second.numel() || ids.min().item<int64_t>() < 0) {
          Fail(dir, "/embeddings-rank", r, ".h5: table ", spec.name, " has rows outside the ", m->second.numel(),
               " ids of ", kIdsFile, " (damaged?)");
        }
        const at::Tensor saved_rows = ids;
        ids = m->second.index_select(0, ids);  // -1: gone (kept as a retired row when collecting)
        if (collect) retired->Add(f, g, spec.name, saved_rows, ids, cb, ce, spec.dim);
      }
      if (!s || lo >= hi) continue;
      at::Tensor keep = torch::nonzero((ids >= s->row_begin).logical_and(ids < s->row_end)).view({-1});
      if (keep.numel() == 0) continue;
      if (ids.max().item<int64_t>() >= spec.rows) {
        Fail(dir, "/embeddings-rank", r, ".h5: table ", spec.name, " has row ", ids.max().item<int64_t>(),
             " but the model has ", spec.rows, " rows (another dataset?)");
      }
      at::Tensor w = emb.LocalWeights(spec.name);
      const auto dev = w.device();
      at::Tensor local_rows = (ids.index_select(0, keep) - s->row_begin).to(dev);
      auto place = [&](at::Tensor dst, const std::string& key, int64_t width, bool per_col) {
        at::Tensor target = per_col ? dst.narrow(1, lo - s->col_begin, hi - lo) : dst;
        if (!per_col) target = target.view({-1, 1});
        ForEachKeptBlock(f, key, static_cast<int64_t>(rows.size()), keep, width,
                         [&](int64_t i, int64_t j, const at::Tensor& block) {
                           const at::Tensor src = per_col ? block.narrow(1, lo - cb, hi - lo) : block;
                           target.index_copy_(0, local_rows.slice(0, i, j), src.to(dev));
                         });
      };
      place(w, g + "/vectors", ce - cb, true);
      SparseOptimizer* opt = emb.LocalOptimizer(spec.name);
      if (opt->state1().defined() && f.Exists(g + "/state1")) {
        place(opt->state1(), g + "/state1", opt->state1().dim() == 2 ? ce - cb : 1, opt->state1().dim() == 2);
      }
      if (opt->state2().defined() && f.Exists(g + "/state2")) place(opt->state2(), g + "/state2", ce - cb, true);
      if (auto steps = f.GetIntAttr(g, "optimizer_steps")) opt->set_steps(*steps);
    }
  }
  for (const auto& spec : emb.specs()) {
    if (!saved_tables.count(spec.name)) {
      Fail(dir, ": no saved rows of table ", spec.name, " in any embeddings-rank*.h5: the model was saved with other "
           "options (--input-vectors, --use-categories) than the ones given");
    }
  }
}

// Puts the rows of retired items (`prev`, a retired.h5) that the model has again into this rank's
// shards; the ones still retired go to `keep` (when kept). Returns how many came back.
int64_t RestoreRetired(const std::string& path, const RetiredRows& prev, const std::vector<std::string>& now_raw, TwoTowerModel& model,
                       RetiredCollector* keep) {
  std::unordered_map<std::string_view, int64_t> row;
  for (size_t i = 0; i < now_raw.size(); ++i) row.emplace(now_raw[i], static_cast<int64_t>(i));
  std::vector<int64_t> from, to;
  for (size_t i = 0; i < prev.raw_ids.size(); ++i) {
    auto it = row.find(prev.raw_ids[i]);
    if (it != row.end()) {
      from.push_back(static_cast<int64_t>(i));
      to.push_back(it->second);
    } else if (keep != nullptr) {
      keep->AddRow(prev, static_cast<int64_t>(i));
    }
  }
  ShardedEmbeddingCollection& emb = model.embeddings();
  for (const auto& spec : emb.specs()) {
    const Shard* s = emb.LocalShard(spec.name);
    auto t = prev.tables.find(spec.name);
    if (t == prev.tables.end() || from.empty()) continue;
    if (t->second.width != spec.dim) {
      Fail(path, ": table ", spec.name, " rows are ", t->second.width, " wide, the model's ", spec.dim);
    }
    if (!s) continue;
    std::vector<int64_t> src_rows, dst_rows;
    for (size_t j = 0; j < from.size(); ++j) {
      if (to[j] >= s->row_begin && to[j] < s->row_end) {
        src_rows.push_back(from[j]);
        dst_rows.push_back(to[j] - s->row_begin);
      }
    }
    if (src_rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(prev.raw_ids.size());
    at::Tensor w = emb.LocalWeights(spec.name);
    const auto dev = w.device();
    const at::Tensor src_idx = torch::tensor(src_rows, torch::kLong), dst_idx = torch::tensor(dst_rows, torch::kLong).to(dev);
    auto place = [&](at::Tensor dst, const std::vector<float>& values, int64_t width) {
      if (!dst.defined() || width == 0) return;
      at::Tensor src = FromFloats(values, {n, width}).index_select(0, src_idx);
      if (dst.dim() == 2) {
        src = src.narrow(1, s->col_begin, s->col_end - s->col_begin);
        dst.index_copy_(0, dst_idx, src.to(dev));
      } else {
        dst.view({-1, 1}).index_copy_(0, dst_idx, src.narrow(1, 0, 1).to(dev));
      }
    };
    place(w, t->second.vectors, t->second.width);
    SparseOptimizer* opt = emb.LocalOptimizer(spec.name);
    place(opt->state1(), t->second.state1, t->second.state1_width);
    place(opt->state2(), t->second.state2, t->second.state2_width);
  }
  return static_cast<int64_t>(from.size());
}

}  // namespace

LoadReport LoadCheckpoint(const std::string& dir, TwoTowerModel& model, torch::optim::AdamW* adam, TrainerState* state,
                          Communicator& comm, const LoadOptions& options) {
  const bool remap_by_raw_id = options.remap_by_raw_id, keep_retired = options.keep_retired;
  const bool fresh_context = options.fresh_context;
  if (!options.verified) VerifyCheckpoint(dir, comm);
  const int64_t saved_world = ReadManifest(dir).world_size;
  LoadReport report;
  IdSpaces ids;
  const RowMaps maps = MatchIds(dir, model, remap_by_raw_id, &report, &ids);
  // Rank 0 gathers the rows a warm start retires, when they are kept (rank 0 writes them).
  auto kept = std::make_shared<RetiredRows>();
  std::unique_ptr<RetiredCollector> collector;
  if (report.remapped && keep_retired && comm.rank() == 0) collector = std::make_unique<RetiredCollector>(kept.get(), &ids.saved);
  torch::NoGradGuard no_grad;
  {
    h5::File f = h5::File::Open(dir + "/dense.h5");
    LoadDense(dir, f, model, adam, fresh_context ? &report.fresh_dense : nullptr);
    if (state) LoadTrainerState(dir, f, state);
  }
  std::string error;  // a rank-local failure (a damaged shard file) reaches every rank
  try {
    LoadEmbeddings(dir, saved_world, model, maps, collector.get());
    const std::string retired_path = dir + "/" + kRetiredFile;
    if (PathExists(retired_path)) {
      RetiredRows prev = ReadRetired(retired_path);
      if (report.remapped) {
        report.returned = RestoreRetired(retired_path, prev, ids.now, model, collector.get());
      } else {
        *kept = std::move(prev);  // the same ids: the run keeps what it had
      }
    }
  } catch (const UserError& e) {
    error = e.what();
  }
  ThrowIfAnyRankFailed(comm, error);
  if (!kept->empty()) report.retired = kept;
  return report;
}

int64_t SavedStep(const std::string& dir) { return ReadManifest(dir).step; }

int64_t SavedMaxLen(const std::string& dir, int64_t dim) {
  const std::string path = dir + "/dense.h5";
  h5::File f = h5::File::Open(path);
  auto size = [&](const char* name) {
    if (!f.Exists(name)) Fail(path, ": no ", name, " (not a model of this program?)");
    int64_t n = 1;
    for (int64_t d : f.Shape(name)) n *= d;
    return n;
  };
  const int64_t width = size("/dense/ln_final.weight");  // one value per dimension
  if (width != dim) Fail(path, ": the model has dim ", width, ", this run --dim ", dim);
  const int64_t rows = size("/dense/positions.weight") / width;  // max-len + 1 positions
  if (rows < 2 || rows * width != size("/dense/positions.weight")) Fail(path, ": /dense/positions.weight is not (max-len + 1) x ", width);
  return rows - 1;
}

bool SavedHasContext(const std::string& dir) { return h5::File::Open(dir + "/dense.h5").Exists("/dense/context.weight"); }

SavedData SavedDataOf(const std::string& dir) {
  const std::string path = dir + "/" + kIdsFile;
  if (!PathExists(path)) return {};
  h5::File f = h5::File::Open(path);
  return {f.GetStringAttr("/", "data_fingerprint").value_or(""), f.GetStringAttr("/", "data").value_or("")};
}

std::string CheckpointDir(const std::string& run_dir, int64_t step) { return RunDir(run_dir).checkpoint(step); }

std::vector<std::string> ListCheckpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  const std::string root = RunDir(run_dir).checkpoints();
  if (!IsDirectory(root)) return out;
  for (const auto& n : ListDirectory(root)) {
    if (n.rfind("step-", 0) == 0 && n.find('.') == std::string::npos && PathExists(root + "/" + n + "/" + kManifest)) {
      out.push_back(root + "/" + n);
    }
  }
  return out;  // names are zero-padded: lexical order is step order
}

PickedCheckpoint PickCheckpoint(const std::string& run_dir, const std::string& policy, Communicator& comm) {
  if (policy != "latest" && policy != "latest-valid") Fail("--resume: expected latest or latest-valid, got '", policy, "'");
  std::string listing;
  for (const auto& c : ListCheckpoints(run_dir)) listing += c + "\n";
  listing = BroadcastString(comm, listing, 0);
  std::vector<std::string> all;
  std::string_view line;
  for (LineIterator it(listing); it.Next(&line);) all.emplace_back(line);
  // From here on every rank decides alike (rank 0's listing, agreed verification).
  if (all.empty()) {
    throw AgreedUserError(run_dir + ": no checkpoint to resume from (" + run_dir + "/checkpoints/step-*/manifest.json)");
  }
  PickedCheckpoint picked;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      VerifyCheckpoint(*it, comm);
      picked.dir = *it;
      return picked;
    } catch (const AgreedUserError& e) {
      if (policy == "latest") {
        throw AgreedUserError(std::string(e.what()) + "; use --resume=latest-valid to fall back to the previous checkpoint");
      }
      picked.skipped.push_back(std::string("skipping damaged checkpoint: ") + e.what());
    }
  }
  throw AgreedUserError(run_dir + ": every checkpoint is damaged");
}

void PruneCheckpoints(const std::string& run_dir, int64_t keep) {
  auto all = ListCheckpoints(run_dir);
  for (int64_t i = 0; i + keep < static_cast<int64_t>(all.size()); ++i) RemoveAll(all[i]);
}

}  // namespace shardrec
