#include "distributed/mpi.h"

#include <ATen/ops/empty.h>
#include <glog/logging.h>
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace shardrec {
namespace {

// What this rank is doing, for the termination handler (async-signal-safe: written before each
// collective in normal context, only read by the handler).
char g_activity[512] =
    "shardrec: error: terminated by the launcher (another rank failed; the launcher's message names it)\n";
std::atomic<size_t> g_activity_len{std::strlen(g_activity)};

void OnTerminate(int) {
  ssize_t ignored = ::write(STDERR_FILENO, g_activity, g_activity_len.load());
  (void)ignored;
  ::_exit(1);
}

void FinalizeAtExit() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
}

void EnsureMpi() {
  int init = 0;
  MPI_Initialized(&init);
  if (init) return;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw CommError("MPI_Init_thread failed: is this process started by mpirun/srun?");
  }
  // Errors come back as codes (we report them) instead of MPI's default abort without context.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::atexit(FinalizeAtExit);
  struct sigaction sa {};
  sa.sa_handler = OnTerminate;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
}

MPI_Datatype MpiType(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return MPI_FLOAT;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    default: LOG(FATAL) << "no MPI type for " << c10::toString(s);
  }
}

MPI_Op MpiOp(ReduceOp op) { return op == ReduceOp::kMax ? MPI_MAX : MPI_SUM; }

