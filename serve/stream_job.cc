#include "serve/stream_job.h"

#include <torch/torch.h>

#include <glog/logging.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <set>
#include <fstream>
#include <limits>
#include <thread>
#include <unordered_map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/strings.h"
#include "io/dataset.h"
#include "io/event_log.h"
#include "io/export_format.h"
#include "io/h5.h"
#include "model/catalogue.h"
#include "serve/export.h"
#include "serve/export_root.h"
#include "train/checkpoint.h"
#include "train/model_files.h"
#include "train/run_dir.h"
#include "train/step.h"

namespace shardrec {

void WriteStreamState(const std::string& path, const StreamState& s) {
  JsonObject offsets;
  for (const auto& [p, seg] : s.offsets) offsets.Add(p, seg);
  std::string consumed = "[";
  for (size_t i = 0; i < s.consumed.size(); ++i) consumed += (i ? "," : "") + JsonEscape(s.consumed[i]);
  JsonObject j;
  j.Add("base_version", s.base_version).Add("base_data", s.base_data).Add("catalogue", s.catalogue).Add("offsets", offsets).AddRaw("consumed", consumed + "]");
  j.Add("segments", s.segments).Add("events", s.events).Add("unknown_items", s.unknown_items).Add("new_users", s.new_users);
  j.Add("new_items", s.new_items).Add("publishes", s.publishes).Add("since", s.since).Add("before_base", s.before_base);
  j.Add("watermark", s.watermark).Add("publishing", s.publishing).Add("expected", s.expected);
  const std::string text = j.str();
  h5::File f = h5::File::Create(path);
  f.Write<uint8_t>("/state_json", std::vector<uint8_t>(text.begin(), text.end()));
  f.Write<int64_t>("/item_events", s.item_events);
  f.SetAttr("/", "format", std::string("shardrec.stream"));
  f.SetAttr("/", "format_version", int64_t{1});
  f.Close();
}

StreamState ReadStreamState(const std::string& path) {
  h5::File f = h5::File::Open(path);
  if (f.GetStringAttr("/", "format").value_or("") != "shardrec.stream") Fail(path, ": not a stream state (format shardrec.stream)");
  const std::vector<uint8_t> bytes = f.ReadAll<uint8_t>("/state_json");
  const JsonValue j = JsonValue::Parse(std::string(bytes.begin(), bytes.end()), path);
  StreamState s;
  s.base_version = j.at("base_version").str();
  s.base_data = j.at("base_data").str();
  s.catalogue = j.at("catalogue").str();
  for (const auto& [p, seg] : j.at("offsets").object) s.offsets[p] = seg.str();
  for (const JsonValue& c : j.at("consumed").array) s.consumed.push_back(c.str());
  s.segments = j.at("segments").integer();
  s.events = j.at("events").integer();
  s.unknown_items = j.at("unknown_items").integer();
  s.new_users = j.at("new_users").integer();
  s.new_items = j.at("new_items").integer();
  s.since = j.at("since").integer();
  s.before_base = j.at("before_base").integer();
  s.watermark = j.at("watermark").integer();
  s.publishing = j.at("publishing").str();
  s.expected = j.at("expected").str();
  s.publishes = j.at("publishes").integer();
  s.item_events = f.ReadAll<int64_t>("/item_events");
  return s;
}

std::vector<std::string> SegmentsAfter(const std::vector<std::string>& segments, const std::map<std::string, std::string>& offsets) {
  std::vector<std::string> out;
  for (const std::string& name : segments) {
    std::string producer;
    if (!IsSegmentName(name, &producer)) continue;
    const auto it = offsets.find(producer);
    if (it == offsets.end() || name > it->second) out.push_back(name);
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string UtcStamp() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", std::gmtime(&now));
  return buf;
}

class StreamJob {
 public:
  StreamJob(const StreamJobOptions& o, Communicator& comm, TrainingSink* sink) : o_(o), comm_(comm), sink_(sink) {}
  StreamJobReport Run();

 private:
  void Start();
  bool PickStart(std::string* dir, bool* checkpoint, bool* verified);
  // `fresh`: from the served model (rows by raw id, the held rows zero), not the stream's own.
  void LoadModel(const std::string& dir, bool checkpoint, bool verified, bool fresh);
  // COLLECTIVE. The dataset a version is exported with: the base with the new items so far.
  std::string VersionData();
  // COLLECTIVE. Saves the model for a version: its rows named by raw id (the new items' too).
  void SavePublishedModel(const std::string& dir);
  // A segment's events in the base's ids (new users get ids); events of unknown items counted.
  std::vector<StreamEvent> Map(const std::string& segment);
  void Consume(const std::string& segment, bool learn);
  // Rank 0's decision for the next round, the same on every rank: "stop", "publish" or "poll",
  // then the segments to consume, one per line.
  std::vector<std::string> NextRound(bool* stop, bool* publish);
  void Checkpoint();
  void Publish();
  void Report(const std::string& version, const IndexReport& index, double seconds);
  void Prune(const std::string& version, const std::string& parent, const std::string& data);
  // Whether ROOT/<version> came from this stream (and, with `unserved`, was never gated: a kill
  // came between its export and the move of LATEST). A damaged version is not this stream's.
  bool FromThisStream(const std::string& version, bool unserved = false) const;

  const StreamJobOptions& o_;
  Communicator& comm_;
  TrainingSink* sink_;
  StreamJobReport r_;
  StreamState& s_ = r_.state;
  std::unique_ptr<Dataset> base_;
  ItemCatalog catalog_;
  std::unique_ptr<TwoTowerModel> model_;
  std::unique_ptr<torch::optim::AdamW> adam_;
  std::unique_ptr<RetrievalLoss> loss_;
  std::unique_ptr<TrainStep> step_;
  std::unique_ptr<StreamLearner> learner_;
  UserHistories histories_;
  std::unordered_map<std::string, int64_t> users_, items_;
  std::vector<std::string> item_raw_;  // raw id of each catalogue row (the held ones as named so far)
  std::vector<std::string> added_titles_;  // of the new items, in order
  int64_t base_items_ = 0;
  int64_t first_step_ = 1;
  int64_t unpublished_ = 0;
  std::string expected_;  // what LATEST must name at a publish: this stream's last version, or its base
  Clock::time_point started_ = Clock::now(), last_segment_ = Clock::now(), last_publish_ = Clock::now();
};

// Where to start: the newest checkpoint of RUN that verifies (a restart: its state read into s_),
// else LATEST's model (the base). Returns whether it is a restart.
bool StreamJob::PickStart(std::string* dir, bool* checkpoint, bool* verified) {
  const RunDir run(o_.train.run_dir);
  std::string listed;  // rank 0's listing decides
  RunAgreed(comm_, [&] {
    if (comm_.rank() == 0) listed = ListCheckpoints(run.path()).empty() ? "fresh" : "resume";
  });
  if (BroadcastString(comm_, listed, 0) == "resume") {
    const PickedCheckpoint picked = PickCheckpoint(run.path(), "latest-valid", comm_);
    for (const std::string& s : picked.skipped) {
      if (sink_) sink_->OnWarning(s);
    }
    *dir = picked.dir, *verified = true, *checkpoint = true;
    if (!PathExists(*dir + "/" + kStreamStateFile)) Fail(*dir, ": no ", kStreamStateFile, "; ", run.path(), " is not a stream's run directory");
    s_ = ReadStreamState(*dir + "/" + kStreamStateFile);
    return r_.resumed = true;
  }
  std::string latest;
  RunAgreed(comm_, [&] {
    if (comm_.rank() == 0) latest = ReadLatest(o_.root);
  });
  latest = BroadcastString(comm_, latest, 0);
  if (latest.empty()) Fail(o_.root, ": nothing is served (no LATEST); publish a trained run first (`shardrec publish`)");
  s_.base_version = latest;
  const ExportManifest base = ReadExportManifest(o_.root + "/" + latest);
  s_.base_data = base.data;
  const auto mark = base.gate_candidate.find("stream_watermark");  // a stream's version: where it stopped
  s_.since = mark != base.gate_candidate.end() ? static_cast<int64_t>(mark->second) + 1 : -1;
  const PreviousModel prev = ResolvePreviousModel(o_.root + "/" + latest, &comm_);
  *dir = prev.dir, *verified = prev.verified;
  *checkpoint = dir->find("/checkpoints/") != std::string::npos;
  return false;
}

void StreamJob::Start() {
  const RunDir run(o_.train.run_dir);
  std::string dir;
  bool checkpoint = true, verified = false;
  const bool resume = PickStart(&dir, &checkpoint, &verified);
  base_ = Dataset::Open(s_.base_data);
  if (!resume) {  // the model's catalogue: the base's items and the rows held for new ones
    s_.catalogue = o_.new_items > 0 ? RealPath(run.path()) + "/catalogue.h5" : s_.base_data;
    RunAgreed(comm_, [&] {
      if (comm_.rank() == 0 && o_.new_items > 0) WriteExtendedCatalogue(*base_, s_.catalogue, {}, o_.new_items);
    });
  }
  catalog_ = LoadItemCatalog(*Dataset::Open(s_.catalogue));
  LoadModel(dir, checkpoint, verified, !resume);
  histories_ = UserHistories::FromDataset(*base_, std::numeric_limits<int64_t>::max());
  const DatasetInfo& info = base_->info();
  base_items_ = info.num_items;
  {
    const std::vector<std::string> raw = base_->ReadUserRawIds(0, info.num_users);
    for (int64_t u = 0; u < info.num_users; ++u) users_.emplace(raw[u], u);
    item_raw_ = base_->ReadItemRawIds(0, info.num_items);
    for (int64_t i = 0; i < info.num_items; ++i) items_.emplace(item_raw_[i], i);
  }
  std::vector<int64_t> counts(static_cast<size_t>(catalog_.num_items), 0);
  int64_t newest = -1;
  for (int64_t u = 0; u < histories_.users(); ++u) {
    for (int64_t it : histories_.items(u)) ++counts[it];
    if (histories_.length(u) > 0) newest = std::max(newest, histories_.times(u).back());
  }
  if (!resume && s_.since < 0) s_.since = info.has_timestamps ? newest + 1 : 0;  // after the base's data
  StreamLearnerOptions lo = o_.learner;
  lo.seed = o_.train.seed;
  lo.timestamps = info.has_timestamps;
  lo.lr = o_.stream_lr > 0 ? o_.stream_lr : o_.train.step.lr;
  lo.full_rows = o_.scale_lr ? o_.train.batch_size : 0;
  learner_ = std::make_unique<StreamLearner>(*model_, *loss_, *step_, histories_, counts, comm_, lo, first_step_);
  if (!resume) s_.item_events.assign(static_cast<size_t>(catalog_.num_items), 0);
  if (static_cast<int64_t>(s_.item_events.size()) != catalog_.num_items) Fail(dir, "/", kStreamStateFile, ": /item_events does not match ", s_.catalogue);
  // The histories as they were at the checkpoint: the segments it consumed, in the order it did.
  const std::vector<std::string> consumed = std::move(s_.consumed);
  const StreamState saved = s_;
  s_.consumed.clear();
  for (const std::string& seg : consumed) Consume(seg, /*learn=*/false);
  s_ = saved;
  s_.consumed = consumed;
  learner_->SyncCounts();
  // A publish expects LATEST where this stream left it. On a restart: at the version this
  // checkpoint was published as, or (a kill came before LATEST moved) at what it named before, and
  // then the checkpoint is published again.
  expected_ = s_.base_version;
  if (resume) {
    std::string latest, gated;
    RunAgreed(comm_, [&] {
      if (comm_.rank() != 0) return;
      latest = ReadLatest(o_.root);
      // Gated and then not served: LATEST moved away from it since (a rollback), never to it.
      gated = FromThisStream(s_.publishing) && !FromThisStream(s_.publishing, /*unserved=*/true) ? "1" : "";
    });
    latest = BroadcastString(comm_, latest, 0);
    expected_ = latest == s_.publishing || !BroadcastString(comm_, gated, 0).empty() ? s_.publishing : s_.expected;
    if (latest != s_.publishing) unpublished_ = 1;
  }
}

void StreamJob::LoadModel(const std::string& dir, bool checkpoint, bool verified, bool fresh) {
  const TrainOptions& t = o_.train;
  const ShardingPlan plan = PlanItemTables(t.model, catalog_, comm_, t.planner);
  model_ = std::make_unique<TwoTowerModel>(t.model, catalog_, plan, &comm_, t.seed);
  adam_ = std::make_unique<torch::optim::AdamW>(model_->dense_parameters(), torch::optim::AdamWOptions(t.step.lr).weight_decay(t.weight_decay));
  TrainerState state;
  const bool remap = fresh && s_.catalogue != s_.base_data;  // the served model's rows go by raw id
  if (remap) model_->ZeroIdRows(std::vector<int64_t>(static_cast<size_t>(catalog_.num_items), 0));  // what it lacks stays zero
  const LoadReport lr = LoadCheckpoint(dir, *model_, adam_.get(), checkpoint ? &state : nullptr, comm_, {.verified = verified, .remap_by_raw_id = remap});
  if (lr.remapped) model_->ZeroUnknownCategoryRows(lr.categories_known);
  first_step_ = (checkpoint ? state.step : SavedStep(dir)) + 1;
  model_->train(true);
  RetrievalLossOptions lo = TrainLossOptions(t, catalog_.num_items, comm_.world_size());
  // Items without an event yet (the held rows among them) are no candidates.
  lo.mask_unseen = model_->has_content_path() || catalog_.num_items > base_->info().num_items;
  lo.max_positions_per_rank = StreamLearner::MaxPositions(o_.learner, t.model.max_len, t.batch_size);
  loss_ = std::make_unique<RetrievalLoss>(lo, std::vector<int64_t>(static_cast<size_t>(catalog_.num_items), 1), c10::Device(comm_.device()));
  StepOptions so = t.step;
  so.lr = o_.stream_lr > 0 ? o_.stream_lr : t.step.lr;
  so.warmup_steps = 0;
  so.cosine = false;
  so.seed = t.seed;
  step_ = std::make_unique<TrainStep>(*model_, *loss_, *adam_, comm_, so);
}

std::vector<StreamEvent> StreamJob::Map(const std::string& segment) {
  std::vector<LogEvent> events;  // every rank reads it: one failure ends every rank alike
  RunAgreed(comm_, [&] { events = ReadSegment(o_.event_log + "/" + segment); });
  std::vector<StreamEvent> out;
  out.reserve(events.size());
  for (const LogEvent& e : events) {
    if (e.ts < s_.since) {
      ++s_.before_base;
      continue;
    }
    s_.watermark = std::max(s_.watermark, e.ts);
    auto item = items_.find(e.item);
    const bool held_name = e.item.rfind("~new-", 0) == 0;  // the placeholders' names: never a new item's
    if (item == items_.end() && !held_name && static_cast<int64_t>(item_raw_.size()) < catalog_.num_items) {  // a held row
      item = items_.emplace(e.item, static_cast<int64_t>(item_raw_.size())).first;
      item_raw_.push_back(e.item);
      added_titles_.push_back(e.title.value_or(""));
      ++s_.new_items;
    }
    if (item == items_.end()) {
      ++s_.unknown_items;
      continue;
    }
    auto [user, fresh] = users_.emplace(e.user, histories_.users());
    if (fresh) {
      histories_.AddUser();
      ++s_.new_users;
    }
    out.push_back({user->second, item->second, e.ts});
    ++s_.item_events[item->second];
  }
  s_.events += static_cast<int64_t>(events.size());
  return out;
}

void StreamJob::Consume(const std::string& segment, bool learn) {
  const std::vector<StreamEvent> events = Map(segment);
  if (learn) {
    learner_->Add(events);
    learner_->Flush();  // a batch never spans segments: a restart resumes at a step boundary
    learner_->SyncCounts();  // ... with the loss's counts as they are there
    ++unpublished_;
  } else {
    learner_->Observe(events);
  }
  std::string producer;
  CHECK(IsSegmentName(segment, &producer)) << segment;
  s_.offsets[producer] = segment;
  s_.consumed.push_back(segment);
  ++s_.segments;
}

std::vector<std::string> StreamJob::NextRound(bool* stop, bool* publish) {
  std::string plan;
  RunAgreed(comm_, [&] {
    if (comm_.rank() != 0) return;
    const std::vector<std::string> fresh = SegmentsAfter(ListSegments(o_.event_log), s_.offsets);
    const bool timed_out = o_.max_seconds > 0 && Since(started_) >= o_.max_seconds;
    const bool idle = fresh.empty() && o_.idle_seconds > 0 && Since(last_segment_) >= o_.idle_seconds;
    const int signal = o_.train.stop_signal != nullptr ? o_.train.stop_signal->load() : 0;
    const bool due = o_.publish_every > 0 && Since(last_publish_) >= o_.publish_every && unpublished_ > 0;
    plan = signal != 0 ? "stop " + std::to_string(signal) : timed_out || idle ? "stop 0" : due ? "publish" : "poll";
    for (const std::string& f : fresh) plan += "\n" + f;
  });
  plan = BroadcastString(comm_, plan, 0);
  std::vector<std::string> lines;
  for (auto l : SplitText(plan, "\n")) lines.emplace_back(l);
  *stop = lines.front().rfind("stop ", 0) == 0;
  if (*stop) r_.stop_signal = std::stoi(lines.front().substr(5));
  *publish = lines.front() == "publish";
  lines.erase(lines.begin());
  return lines;
}

void StreamJob::Checkpoint() {
  TrainerState state;
  state.step = learner_->next_step() - 1;
  SaveCheckpoint(CheckpointDir(o_.train.run_dir, state.step), *model_, adam_.get(), &state, comm_, nullptr, 0,
                 [&](const std::string& staging) { WriteStreamState(staging + "/" + kStreamStateFile, s_); });
  if (comm_.rank() == 0) PruneCheckpoints(o_.train.run_dir, o_.train.keep_checkpoints);
  learner_->SyncCounts();
}

// A version of the root from the model as it stands: saved to RUN/published/<version>, exported
// with the histories so far, indexed, gated (finite vectors, the index's recall) and served.
void StreamJob::Publish() {
  const Clock::time_point t0 = Clock::now();
  ++s_.publishes;
  char tail[48];  // the step, and the publish's number: unique even within one second
  std::snprintf(tail, sizeof(tail), "-s%09lld-%06lld", static_cast<long long>(learner_->next_step() - 1), static_cast<long long>(s_.publishes));
  const std::string version = BroadcastString(comm_, "v" + UtcStamp() + tail, 0);
  s_.publishing = version;
  s_.expected = expected_;
  Checkpoint();
  const std::string model_dir = o_.train.run_dir + "/published/" + version;
  SavePublishedModel(model_dir);
  // The root's lock from the export to the move of LATEST: no other writer removes what is staged.
  std::unique_ptr<DirectoryLock> lock;
  std::string parent;
  RunAgreed(comm_, [&] {
    if (comm_.rank() != 0) return;
    lock = LockExportRoot(o_.root, "a stream publish", o_.lock_wait);
    parent = ReadLatest(o_.root);
    if (parent != expected_) {
      Fail(o_.root, "/LATEST names ", parent.empty() ? "nothing" : parent, ", not ", expected_, ", the version this stream ",
           expected_ == s_.base_version ? "started from" : "published last",
           " (a nightly publish or a rollback since?); start a new stream from what is served, with a new --run-dir");
    }
  });
  ExportOptions eo;
  eo.run_dir = o_.train.run_dir;
  eo.model_dir = model_dir;
  eo.data = s_.catalogue;
  if (s_.catalogue != s_.base_data) eo.add_items = VersionData();  // rows by raw id, the new items' included
  eo.histories = &histories_;
  eo.root = o_.root;
  eo.version = version;
  eo.model = o_.train.model;
  eo.seed = o_.train.seed;
  eo.move_latest = false;
  const std::string dir = ExportEmbeddings(eo, comm_);
  IndexReport ir;
  RunAgreed(comm_, [&] {
    if (comm_.rank() != 0) return;
    IndexOptions io = o_.index;
    io.parent = o_.root + "/" + parent;  // its index updated in place where it can be
    ir = BuildExportIndex(dir, io);
    if (ir.recall10 < o_.min_recall) {
      Fail("stream: version ", version, " refused: its index's recall@10 ", ir.recall10, " is below --min-recall ", o_.min_recall);
    }
    ExportManifest m = ReadExportManifest(dir);
    m.has_lineage = true;
    m.parent = parent;
    m.data_fingerprint = base_->DataFingerprint();
    m.gate_candidate = {{"index_recall@10", ir.recall10}, {"stream_events", static_cast<double>(s_.events)},
                        {"stream_step", static_cast<double>(learner_->next_step() - 1)},
                        {"stream_watermark", static_cast<double>(s_.watermark)}};
    m.gate_decision = "published";
    WriteExportManifest(dir, m);
    SetLatest(o_.root, version);
    Prune(version, parent, eo.add_items);
  }, [&] {
    if (comm_.rank() == 0 && ReadLatest(o_.root) != version) RemoveAll(dir);
  });
  expected_ = version;
  r_.versions.push_back(version);
  unpublished_ = 0;
  last_publish_ = Clock::now();
  const double seconds = Since(t0);
  r_.publish_seconds += seconds;
  Report(version, ir, seconds);
}

// With the root's lock, after `version` is served: this stream's versions beyond --keep (never the
// served one or its parent) and those a kill left unserved; then the models and datasets of
// versions no longer under the root (none while some version's manifest cannot be read).
void StreamJob::Prune(const std::string& version, const std::string& parent, const std::string& data) {
  std::vector<std::string> mine;
  for (const std::string& v : ListVersions(o_.root)) {
    if (v != version && v != parent && FromThisStream(v)) mine.push_back(v);
  }
  const int64_t excess = static_cast<int64_t>(mine.size()) + 1 - o_.keep;
  for (size_t i = 0; i < mine.size(); ++i) {
    if (static_cast<int64_t>(i) < excess || FromThisStream(mine[i], /*unserved=*/true)) RetireVersion(o_.root, mine[i]);
  }
  std::set<std::string> used = {data};
  for (const std::string& v : ListVersions(o_.root)) {
    try {
      const ExportManifest m = ReadExportManifest(o_.root + "/" + v);
      used.insert(m.data);
      used.insert(m.source);
    } catch (const UserError& e) {
      LOG(WARNING) << "stream: not cleaning " << o_.train.run_dir << ": " << e.what();
      return;
    }
  }
  for (const std::string& sub : {std::string("/published"), std::string("/catalogues")}) {
    const std::string d = o_.train.run_dir + sub;
    for (const std::string& f : IsDirectory(d) ? ListDirectory(d) : std::vector<std::string>()) {
      const std::string path = RealPath(d) + "/" + f;
      if (f != "config.yaml" && f != version && !used.count(path)) RemoveAll(path);
    }
  }
}

std::string StreamJob::VersionData() {
  const int64_t added = static_cast<int64_t>(item_raw_.size()) - base_items_;
  if (added == 0) return s_.base_data;
  char name[32];
  std::snprintf(name, sizeof(name), "/items-%09lld.h5", static_cast<long long>(added));
  const std::string path = o_.train.run_dir + "/catalogues" + name;  // the same for the same new items
  RunAgreed(comm_, [&] {
    if (comm_.rank() != 0 || PathExists(path)) return;
    MakeDirs(o_.train.run_dir + "/catalogues");
    std::vector<std::pair<std::string, std::string>> items;
    for (int64_t i = 0; i < added; ++i) items.emplace_back(item_raw_[base_items_ + i], added_titles_[i]);
    WriteExtendedCatalogue(*base_, path, items, 0);
  });
  return path;
}

void StreamJob::SavePublishedModel(const std::string& dir) {
  const int64_t step = learner_->next_step() - 1;
  if (s_.catalogue == s_.base_data) return SaveModel(*model_, dir, comm_, nullptr, step);
  // Its rows named as they are now: the base's items, the new ones, then the held rows left.
  SaveCheckpoint(dir, *model_, nullptr, nullptr, comm_, nullptr, step, [&](const std::string& staging) {
    SavedIds ids{.data = s_.catalogue, .data_fingerprint = base_->DataFingerprint(), .raw_ids = item_raw_,
                 .category_names = base_->ReadCategoryNames()};
    for (int64_t k = static_cast<int64_t>(item_raw_.size()) - base_items_; k < catalog_.num_items - base_items_; ++k) {
      ids.raw_ids.push_back("~new-" + std::to_string(k));
    }
    ids.item_ids_fingerprint = ItemIdsFingerprintOf(ids.raw_ids, ids.category_names);
    WriteIdsFile(staging + "/" + kIdsFile, ids);
  });
}

bool StreamJob::FromThisStream(const std::string& version, bool unserved) const {
  try {
    const ExportManifest m = ReadExportManifest(o_.root + "/" + version);
    return SameFile(Dirname(m.source), o_.train.run_dir + "/published") && (!unserved || !m.has_lineage);
  } catch (const UserError&) {
    return false;
  }
}

void StreamJob::Report(const std::string& version, const IndexReport& index, double seconds) {
  const double recall10 = index.recall10;
  if (comm_.rank() != 0) return;
  const double total = Since(started_);
  JsonObject j;
  j.Add("seconds", total).Add("version", version).Add("step", learner_->next_step() - 1).Add("segments", s_.segments);
  j.Add("events", s_.events).Add("unknown_items", s_.unknown_items).Add("new_users", s_.new_users);
  j.Add("learnt", learner_->events_learnt()).Add("loss", learner_->last_loss()).Add("index_recall@10", recall10);
  j.Add("index_build_seconds", index.build_seconds).Add("index_updated_shards", index.updated_shards).Add("index_updated_rows", index.updated_rows);
  j.Add("publish_seconds", seconds).Add("learn_seconds", r_.learn_seconds);
  std::ofstream f(o_.train.run_dir + "/stream-metrics.jsonl", std::ios::app);
  f << j.str() << "\n";
  f.flush();
  if (!f) Fail(o_.train.run_dir, "/stream-metrics.jsonl: cannot be written");
  if (o_.progress) {
    std::fprintf(stderr, "stream: %s  step %lld  events %lld (%.0f/s learning)  loss %.4f  recall@10 %.3f  publish %.1f s\n",
                 version.c_str(), static_cast<long long>(learner_->next_step() - 1), static_cast<long long>(s_.events),
                 r_.learn_seconds > 0 ? static_cast<double>(learner_->events_learnt()) / r_.learn_seconds : 0.0,
                 learner_->last_loss(), recall10, seconds);
  }
}

StreamJobReport StreamJob::Run() {
  RequireFlag(std::isfinite(o_.publish_every) && o_.publish_every >= 0, "publish-every", "seconds >= 0", o_.publish_every);
  RequireFlag(std::isfinite(o_.max_seconds) && o_.max_seconds >= 0, "stream-seconds", "seconds >= 0", o_.max_seconds);
  RequireFlag(std::isfinite(o_.idle_seconds) && o_.idle_seconds >= 0, "idle-seconds", "seconds >= 0", o_.idle_seconds);
  RequireFlag(std::isfinite(o_.stream_lr) && o_.stream_lr >= 0, "stream-lr", "a finite rate >= 0 (0: --lr)", o_.stream_lr);
  RequireFlag(o_.min_recall >= 0 && o_.min_recall <= 1, "min-recall", "a value in [0, 1]", o_.min_recall);
  RequireFlag(o_.keep >= 0, "keep", "0 (all) or more versions", o_.keep);
  RequireFlag(o_.new_items >= 0 && o_.new_items <= (int64_t{1} << 30), "new-item-rows", "0 to 2^30 rows", o_.new_items);
  StreamLearner::CheckOptions(o_.learner);
  CheckIndexOptions(o_.index);
  if (!IsDirectory(o_.event_log)) Fail("--event-log ", o_.event_log, ": no such directory");
  RunAgreed(comm_, [&] {  // everything checked before the run directory is written to
    if (comm_.rank() != 0) return;
    const std::string marker = o_.train.run_dir + "/STREAM";
    const bool empty = !IsDirectory(o_.train.run_dir) || ListDirectory(o_.train.run_dir).empty();
    if (!empty && !PathExists(marker)) Fail("--run-dir ", o_.train.run_dir, ": holds files and is not a stream's run directory; give a new one");
    if (ReadLatest(o_.root).empty()) Fail(o_.root, ": nothing is served (no LATEST); publish a trained run first (`shardrec publish`)");
    MakeDirs(o_.train.run_dir + "/published");
    if (empty) WriteFileAtomically(marker, "shardrec stream\n");
    for (const std::string& dir : {o_.train.run_dir, o_.train.run_dir + "/published"}) {
      if (!PathExists(dir + "/config.yaml") && !o_.config_text.empty()) WriteFileAtomically(dir + "/config.yaml", o_.config_text);
    }
  });
  Start();
  while (true) {
    bool stop = false, publish = false;
    const std::vector<std::string> fresh = NextRound(&stop, &publish);
    if (stop) break;
    if (publish) Publish();
    for (const std::string& seg : fresh) {
      const Clock::time_point t = Clock::now();
      Consume(seg, /*learn=*/true);
      r_.learn_seconds += Since(t);
      last_segment_ = Clock::now();
    }
    if (fresh.empty() && !publish) std::this_thread::sleep_for(std::chrono::duration<double>(o_.poll_seconds));
  }
  if (unpublished_ > 0) Publish();
  r_.steps = learner_->steps();
  r_.seconds = Since(started_);
  return r_;
}

}  // namespace

std::string StreamConfigFile(const std::string& run_dir, const std::string& root) {
  if (PathExists(RunDir(run_dir).config())) return RunDir(run_dir).config();
  return Dirname(ReadExportManifest(ResolveExport(root)).source) + "/config.yaml";  // RUN/model or RUN/published/V
}

std::string StreamJobSummary(const StreamJobReport& r) {
  const StreamState& s = r.state;
  std::string out = "stream: " + std::to_string(s.segments) + " segments, " + std::to_string(s.events) + " events (" +
                    std::to_string(s.new_items) + " new items, " + std::to_string(s.unknown_items) + " of items without a row, " +
                    std::to_string(s.new_users) + " new users), " +
                    std::to_string(r.steps) + " steps, " + std::to_string(r.versions.size()) + " versions published";
  return r.versions.empty() ? out : out + ", the last " + r.versions.back();
}

StreamJobReport RunStreamJob(const StreamJobOptions& options, Communicator& comm, TrainingSink* sink) {
  return StreamJob(options, comm, sink).Run();
}

}  // namespace shardrec
