#include "train/stream_eval.h"

#include <torch/optim/adamw.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/progress.h"
#include "common/rng.h"
#include "common/strings.h"
#include "eval/evaluate.h"
#include "io/dataset.h"
#include "io/time_cut.h"
#include "model/catalogue.h"
#include "model/history.h"
#include "train/checkpoint.h"
#include "train/model_files.h"
#include "train/run_dir.h"

namespace shardrec {

int64_t StreamModeInterval(const std::string& mode) {
  if (mode == "frozen") return 0;
  if (mode == "nightly") return -1;
  if (mode == "hourly") return 3600;
  if (mode == "5min") return 300;
  if (mode.size() >= 2 && mode.back() == 's' && mode.find_first_not_of("0123456789") == mode.size() - 1 &&
      mode.size() <= 10) {
    const int64_t s = std::stoll(mode.substr(0, mode.size() - 1));
    if (s >= 1) return s;
  }
  Fail("--stream-modes: expected frozen, nightly, hourly, 5min or <N>s (a refresh every N seconds of event time), got '",
       mode, "'");
}

std::string StreamEvalBeforeCutData(const std::string& run_dir) { return run_dir + "/before-cut.h5"; }

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The events at or after the cut, in time order (ties: by user, then in the user's order).
std::vector<StreamEvent> EventsAfter(const Dataset& ds, int64_t cut) {
  std::vector<StreamEvent> events;
  ForEachUserBlock(ds, [&](int64_t u, int64_t v, const std::vector<int32_t>& items, const std::vector<int64_t>& ts) {
    const auto& off = ds.user_offsets();
    for (int64_t w = u; w < v; ++w) {
      for (int64_t e = off[w] - off[u]; e < off[w + 1] - off[u]; ++e) {
        if (ts[e] >= cut) events.push_back({w, items[e], ts[e]});
      }
    }
  });
  std::stable_sort(events.begin(), events.end(), [](const StreamEvent& a, const StreamEvent& b) { return a.ts < b.ts; });
  return events;
}

// What every mode starts from: the catalogue, the plan and the model of the cut.
struct Start {
  std::unique_ptr<Dataset> ds;
  ItemCatalog catalog;
  ShardingPlan plan;
  std::string model_dir;
  bool verified = false;
  std::vector<StreamEvent> after;
};

// A model of the cut with its optimizer, loss and step: a learner, or a copy to serve from.
struct Learner {
  std::unique_ptr<TwoTowerModel> model;
  std::unique_ptr<torch::optim::AdamW> adam;
  std::unique_ptr<RetrievalLoss> loss;
  std::unique_ptr<TrainStep> step;
  int64_t next_step = 1;
};

Learner LoadLearner(const StreamEvalOptions& o, const Start& s, const std::vector<int64_t>& counts, Communicator& comm) {
  Learner l;
  l.model = std::make_unique<TwoTowerModel>(o.train.model, s.catalog, s.plan, &comm, o.train.seed);
  l.adam = std::make_unique<torch::optim::AdamW>(l.model->dense_parameters(),
                                                 torch::optim::AdamWOptions(o.train.step.lr).weight_decay(o.train.weight_decay));
  TrainerState state;
  LoadCheckpoint(s.model_dir, *l.model, l.adam.get(), &state, comm, {.verified = s.verified});
  l.next_step = state.step + 1;
  RetrievalLossOptions lo = TrainLossOptions(o.train, s.catalog.num_items, comm.world_size());
  lo.mask_unseen = l.model->has_content_path();
  lo.max_positions_per_rank = StreamLearner::MaxPositions(o.learner, o.train.model.max_len, o.train.batch_size);
  l.loss = std::make_unique<RetrievalLoss>(lo, counts, c10::Device(comm.device()));
  StepOptions so = o.train.step;
  so.lr = o.stream_lr > 0 ? o.stream_lr : o.train.step.lr;
  so.warmup_steps = 0;
  so.cosine = false;
  so.seed = o.train.seed;
  l.step = std::make_unique<TrainStep>(*l.model, *l.loss, *l.adam, comm, so);
  return l;
}

// The served model becomes the learner's (rows and dense weights).
void CopyModel(TwoTowerModel& from, TwoTowerModel& to) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> a = from.dense_parameters(), b = to.dense_parameters();
  for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  for (const TableSpec& t : from.embeddings().specs()) {
    to.embeddings().LocalWeights(t.name).copy_(from.embeddings().LocalWeights(t.name));
  }
}

struct Tally {
  int64_t n = 0;
  double hr = 0, ndcg = 0;
};

// Ranks each event's item against the catalogue for its user's history so far (the events before
// it), with the served model: full ranking, the history's items excluded (the target never), ties
// by lower id. Events of users without an earlier event are not ranked.
void RankEvents(TwoTowerModel& served, const ItemVectors& vectors, const UserHistories& h, std::span<const StreamEvent> chunk,
                Tally& t) {
  torch::NoGradGuard no_grad;
  const ModelConfig& cfg = served.config();
  HistoryBuilder hb(cfg.max_len, /*timestamps=*/true);  // a time cut needs them
  std::vector<int64_t> targets, ex_rows, ex_cols;
  // Earlier events of the same chunk are part of a later event's history: histories are taken as
  // they stand plus the chunk's events before it.
  std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>> added;
  for (const StreamEvent& e : chunk) {
    auto& extra = added[e.user];
    std::vector<int64_t> items(h.items(e.user).begin(), h.items(e.user).end()), times(h.times(e.user).begin(), h.times(e.user).end());
    for (const auto& [it, ts] : extra) items.push_back(it), times.push_back(ts);
    extra.emplace_back(e.item, e.ts);
    if (items.empty()) continue;
    const int64_t row = hb.rows();
    hb.Add(std::span<const int64_t>(items), std::span<const int64_t>(times), e.ts);
    for (int64_t it : items) {
      if (it != e.item) ex_rows.push_back(row), ex_cols.push_back(it);
    }
    targets.push_back(e.item);
  }
  if (targets.empty()) return;
  const c10::Device dev = vectors.output.device();
  const at::Tensor users = served.EncodeHistory(hb.Build(cfg.history_features(), dev), vectors.input).to(at::kFloat);
  at::Tensor scores = users.matmul(vectors.output.to(at::kFloat).t());
  const at::Tensor rows = at::tensor(ex_rows, at::kLong).to(dev), cols = at::tensor(ex_cols, at::kLong).to(dev);
  scores.index_put_({rows, cols}, -std::numeric_limits<float>::infinity());
  const at::Tensor tgt = at::tensor(targets, at::kLong).to(dev);
  const at::Tensor own = scores.gather(1, tgt.unsqueeze(1));
  const at::Tensor ids = at::arange(scores.size(1), tgt.options()).unsqueeze(0);
  // A target scored NaN is a miss (its rank the catalogue's size).
  const at::Tensor rank = at::where(own.squeeze(1).isnan(), at::full_like(tgt, scores.size(1)),
                                    scores.gt(own).sum(1) + (scores.eq(own) & ids.lt(tgt.unsqueeze(1))).sum(1)).cpu();
  for (int64_t i = 0; i < rank.size(0); ++i) {
    const int64_t r = rank.data_ptr<int64_t>()[i];
    ++t.n;
    if (r < 10) t.hr += 1, t.ndcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  }
}

StreamEvalMode ReplayMode(const StreamEvalOptions& o, const Start& s, const std::string& mode, Communicator& comm) {
  StreamEvalMode m;
  m.mode = mode;
  m.interval = StreamModeInterval(mode);
  const Clock::time_point start = Clock::now();
  UserHistories h = UserHistories::FromDataset(*s.ds, s.after.empty() ? 0 : s.after.front().ts);
  std::vector<int64_t> counts(static_cast<size_t>(s.catalog.num_items), 0);
  for (int64_t u = 0; u < h.users(); ++u) {
    for (int64_t it : h.items(u)) ++counts[it];
  }
  Learner l = LoadLearner(o, s, counts, comm);
  StreamLearnerOptions lo = o.learner;
  lo.seed = o.train.seed;
  lo.timestamps = true;
  lo.lr = o.stream_lr > 0 ? o.stream_lr : o.train.step.lr;
  if (o.scale_lr) lo.full_rows = o.train.batch_size;
  StreamLearner learner(*l.model, *l.loss, *l.step, h, counts, comm, lo, l.next_step);
  // The served model: the learner itself when nothing is learnt (frozen), else a copy refreshed.
  std::unique_ptr<TwoTowerModel> copy;
  if (m.interval != 0) {
    copy = std::make_unique<TwoTowerModel>(o.train.model, s.catalog, s.plan, &comm, o.train.seed);
    CopyModel(*l.model, *copy);
  }
  TwoTowerModel& served = copy ? *copy : *l.model;
  served.train(false);
  l.model->train(m.interval != 0);
  ItemVectors vectors = EncodeCatalogue(served, s.catalog.num_items);
  const int64_t period = m.interval < 0 ? 86400 : m.interval;
  int64_t bucket = s.after.empty() || period == 0 ? 0 : s.after.front().ts / period;
  Tally t;
  const int64_t n = static_cast<int64_t>(s.after.size());
  const auto meter = o.progress ? ProgressCallback("replay " + mode, "events", "events") : nullptr;
  for (int64_t i = 0; i < n;) {
    if (period > 0 && s.after[i].ts / period != bucket) {  // a refresh
      bucket = s.after[i].ts / period;
      const Clock::time_point learn = Clock::now();
      if (m.interval < 0) {
        for (int64_t e = 0; e < o.nightly_epochs; ++e) learner.Epoch(o.train.batch_size, HashKeys({o.train.seed, static_cast<uint64_t>(bucket), static_cast<uint64_t>(e)}));
      } else {
        learner.Flush();
      }
      m.learn_seconds += Since(learn);
      CopyModel(*l.model, served);
      vectors = EncodeCatalogue(served, s.catalog.num_items);
      ++m.refreshes;
    }
    int64_t j = i + 1;
    while (j < n && j - i < o.rank_batch && (period == 0 || s.after[j].ts / period == bucket)) ++j;
    const std::span<const StreamEvent> chunk(s.after.data() + i, static_cast<size_t>(j - i));
    RankEvents(served, vectors, h, chunk, t);
    const Clock::time_point learn = Clock::now();
    if (m.interval > 0) {
      learner.Add(chunk);
    } else {
      learner.Observe(chunk);
    }
    m.learn_seconds += Since(learn);
    i = j;
    if (meter) meter(i, n, i);
  }
  const Clock::time_point learn = Clock::now();
  if (m.interval > 0) learner.Flush();  // the events after the last refresh (metrics do not change)
  m.learn_seconds += Since(learn);
  m.ranked = t.n;
  m.hr10 = t.n > 0 ? t.hr / static_cast<double>(t.n) : 0;
  m.ndcg10 = t.n > 0 ? t.ndcg / static_cast<double>(t.n) : 0;
  m.steps = learner.steps();
  m.learnt = learner.events_learnt();
  m.seconds = Since(start);
  return m;
}

// RUN/before-cut.h5 and the run on it: reused when RUN already holds a run trained on that file.
void PrepareRunBeforeCut(const StreamEvalOptions& o, const Dataset& src, StreamEvalReport& r, Communicator& comm,
                         TrainingSink* sink) {
  const std::string before = StreamEvalBeforeCutData(o.train.run_dir);
  r.before_data = before;
  RunAgreed(comm, [&] {
    if (comm.rank() != 0) return;
    MakeDirs(o.train.run_dir);
    bool same = false;
    if (PathExists(before)) {
      auto ds = Dataset::Open(before);
      same = ds->NumericAttributes("/time_cut").count("time") && ds->NumericAttributes("/time_cut").at("time") == static_cast<double>(r.cut) &&
             ds->StringAttribute("/time_cut", "source_fingerprint") == src.DataFingerprint();
    }
    if (!same) {
      if (PathExists(RunDir(o.train.run_dir).checkpoints()) || PathExists(RunDir(o.train.run_dir).model())) {
        Fail(o.train.run_dir, " holds a run that was not trained on the events before the cut ", r.cut, " of ", o.train.data,
             "; give another --run-dir");
      }
      WriteEventsBefore(src, r.cut, before);
    }
  });
  if (ListCheckpoints(o.train.run_dir).empty()) {
    TrainOptions t = o.train;
    t.data = before;
    // A run that started and left no checkpoint (interrupted) is trained again from the start.
    t.overwrite = PathExists(RunDir(o.train.run_dir).config());
    const TrainResult tr = Train(t, comm, sink);
    r.trained = true;
    r.batch_positions_per_second = tr.positions_per_second;
  }
}

}  // namespace

