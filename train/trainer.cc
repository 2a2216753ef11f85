#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/rng.h"
#include "io/dataset.h"
#include "io/h5.h"
#include "io/reader.h"
#include "model/losses.h"
#include "model/precision.h"
#include "retrieval/index.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/tensorboard.h"

namespace shardrec {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

ItemCatalog LoadItemCatalog(const Dataset& ds) {
  ItemCatalog c;
  c.num_items = ds.info().num_items;
  if (ds.info().has_categories && ds.info().num_categories > 0) {
    auto cats = ds.ReadItemCategories(0, c.num_items);
    c.num_categories = ds.info().num_categories;
    c.category_offsets = cats.offsets;
    c.category_values.assign(cats.values.begin(), cats.values.end());
  }
  if (ds.info().content_dim > 0) {
    std::vector<float> v = ds.ReadItemContent(0, c.num_items);
    c.content = torch::from_blob(v.data(), {c.num_items, ds.info().content_dim}, torch::kFloat).clone();
  }
  return c;
}

namespace {

// Calls fn(training events) for users [begin, end), reading the events in blocks of about a million
// rather than one small read per user.
template <typename Fn>
void ForEachTrainSequence(const Dataset& ds, int64_t begin, int64_t end, Fn&& fn) {
  const auto& off = ds.user_offsets();
  int64_t u = begin;
  while (u < end) {
    int64_t v = u + 1;
    while (v < end && off[v + 1] - off[u] < (1 << 20)) ++v;
    const std::vector<int32_t> items = ds.ReadItems(off[u], off[v]);
    for (int64_t w = u; w < v; ++w) {
      const int32_t* first = items.data() + (off[w] - off[u]);
      fn(std::span<const int32_t>(first, static_cast<size_t>(TrainEventsEnd(off[w], off[w + 1]) - off[w])));
    }
    u = v;
  }
}

// Training-split event count of every item, summed over ranks (each rank counts its user range).
std::vector<int64_t> TrainItemCounts(const Dataset& ds, Communicator& comm) {
  const int64_t users = ds.info().num_users, w = comm.world_size(), r = comm.rank();
  at::Tensor counts = torch::zeros({ds.info().num_items}, torch::kLong);
  int64_t* c = counts.data_ptr<int64_t>();
  ForEachTrainSequence(ds, users * r / w, users * (r + 1) / w, [&](std::span<const int32_t> seq) {
    for (int32_t it : seq) ++c[it];
  });
  at::Tensor d = counts.to(comm.device());
  comm.AllReduce(d, ReduceOp::kSum);
  counts = d.cpu();
  return std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
}

struct SequenceTensors {
  at::Tensor items;    // [B x W] (pad -1)
  at::Tensor lengths;  // [B]
  at::Tensor gaps;     // [B x W] or undefined
};

SequenceTensors ToTensors(const Batch& b, bool gaps, int64_t buckets, const torch::Device& dev) {
  SequenceTensors t;
  t.items = torch::from_blob(const_cast<int64_t*>(b.items.data()), {b.rows, b.width}, torch::kLong).clone();
  t.lengths = torch::tensor(std::vector<int64_t>(b.lengths.begin(), b.lengths.end()), torch::kLong);
  if (gaps && !b.timestamps.empty() && buckets > 0) {
    // Filled on the host in one pass (element-wise tensor indexing costs a dispatch per element).
    std::vector<int64_t> g(static_cast<size_t>(b.rows * b.width), 0);
    for (int64_t i = 0; i < b.rows; ++i) {
      const int64_t* ts = b.timestamps.data() + i * b.width;
      for (int64_t k = 1; k < b.lengths[i]; ++k) g[i * b.width + k] = TwoTowerModel::GapBucket(ts[k] - ts[k - 1], buckets);
    }
    t.gaps = torch::tensor(g, torch::kLong).view({b.rows, b.width}).to(dev);
  }
  t.items = t.items.to(dev);
  t.lengths = t.lengths.to(dev);
  return t;
}

// Item-tower vectors of the whole catalogue, in chunks (collective), without gradients.
at::Tensor EncodeCatalogue(TwoTowerModel& model, int64_t num_items, const torch::Device& dev) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  const int64_t chunk = 65536;
  for (int64_t b = 0; b < num_items; b += chunk) {
    parts.push_back(model.EncodeItems(torch::arange(b, std::min(num_items, b + chunk), torch::TensorOptions().dtype(torch::kLong).device(dev))));
    model.DiscardEmbeddingGradients();
  }
  return torch::cat(parts);
}

// Rank `scores` [B x I] for one eval batch and collect per-user results.
void RankBatch(const Batch& b, const at::Tensor& scores, std::vector<UserResult>* out) {
  std::vector<std::vector<int64_t>> excluded(b.rows);
  for (int64_t i = 0; i < b.rows; ++i) {
    excluded[i].assign(b.history_items.begin() + b.history_offsets[i], b.history_items.begin() + b.history_offsets[i + 1]);
  }
  auto r = RankTargets(scores, b.users, b.targets, excluded);
  out->insert(out->end(), r.begin(), r.end());
}

// `ann`: also rank through this index (top-200 by the index, history excluded; a target outside them
// counts as a miss), returned under "ann_" keys.
std::map<std::string, double> EvaluateModel(TwoTowerModel& model, const std::string& data, Split split,
                                            int64_t batch_size, Communicator& comm, bool has_timestamps,
                                            const std::vector<int64_t>& counts, const ShardedIndex* ann = nullptr) {
  const torch::Device dev(comm.device());
  model.train(false);
  torch::NoGradGuard no_grad;
  ReaderOptions ro;
  ro.split = split;
  ro.global_batch_size = batch_size;
  ro.max_len = model.config().max_len;
  ro.shuffle = false;
  ro.rank = comm.rank();
  ro.world_size = comm.world_size();
  ro.full_history = true;
  SequenceReader reader(data, ro);
  const int64_t num_items = reader.info().num_items;
  at::Tensor items = EncodeCatalogue(model, num_items, dev);
  std::vector<UserResult> results, ann_results;
  while (auto b = reader.Next()) {
    if (b->rows == 0) continue;
    SequenceTensors t = ToTensors(*b, has_timestamps, model.config().time_buckets, dev);
    at::Tensor hist = items.index_select(0, t.items.clamp_min(0).view({-1})).view({b->rows, b->width, -1});
    at::Tensor users = model.EncodeUsers(hist, t.lengths, t.gaps);
    at::Tensor last = users.index({torch::arange(b->rows, torch::TensorOptions().device(dev)), t.lengths - 1});
    RankBatch(*b, torch::matmul(last, items.t()), &results);
    if (ann) {
      at::Tensor q = last.to(torch::kCPU).contiguous();
      for (int64_t i = 0; i < b->rows; ++i) {
        std::unordered_set<int64_t> exclude(b->history_items.begin() + b->history_offsets[i],
                                            b->history_items.begin() + b->history_offsets[i + 1]);
        exclude.erase(b->targets[i]);
        auto hits = ann->Search(q[i].data_ptr<float>(), 200, exclude);
        UserResult r;
        r.user = b->users[i];
        r.rank = 1000000000;
        for (size_t k = 0; k < hits.size(); ++k) {
          if (hits[k].id == b->targets[i]) r.rank = static_cast<int64_t>(k);
          if (k < 10) r.top10.push_back(hits[k].id);
        }
        ann_results.push_back(r);
      }
    }
  }
  model.train(true);
  auto m = ReduceMetrics(comm, results, num_items, counts);
  if (ann) {
    for (const auto& [k, v] : ReduceMetrics(comm, ann_results, num_items, counts)) m["ann_" + k] = v;
  }
  return m;
}

// ---- baselines ---------------------------------------------------------------------------------

std::map<std::string, double> EvaluateBaseline(const EvalOptions& o, Communicator& comm) {
  auto ds = Dataset::Open(o.data);
  const int64_t n_items = ds->info().num_items;
  std::vector<int64_t> counts = TrainItemCounts(*ds, comm);
  at::Tensor pop = torch::tensor(counts, torch::kLong).to(torch::kFloat);
  // Item-to-item transitions (previous -> next) of every training sequence. A baseline-only
  // shortcut: every rank reads all training events to build the table.
  std::unordered_map<int64_t, std::unordered_map<int64_t, float>> next;
  if (o.baseline == "cooc") {
    ForEachTrainSequence(*ds, 0, ds->info().num_users, [&](std::span<const int32_t> seq) {
      for (size_t k = 1; k < seq.size(); ++k) next[seq[k - 1]][seq[k]] += 1;
    });
  } else if (o.baseline != "pop") {
    Fail("--baseline: expected pop or cooc, got '", o.baseline, "'");
  }
  ReaderOptions ro;
  ro.split = o.split == "valid" ? Split::kValid : Split::kTest;
  ro.global_batch_size = o.batch_size;
  ro.max_len = 1;
  ro.shuffle = false;
  ro.rank = comm.rank();
  ro.world_size = comm.world_size();
  ro.full_history = true;
  SequenceReader reader(o.data, ro);
  // Popularity breaks ties (and ranks everything the transitions do not reach), scaled below 1.
  const at::Tensor tie = pop / (pop.max().item<float>() + 1.0f);
  std::vector<UserResult> results;
  while (auto b = reader.Next()) {
    if (b->rows == 0) continue;
    at::Tensor scores = tie.unsqueeze(0).repeat({b->rows, 1});
    if (o.baseline == "cooc") {
      for (int64_t i = 0; i < b->rows; ++i) {
        const int64_t last = b->history_items[b->history_offsets[i + 1] - 1];
        auto it = next.find(last);
        if (it == next.end()) continue;
        float* s = scores[i].data_ptr<float>();
        for (const auto& [j, c] : it->second) s[j] += c;
      }
    }
    RankBatch(*b, scores, &results);
  }
  return ReduceMetrics(comm, results, n_items, counts);
}

// ---- dense gradient all-reduce -----------------------------------------------------------------

// Sums dense gradients over ranks in flat buckets (missing gradients count as zeros).
void AllReduceDenseGrads(std::vector<at::Tensor>& params, Communicator& comm) {
  const int64_t bucket_elems = 4 << 20;
  size_t i = 0;
  while (i < params.size()) {
    std::vector<at::Tensor> grads;
    int64_t n = 0;
    size_t j = i;
    for (; j < params.size() && (n == 0 || n + params[j].numel() <= bucket_elems); ++j) {
      at::Tensor& p = params[j];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad().view({-1}));
      n += p.numel();
    }
    at::Tensor flat = torch::cat(grads);
    comm.AllReduce(flat, ReduceOp::kSum);
    int64_t offset = 0;
    for (size_t k = i; k < j; ++k) {
      params[k].grad().view({-1}).copy_(flat.narrow(0, offset, params[k].numel()));
      offset += params[k].numel();
    }
    i = j;
  }
}

}  // namespace

