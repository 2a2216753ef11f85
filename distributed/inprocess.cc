#include "distributed/inprocess.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/maximum.h>
#include <glog/logging.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

namespace shardrec {

// One round of a collective: every rank deposits a Contribution, waits for all, reads the
// others' (never writes them), then departs through a barrier before touching its own tensors.
struct Contribution {
  const char* op = "";
  int64_t seq = 0;
  std::vector<at::Tensor> tensors;
  std::vector<int64_t> ints;
};

struct InProcessGroup::State {
  int world = 0;
  CommOptions options;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Contribution> slots;
  std::vector<bool> filled;
  int arrived = 0, departed = 0;
  int64_t generation = 0;
  bool aborted = false;
  std::string abort_reason;

  [[noreturn]] void ThrowAborted(const std::string& what) {
    throw CommError(what + " aborted: " + abort_reason);
  }

  // Deposits c and returns once every rank has deposited (or throws on timeout/abort).
  void Arrive(int rank, Contribution c, const std::string& what) {
    std::unique_lock<std::mutex> lock(mu);
    if (aborted) ThrowAborted(what);
    const int64_t gen = generation;
    slots[rank] = std::move(c);
    filled[rank] = true;
    if (++arrived == world) cv.notify_all();
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    while (!(generation == gen && arrived == world) && !aborted) {
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout && arrived < world && !aborted) {
        std::ostringstream os;
        os << what << " timed out after " << options.timeout.count() / 1000.0 << " s on rank "
           << rank << ": rank";
        std::vector<int> missing;
        for (int r = 0; r < world; ++r) {
          if (!filled[r]) missing.push_back(r);
        }
        os << (missing.size() > 1 ? "s" : "");
        for (size_t i = 0; i < missing.size(); ++i) os << (i ? "," : "") << " " << missing[i];
        os << " did not join (died, hung, or ran out of work)";
        aborted = true;
        abort_reason = "rank " + std::to_string(rank) + " timed out in " + what;
        cv.notify_all();
        throw CommError(os.str());
      }
    }
    if (aborted) ThrowAborted(what);
  }

  void Depart(int rank, const std::string& what) {
    std::unique_lock<std::mutex> lock(mu);
    if (aborted) ThrowAborted(what);
    const int64_t gen = generation;
    if (++departed == world) {
      for (auto& s : slots) s = Contribution();
      std::fill(filled.begin(), filled.end(), false);
      arrived = departed = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    while (generation == gen && !aborted) {
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout && generation == gen) {
        aborted = true;
        abort_reason = "rank " + std::to_string(rank) + " timed out leaving " + what;
        cv.notify_all();
        throw CommError(what + " timed out after " + std::to_string(options.timeout.count() / 1000.0) +
                        " s while ranks were leaving it");
      }
    }
    if (aborted && generation == gen) ThrowAborted(what);
  }
};