StreamEvalReport RunStreamEval(const StreamEvalOptions& o, Communicator& comm, TrainingSink* sink) {
  if (comm.world_size() != 1) Fail("eval --stream runs in one process (", comm.world_size(), " ranks given)");
  // Every option before the run before the cut trains (which may take hours).
  CheckTrainOptions(o.train);
  StreamLearner::CheckOptions(o.learner);
  RequireFlag(std::isfinite(o.stream_lr) && o.stream_lr >= 0, "stream-lr", "a finite rate >= 0 (0: --lr)", o.stream_lr);
  std::vector<std::string> modes;
  for (auto m : SplitText(o.modes, ",")) {
    StreamModeInterval(std::string(m));  // a UserError for a bad one, before anything trains
    modes.emplace_back(m);
  }
  RequireFlag(o.nightly_epochs >= 1, "nightly-epochs", "at least 1", o.nightly_epochs);
  RequireFlag(o.rank_batch >= 1, "eval-batch-size", "at least 1", o.rank_batch);
  StreamEvalReport r;
  Start s;
  s.ds = Dataset::Open(o.train.data);
  const TimeCut cut = ChooseTimeCut(*s.ds, o.cut);
  r.cut = cut.time;
  r.cut_reason = cut.reason;
  PrepareRunBeforeCut(o, *s.ds, r, comm, sink);
  const PreviousModel prev = ResolvePreviousModel(o.train.run_dir, &comm);
  if (prev.dir.find("/checkpoints/") == std::string::npos) {
    Fail(o.train.run_dir, ": no checkpoint (a stream continues the optimizer's state as well as the model)");
  }
  s.model_dir = prev.dir;
  s.verified = prev.verified;
  s.catalog = LoadItemCatalog(*s.ds);
  s.plan = PlanItemTables(o.train.model, s.catalog, comm, o.train.planner);
  s.after = EventsAfter(*s.ds, r.cut);
  if (s.after.empty()) Fail(o.train.data, ": no event at or after the cut ", r.cut, "; nothing to replay");
  r.events_after = static_cast<int64_t>(s.after.size());
  r.events_before = s.ds->info().num_events - r.events_after;
  for (const auto& m : modes) r.modes.push_back(ReplayMode(o, s, m, comm));
  if (comm.rank() == 0) WriteFileAtomically(o.train.run_dir + "/stream-eval.json", StreamEvalJson(r) + "\n");
  return r;
}