// ---- model files -------------------------------------------------------------------------------

void SaveModel(TwoTowerModel& model, const std::string& dir, Communicator& comm) {
  SaveCheckpoint(dir, model, nullptr, nullptr, comm);
}

void LoadModel(TwoTowerModel& model, const std::string& dir, Communicator& comm) {
  if (!PathExists(dir)) Fail(dir, ": no trained model; run `shardrec train` first");
  LoadCheckpoint(dir, model, nullptr, nullptr, comm);
}

// ---- training ----------------------------------------------------------------------------------

TrainResult Train(const TrainOptions& o, Communicator& comm) {
  const torch::Device dev(comm.device());
  const bool root = comm.rank() == 0;
  auto ds = Dataset::Open(o.data);
  const DatasetInfo info = ds->info();
  if (o.batch_size < comm.world_size()) Fail("--batch-size ", o.batch_size, " is smaller than the world size ", comm.world_size());
  if (!(o.temperature > 0)) Fail("--temperature must be > 0");
  if (o.loss != "full" && o.loss != "sampled" && o.loss != "auto") Fail("--loss: expected full, sampled or auto, got '", o.loss, "'");
  const bool bf16 = IsBfloat16(o.precision);
  const bool full = o.loss == "full" || (o.loss == "auto" && info.num_items <= o.full_softmax_max_items);
  ItemCatalog catalog = LoadItemCatalog(*ds);
  const std::vector<int64_t> counts = TrainItemCounts(*ds, comm);
  TwoTowerModel model(o.model, catalog, &comm, o.seed);
  model.train(true);
  std::vector<at::Tensor> params = model.dense_parameters();
  torch::optim::AdamW adam(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  ReaderOptions ro;
  ro.split = Split::kTrain;
  ro.global_batch_size = o.batch_size;
  ro.max_len = o.model.max_len;
  ro.seed = o.seed;
  ro.rank = comm.rank();
  ro.world_size = comm.world_size();
  SequenceReader reader(o.data, ro);
  const int64_t per_epoch = reader.num_batches();
  const int64_t total = o.max_steps > 0 ? std::min(o.max_steps, per_epoch * o.epochs) : per_epoch * o.epochs;
  // Popularity share of each item among training events (logQ of in-batch negatives).
  at::Tensor pop_share;
  {
    at::Tensor c = torch::tensor(counts, torch::kLong).to(torch::kFloat);
    pop_share = (c / c.sum().clamp_min(1)).to(dev);
  }

  std::unique_ptr<std::ofstream> jsonl;
  std::unique_ptr<TensorBoardWriter> tb;
  if (root) {
    MakeDirs(o.run_dir);
    jsonl = std::make_unique<std::ofstream>(o.run_dir + "/metrics.jsonl", std::ios::app);
    tb = std::make_unique<TensorBoardWriter>(o.run_dir);
  }
  TrainResult res;
  TrainerState state;
  if (o.resume) {
    const std::string from = PickCheckpoint(o.run_dir, o.resume_from, comm);
    LoadCheckpoint(from, model, &adam, &state, comm, /*verified=*/true);
    res.best_valid_ndcg10 = state.best_valid_ndcg10;
    res.best_epoch = state.best_epoch;
    if (root && !o.quiet) {
      std::printf("resumed from %s: step %lld, epoch %lld, batch %lld\n", from.c_str(),
                  static_cast<long long>(state.step), static_cast<long long>(state.epoch),
                  static_cast<long long>(state.next_batch));
    }
  }
  auto checkpoint = [&](int64_t epoch, int64_t next_batch) {
    state.step = res.steps;
    state.epoch = epoch;
    state.next_batch = next_batch;
    state.best_valid_ndcg10 = res.best_valid_ndcg10;
    state.best_epoch = res.best_epoch;
    char name[32];
    std::snprintf(name, sizeof(name), "step-%09lld", static_cast<long long>(res.steps));
    SaveCheckpoint(o.run_dir + "/checkpoints/" + name, model, &adam, &state, comm);
    if (root) PruneCheckpoints(o.run_dir, std::max<int64_t>(1, o.keep_checkpoints));
  };
  const auto start = Clock::now();
  auto last_log = Clock::now();
  int64_t step = state.step, sequences = 0, bad_validations = state.bad_validations;
  const int64_t steps_before = state.step;
  bool stop = false;
  bool stopped_mid_epoch = false;
  int64_t last_checkpoint_step = -1;
  double window_loss = 0;
  int64_t window_steps = 0, window_sequences = 0;
  auto window_start = Clock::now();
  int64_t epoch = state.epoch;
  int64_t next_batch = state.next_batch;
  for (; epoch < o.epochs && !stop; ++epoch) {
    reader.StartEpoch(epoch);
    if (epoch != state.epoch) next_batch = 0;
    reader.Seek(next_batch);
    while (true) {
      if (o.max_steps > 0 && step >= o.max_steps) {
        stop = true;
        stopped_mid_epoch = next_batch < per_epoch;
        break;
      }
      auto batch = reader.Next();
      if (!batch) break;
      next_batch = batch->index + 1;
      ++step;
      comm.SetStep(step);
      const double lr = o.lr * std::min(1.0, static_cast<double>(step) / std::max<int64_t>(1, o.warmup_steps));
      for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      SequenceTensors t = ToTensors(*batch, info.has_timestamps, o.model.time_buckets, dev);
      const int64_t b = batch->rows;
      const int64_t l = std::max<int64_t>(0, batch->width - 1);
      at::Tensor inputs = b && l ? t.items.narrow(1, 0, l) : torch::zeros({b, 0}, torch::TensorOptions().dtype(torch::kLong).device(dev));
      at::Tensor targets = b && l ? t.items.narrow(1, 1, l) : inputs;
      at::Tensor mask = b && l ? torch::arange(l, torch::TensorOptions().dtype(torch::kLong).device(dev)).unsqueeze(0) < (t.lengths - 1).unsqueeze(1)
                               : torch::zeros({b, 0}, torch::TensorOptions().dtype(torch::kBool).device(dev));
      at::Tensor tg = targets.masked_select(mask);
      at::Tensor positions = torch::full({1}, tg.numel(), torch::TensorOptions().dtype(torch::kLong).device(dev));
      comm.AllReduce(positions, ReduceOp::kSum);
      const int64_t global_positions = positions.cpu().item<int64_t>();
      // `vecs`: item-tower vectors of the encoded ids; the history and the candidates index into it.
      at::Tensor loss_sum, vecs, hist_rows, cand_rows, cand_ids;
      if (full) {
        vecs = model.EncodeItems(torch::arange(info.num_items, torch::TensorOptions().dtype(torch::kLong).device(dev)));
        hist_rows = inputs.clamp_min(0);
      } else {
        // Candidates shared by the global batch: every rank's targets + uniform negatives.
        at::Tensor n_local = torch::full({1}, tg.numel(), torch::TensorOptions().dtype(torch::kLong).device(dev));
        at::Tensor n_all = comm.AllGather(n_local).cpu();
        const int64_t max_n = std::max<int64_t>(1, n_all.max().item<int64_t>());
        at::Tensor padded = torch::full({max_n}, -1, torch::TensorOptions().dtype(torch::kLong).device(dev));
        if (tg.numel()) padded.narrow(0, 0, tg.numel()).copy_(tg);
        at::Tensor all_targets = comm.AllGather(padded);
        all_targets = all_targets.masked_select(all_targets >= 0);
        Rng rng(HashKeys({o.seed, 0x4E4547ULL, static_cast<uint64_t>(step)}));
        std::vector<int64_t> neg(static_cast<size_t>(o.negatives));
        for (auto& x : neg) x = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(info.num_items)));
        cand_ids = std::get<0>(at::_unique2(torch::cat({all_targets, torch::tensor(neg, torch::kLong).to(dev)}), true, false, false));
        at::Tensor ids = std::get<0>(at::_unique2(torch::cat({cand_ids, inputs.clamp_min(0).reshape({-1})}), true, false, false));
        vecs = model.EncodeItems(ids);
        hist_rows = torch::searchsorted(ids, inputs.clamp_min(0).reshape({-1})).view_as(inputs);
        cand_rows = torch::searchsorted(ids, cand_ids);
      }
      if (tg.numel() > 0) {
        at::Tensor hist = vecs.index_select(0, hist_rows.reshape({-1})).view({b, l, -1});
        at::Tensor users;
        {
          AutocastScope autocast(bf16, dev.type());
          users = model.EncodeUsers(hist, t.lengths, t.gaps.defined() ? t.gaps.narrow(1, 0, l) : at::Tensor());
        }
        at::Tensor u = users.index({mask}).to(torch::kFloat);
        if (full) {
          loss_sum = FullSoftmaxLoss(u, vecs, tg, o.temperature);
        } else {
          at::Tensor log_q;
          if (o.logq) {
            log_q = (pop_share.index_select(0, cand_ids) * static_cast<double>(global_positions) +
                     static_cast<double>(o.negatives) / info.num_items).log();
          }
          loss_sum = SampledSoftmaxLoss(u, vecs.index_select(0, cand_rows), torch::searchsorted(cand_ids, tg), log_q,
                                        o.temperature);
        }
        (loss_sum / static_cast<double>(std::max<int64_t>(1, global_positions))).backward();
      }
      AllReduceDenseGrads(params, comm);
      if (o.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, o.clip_norm);
      adam.step();
      adam.zero_grad();
      model.BackwardEmbeddings();
      at::Tensor l_all = torch::full({1}, loss_sum.defined() ? loss_sum.item<double>() : 0.0,
                                     torch::TensorOptions().dtype(torch::kFloat).device(dev));
      comm.AllReduce(l_all, ReduceOp::kSum);
      const double loss = l_all.cpu().item<double>() / std::max<int64_t>(1, global_positions);
      if (!std::isfinite(loss)) {
        Fail("training diverged: the loss is ", loss, " at step ", step, " (epoch ", epoch,
             "); lower --lr, raise --warmup-steps or --temperature");
      }
      res.losses.push_back(loss);
      res.steps = step;
      if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0) {
        checkpoint(epoch, next_batch);
        last_checkpoint_step = step;
      }
      sequences += batch->global_rows;
      window_loss += loss;
      ++window_steps;
      window_sequences += batch->global_rows;
      if (root && (Since(last_log) >= o.log_every_seconds || step == total)) {
        const double secs = Since(window_start);
        const double rate = window_sequences / std::max(1e-9, secs);
        const double eta = (total - step) * Since(start) / step;
        if (!o.quiet) {
          std::printf("epoch %lld step %lld/%lld | loss %.4f | %.0f sequences/s | lr %.2e | ETA %.0f s\n",
                      static_cast<long long>(epoch), static_cast<long long>(step), static_cast<long long>(total),
                      window_loss / window_steps, rate, lr, eta);
          std::fflush(stdout);
        }
        JsonObject j;
        j.Add("step", step).Add("epoch", epoch).Add("split", "train").Add("loss", window_loss / window_steps)
            .Add("lr", lr).Add("sequences_per_second", rate).Add("seconds", Since(start));
        *jsonl << j.str() << "\n";
        jsonl->flush();
        tb->AddScalar("train/loss", window_loss / window_steps, step);
        tb->AddScalar("train/sequences_per_second", rate, step);
        tb->Flush();
        last_log = Clock::now();
        window_start = last_log;
        window_loss = 0;
        window_steps = window_sequences = 0;
      }
    }
    res.epochs = epoch + 1;
    if (stopped_mid_epoch) break;  // --max-steps inside an epoch: no validation of a partial epoch
    if (o.eval_every > 0 && (epoch + 1) % o.eval_every == 0) {
      auto m = EvaluateModel(model, o.data, Split::kValid, o.eval_batch_size, comm, info.has_timestamps, counts);
      const double ndcg = m["ndcg@10"];
      if (root) {
        if (!o.quiet) {
          std::printf("epoch %lld valid | HR@10 %.4f NDCG@10 %.4f HR@50 %.4f MRR %.4f\n", static_cast<long long>(epoch),
                      m["hr@10"], ndcg, m["hr@50"], m["mrr"]);
          std::fflush(stdout);
        }
        JsonObject j;
        j.Add("step", step).Add("epoch", epoch).Add("split", "valid");
        for (const auto& [k, v] : m) j.Add(k, v);
        *jsonl << j.str() << "\n";
        jsonl->flush();
        for (const auto& [k, v] : m) tb->AddScalar("valid/" + k, v, step);
        tb->Flush();
      }
      if (ndcg > res.best_valid_ndcg10) {
        res.best_valid_ndcg10 = ndcg;
        res.best_epoch = epoch;
        bad_validations = 0;
        if (o.save_model) SaveModel(model, o.run_dir + "/model", comm);
      } else if (++bad_validations >= o.patience) {
        if (root && !o.quiet) std::printf("early stop: no better NDCG@10 for %lld validations\n", static_cast<long long>(o.patience));
        stop = true;
      }
    }
  }
  if (o.save_model && (o.eval_every == 0 || res.best_epoch < 0)) SaveModel(model, o.run_dir + "/model", comm);
  res.steps = step;
  // Final checkpoint: where a stopped run resumes (the position after the last step taken).
  if (o.checkpoint_every >= 0 && last_checkpoint_step != step && step > steps_before) {
    checkpoint(epoch, stopped_mid_epoch ? next_batch : 0);
  }
  res.seconds = Since(start);
  res.examples_per_second = sequences / std::max(1e-9, res.seconds);
  return res;
}

std::map<std::string, double> Evaluate(const EvalOptions& o, Communicator& comm) {
  if (o.split != "valid" && o.split != "test") Fail("--split: expected valid or test, got '", o.split, "'");
  if (!o.baseline.empty()) return EvaluateBaseline(o, comm);
  auto ds = Dataset::Open(o.data);
  ItemCatalog catalog = LoadItemCatalog(*ds);
  const std::vector<int64_t> counts = TrainItemCounts(*ds, comm);
  TwoTowerModel model(o.model, catalog, &comm, o.seed);
  LoadModel(model, o.run_dir + "/model", comm);
  std::unique_ptr<ShardedIndex> ann;
  if (!o.ann_export.empty()) ann = ShardedIndex::Open(ResolveExport(o.ann_export));
  return EvaluateModel(model, o.data, o.split == "valid" ? Split::kValid : Split::kTest, o.batch_size, comm,
                       ds->info().has_timestamps, counts, ann.get());
}

}  // namespace shardrec