int CheckedCount(int64_t n, const std::string& what) {
  if (n > INT32_MAX) throw CommError(what + ": message of " + std::to_string(n) + " elements exceeds MPI's int count");
  return static_cast<int>(n);
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(const CommOptions& options) : options_(options) {
    EnsureMpi();
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_);
  }
  ~MpiCommunicator() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "mpi"; }
  std::string device() const override { return "cpu"; }

  void AllReduce(at::Tensor& t, ReduceOp op) override {
    CheckTensor(t, "AllReduce", false);
    if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type())) {
      throw CommError("AllReduce avg needs a floating tensor");
    }
    const std::string what = Begin("AllReduce");
    // MPI has no bfloat16: reduce in float32 (as the in-process backend does).
    at::Tensor work = t.scalar_type() == at::kBFloat16 ? t.to(at::kFloat) : t;
    MPI_Request req;
    Check(MPI_Iallreduce(MPI_IN_PLACE, work.data_ptr(), CheckedCount(work.numel(), what),
                         MpiType(work.scalar_type()), MpiOp(op), comm_, &req), what);
    Wait(&req, what);
    if (op == ReduceOp::kAvg) work.div_(world_);
    if (!work.is_same(t)) t.copy_(work);
  }

  void Broadcast(at::Tensor& t, int root) override {
    CheckTensor(t, "Broadcast", false);
    const std::string what = Begin("Broadcast");
    MPI_Request req;
    Check(MPI_Ibcast(t.data_ptr(), CheckedCount(t.nbytes(), what), MPI_BYTE, root, comm_, &req), what);
    Wait(&req, what);
  }

  at::Tensor AllGather(const at::Tensor& t) override {
    CheckTensor(t, "AllGather", false);
    const std::string what = Begin("AllGather");
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (shape.empty()) shape.push_back(1);
    shape[0] *= world_;
    at::Tensor out = at::empty(shape, t.options());
    MPI_Request req;
    Check(MPI_Iallgather(t.data_ptr(), CheckedCount(t.nbytes(), what), MPI_BYTE, out.data_ptr(),
                         CheckedCount(t.nbytes(), what), MPI_BYTE, comm_, &req), what);
    Wait(&req, what);
    return out;
  }

  AllToAllResult AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                          std::optional<std::vector<int64_t>> recv_splits) override {
    CheckTensor(input, "AllToAll", false);
    if (static_cast<int>(send_splits.size()) != world_) throw CommError("AllToAll: wrong number of send splits");
    int64_t total = 0;
    for (int64_t s : send_splits) total += s;
    if (input.dim() < 1 || input.size(0) != total) throw CommError("AllToAll: send splits do not sum to the input rows");
    const std::string what = Begin("AllToAll");
    AllToAllResult res;
    if (recv_splits) {
      res.recv_splits = *recv_splits;
    } else {
      res.recv_splits.assign(world_, 0);
      MPI_Request req;
      Check(MPI_Ialltoall(send_splits.data(), 1, MPI_INT64_T, res.recv_splits.data(), 1, MPI_INT64_T,
                          comm_, &req), what + " (split exchange)");
      Wait(&req, what + " (split exchange)");
    }
    const int64_t row_bytes = RowBytes(input);
    int64_t rows = 0;
    for (int64_t r : res.recv_splits) rows += r;
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape[0] = rows;
    res.output = at::empty(shape, input.options());
    std::vector<int> sc(world_), sd(world_), rc(world_), rd(world_);
    int64_t so = 0, ro = 0;
    for (int r = 0; r < world_; ++r) {
      sc[r] = CheckedCount(send_splits[r] * row_bytes, what);
      sd[r] = CheckedCount(so, what);
      so += send_splits[r] * row_bytes;
      rc[r] = CheckedCount(res.recv_splits[r] * row_bytes, what);
      rd[r] = CheckedCount(ro, what);
      ro += res.recv_splits[r] * row_bytes;
    }
    MPI_Request req;
    Check(MPI_Ialltoallv(input.data_ptr(), sc.data(), sd.data(), MPI_BYTE, res.output.data_ptr(),
                         rc.data(), rd.data(), MPI_BYTE, comm_, &req), what);
    Wait(&req, what);
    return res;
  }

  at::Tensor ReduceScatter(const at::Tensor& input, ReduceOp op) override {
    CheckTensor(input, "ReduceScatter", false);
    if (input.dim() < 1 || input.size(0) % world_ != 0) {
      throw CommError("ReduceScatter: input rows must be a multiple of the world size");
    }
    const std::string what = Begin("ReduceScatter");
    at::Tensor work = input.scalar_type() == at::kBFloat16 ? input.to(at::kFloat) : input;
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape[0] /= world_;
    at::Tensor out = at::empty(shape, work.options());
    MPI_Request req;
    Check(MPI_Ireduce_scatter_block(work.data_ptr(), out.data_ptr(), CheckedCount(out.numel(), what),
                                    MpiType(work.scalar_type()), MpiOp(op), comm_, &req), what);
    Wait(&req, what);
    if (op == ReduceOp::kAvg) out.div_(world_);
    return out.scalar_type() == input.scalar_type() ? out : out.to(input.scalar_type());
  }

  void Barrier() override {
    const std::string what = Begin("Barrier");
    MPI_Request req;
    Check(MPI_Ibarrier(comm_, &req), what);
    Wait(&req, what);
  }

 private:
  static int64_t RowBytes(const at::Tensor& t) {
    int64_t n = t.element_size();
    for (int64_t d = 1; d < t.dim(); ++d) n *= t.size(d);
    return n;
  }

  std::string Begin(const char* op) {
    std::string what = Describe(op, ++seq_);
    // Prepared here, printed by the SIGTERM handler if mpirun ends the job while we wait.
    size_t n = static_cast<size_t>(std::snprintf(
        g_activity, sizeof(g_activity),
        "shardrec: error: rank %d: terminated by the launcher during %s: another rank failed "
        "(the launcher's message names it)\n",
        rank_, what.c_str()));
    g_activity_len.store(std::min(n, sizeof(g_activity) - 1));
    return what;
  }

  void Check(int rc, const std::string& what) {
    if (rc == MPI_SUCCESS) return;
    char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, buf, &len);
    Die(what + " failed: " + std::string(buf, len));
  }

  // Polls the request until done or the deadline: spin briefly (small messages), then back off.
  void Wait(MPI_Request* req, const std::string& what) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + options_.timeout;
    int done = 0;
    for (int i = 0;; ++i) {
      Check(MPI_Test(req, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      if (i < 2000) continue;
      const auto now = std::chrono::steady_clock::now();
      if (now > deadline) {
        Die(what + " did not complete within " + std::to_string(options_.timeout.count() / 1000.0) +
            " s: a peer died, hangs, or is in a different collective (uneven work?)");
      }
      std::this_thread::sleep_for(now - start < std::chrono::milliseconds(10)
                                      ? std::chrono::microseconds(20)
                                      : std::chrono::microseconds(500));
    }
  }

  [[noreturn]] void Die(const std::string& message) {
    std::fprintf(stderr, "shardrec: error: rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 2);
    std::_Exit(2);
  }

  CommOptions options_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1;
  int64_t seq_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> CreateMpiCommunicator(const CommOptions& options) {
  return std::make_unique<MpiCommunicator>(options);
}

bool MpiActive() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

void AbortJob(int exit_code) {
  if (MpiActive()) {
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
  std::exit(exit_code);
}

}  // namespace shardrec