std::string StreamEvalTable(const StreamEvalReport& r) {
  char line[512];
  std::snprintf(line, sizeof line, "cut %lld (%s): %lld events before, %lld replayed\n%-8s %8s %8s %8s %9s %7s %8s\n",
                static_cast<long long>(r.cut), r.cut_reason.c_str(), static_cast<long long>(r.events_before),
                static_cast<long long>(r.events_after), "mode", "ranked", "HR@10", "NDCG@10", "refreshes", "steps", "learn s");
  std::string out = line;
  for (const auto& m : r.modes) {
    std::snprintf(line, sizeof line, "%-8s %8lld %8.4f %8.4f %9lld %7lld %8.1f\n", m.mode.c_str(), static_cast<long long>(m.ranked),
                  m.hr10, m.ndcg10, static_cast<long long>(m.refreshes), static_cast<long long>(m.steps), m.learn_seconds);
    out += line;
  }
  return out;
}

std::string StreamEvalJson(const StreamEvalReport& r) {
  std::string modes;
  for (const auto& m : r.modes) {
    JsonObject j;
    j.Add("mode", m.mode).Add("refresh_seconds", m.interval).Add("ranked", m.ranked).Add("hr@10", m.hr10);
    j.Add("ndcg@10", m.ndcg10).Add("refreshes", m.refreshes).Add("steps", m.steps).Add("learnt_events", m.learnt);
    j.Add("seconds", m.seconds).Add("learn_seconds", m.learn_seconds);
    j.Add("learnt_events_per_second", m.learn_seconds > 0 ? static_cast<double>(m.learnt) / m.learn_seconds : 0.0);
    modes += (modes.empty() ? "" : ",") + j.str();
  }
  JsonObject o;
  o.Add("cut", r.cut).Add("cut_reason", r.cut_reason).Add("before_cut_data", r.before_data);
  o.Add("events_before", r.events_before).Add("events_after", r.events_after).Add("trained_before_cut", r.trained);
  if (r.trained) o.Add("batch_positions_per_second", r.batch_positions_per_second);
  o.AddRaw("modes", "[" + modes + "]");
  return o.str();
}

}  // namespace shardrec