namespace {

class InProcessCommunicator : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<InProcessGroup::State> s, int rank)
      : s_(std::move(s)), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return s_->world; }
  std::string backend() const override { return "inprocess"; }
  std::string device() const override { return "cpu"; }

  void AllReduce(at::Tensor& t, ReduceOp op) override {
    CheckTensor(t, "AllReduce", false);
    if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type())) {
      throw CommError("AllReduce avg needs a floating tensor, got " + std::string(c10::toString(t.scalar_type())));
    }
    const std::string what = Begin("AllReduce");
    s_->Arrive(rank_, Make("AllReduce", {t}, {static_cast<int64_t>(op)}), what);
    CheckSame(what, /*shape=*/true);
    at::Tensor out = Reduce(what, 0, -1, op);
    s_->Depart(rank_, what);
    t.copy_(out);
  }

  void Broadcast(at::Tensor& t, int root) override {
    CheckTensor(t, "Broadcast", false);
    if (root < 0 || root >= world_size()) throw CommError("Broadcast: root " + std::to_string(root) + " out of range");
    const std::string what = Begin("Broadcast");
    s_->Arrive(rank_, Make("Broadcast", {t}, {root}), what);
    CheckSame(what, true);
    at::Tensor out = s_->slots[root].tensors[0].clone();
    s_->Depart(rank_, what);
    t.copy_(out);
  }

  at::Tensor AllGather(const at::Tensor& t) override {
    CheckTensor(t, "AllGather", false);
    const std::string what = Begin("AllGather");
    s_->Arrive(rank_, Make("AllGather", {t}, {}), what);
    CheckSame(what, true);
    std::vector<at::Tensor> parts;
    for (const auto& s : s_->slots) parts.push_back(s.tensors[0]);
    at::Tensor out = at::cat(parts, 0);
    s_->Depart(rank_, what);
    return out;
  }

  AllToAllResult AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                          std::optional<std::vector<int64_t>> recv_splits) override {
    CheckTensor(input, "AllToAll", false);
    const int w = world_size();
    if (static_cast<int>(send_splits.size()) != w) {
      throw CommError("AllToAll: " + std::to_string(send_splits.size()) + " send splits for world size " + std::to_string(w));
    }
    int64_t total = 0;
    for (int64_t s : send_splits) {
      if (s < 0) throw CommError("AllToAll: negative send split");
      total += s;
    }
    if (input.dim() < 1 || input.size(0) != total) {
      throw CommError("AllToAll: send splits sum to " + std::to_string(total) + " rows but the input has " +
                      std::to_string(input.dim() ? input.size(0) : 0));
    }
    const std::string what = Begin("AllToAll");
    s_->Arrive(rank_, Make("AllToAll", {input}, send_splits), what);
    CheckSame(what, false);
    AllToAllResult res;
    std::vector<at::Tensor> parts;
    for (int src = 0; src < w; ++src) {
      const auto& c = s_->slots[src];
      int64_t offset = 0;
      for (int d = 0; d < rank_; ++d) offset += c.ints[d];
      parts.push_back(c.tensors[0].narrow(0, offset, c.ints[rank_]));
      res.recv_splits.push_back(c.ints[rank_]);
      if (c.tensors[0].sizes().slice(1) != input.sizes().slice(1)) {
        throw CommError(what + ": rank " + std::to_string(src) + " sends rows of shape " +
                        c10::str(c.tensors[0].sizes().slice(1)) + ", rank " + std::to_string(rank_) +
                        " expects " + c10::str(input.sizes().slice(1)));
      }
    }
    res.output = at::cat(parts, 0);
    s_->Depart(rank_, what);
    if (recv_splits && *recv_splits != res.recv_splits) {
      throw CommError(what + ": rank " + std::to_string(rank_) + " expected receive splits " +
                      c10::str(*recv_splits) + " but peers sent " + c10::str(res.recv_splits));
    }
    return res;
  }

  at::Tensor ReduceScatter(const at::Tensor& input, ReduceOp op) override {
    CheckTensor(input, "ReduceScatter", false);
    const int w = world_size();
    if (input.dim() < 1 || input.size(0) % w != 0) {
      throw CommError("ReduceScatter: input rows (" + std::to_string(input.dim() ? input.size(0) : 0) +
                      ") must be a multiple of the world size " + std::to_string(w));
    }
    const std::string what = Begin("ReduceScatter");
    s_->Arrive(rank_, Make("ReduceScatter", {input}, {static_cast<int64_t>(op)}), what);
    CheckSame(what, true);
    const int64_t n = input.size(0) / w;
    at::Tensor out = Reduce(what, rank_ * n, n, op);
    s_->Depart(rank_, what);
    return out;
  }

  void Barrier() override {
    const std::string what = Begin("Barrier");
    s_->Arrive(rank_, Make("Barrier", {}, {}), what);
    CheckSame(what, false);
    s_->Depart(rank_, what);
  }

 private:
  std::string Begin(const char* op) { return Describe(op, ++seq_); }

  Contribution Make(const char* op, std::vector<at::Tensor> t, std::vector<int64_t> ints) {
    Contribution c;
    c.op = op;
    c.seq = seq_;
    c.tensors = std::move(t);
    c.ints = std::move(ints);
    return c;
  }

  // Every rank called the same operation (same sequence number, same reduce op/root), with the
  // same dtype and, if `shape`, the same shape.
  void CheckSame(const std::string& what, bool shape) {
    const Contribution& mine = s_->slots[rank_];
    for (int r = 0; r < world_size(); ++r) {
      const Contribution& c = s_->slots[r];
      if (std::string(c.op) != mine.op || c.seq != mine.seq) {
        throw CommError("collective mismatch: rank " + std::to_string(rank_) + " is in " + what +
                        " but rank " + std::to_string(r) + " called " + c.op + " #" + std::to_string(c.seq));
      }
      const bool scalar_args = std::string(mine.op) != "AllToAll";
      if (scalar_args && c.ints != mine.ints) {
        throw CommError(what + ": ranks disagree on the reduction/root (rank " + std::to_string(r) + " vs " +
                        std::to_string(rank_) + ")");
      }
      if (!mine.tensors.empty()) {
        if (c.tensors[0].scalar_type() != mine.tensors[0].scalar_type()) {
          throw CommError(what + ": rank " + std::to_string(r) + " passes " +
                          std::string(c10::toString(c.tensors[0].scalar_type())) + ", rank " +
                          std::to_string(rank_) + " passes " +
                          std::string(c10::toString(mine.tensors[0].scalar_type())));
        }
        if (shape && c.tensors[0].sizes() != mine.tensors[0].sizes()) {
          throw CommError(what + ": rank " + std::to_string(r) + " passes shape " +
                          c10::str(c.tensors[0].sizes()) + ", rank " + std::to_string(rank_) +
                          " passes shape " + c10::str(mine.tensors[0].sizes()));
        }
      }
    }
  }

  // Elementwise reduction of rows [begin, begin + n) (n < 0: all) over ranks, in rank order so every
  // rank gets bitwise the same result; bfloat16 accumulates in float32.
  at::Tensor Reduce(const std::string&, int64_t begin, int64_t n, ReduceOp op) {
    auto part = [&](int r) {
      const at::Tensor& t = s_->slots[r].tensors[0];
      return n < 0 ? t : t.narrow(0, begin, n);
    };
    const auto dtype = part(0).scalar_type();
    const bool upcast = dtype == at::kBFloat16;
    at::Tensor acc = upcast ? part(0).to(at::kFloat) : part(0).clone();
    for (int r = 1; r < world_size(); ++r) {
      at::Tensor x = upcast ? part(r).to(at::kFloat) : part(r);
      if (op == ReduceOp::kMax) {
        acc = at::maximum(acc, x);
      } else {
        acc.add_(x);
      }
    }
    if (op == ReduceOp::kAvg) acc.div_(world_size());
    return upcast ? acc.to(dtype) : acc;
  }

  std::shared_ptr<InProcessGroup::State> s_;
  int rank_;
  int64_t seq_ = 0;
};

}  // namespace

InProcessGroup::InProcessGroup(int world_size, CommOptions options)
    : state_(std::make_shared<State>()) {
  CHECK_GE(world_size, 1);
  state_->world = world_size;
  state_->options = options;
  state_->slots.resize(world_size);
  state_->filled.assign(world_size, false);
}

InProcessGroup::~InProcessGroup() = default;

int InProcessGroup::world_size() const { return state_->world; }

std::unique_ptr<Communicator> InProcessGroup::Rank(int rank) {
  CHECK(rank >= 0 && rank < state_->world);
  return std::make_unique<InProcessCommunicator>(state_, rank);
}

void InProcessGroup::Abort(int rank, const std::string& reason) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!state_->aborted) {
    state_->aborted = true;
    state_->abort_reason = "rank " + std::to_string(rank) + " failed: " + reason;
  }
  state_->cv.notify_all();
}

void RunRanks(int world_size, const std::function<void(Communicator&)>& fn, CommOptions options) {
  InProcessGroup group(world_size, options);
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      auto comm = group.Rank(r);
      try {
        fn(*comm);
      } catch (const std::exception& e) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
        }
        group.Abort(r, e.what());
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
        }
        group.Abort(r, "unknown exception");
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace shardrec
