#include "distributed/nccl.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <glog/logging.h>
#include <nccl.h>

#include <cstdio>
#include <thread>

#include "distributed/mpi.h"

namespace shardrec {
namespace {

ncclDataType_t NcclType(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return ncclFloat32;
    case at::kBFloat16: return ncclBfloat16;
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    default: LOG(FATAL) << "no NCCL type for " << c10::toString(s);
  }
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
  }
  return ncclSum;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const LaunchEnv& env, const CommOptions& options) : options_(options) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      Fail("--device cuda: no CUDA device is visible (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them)");
    }
    device_index_ = env.local_rank % devices;
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index_));
    rank_ = env.rank;
    world_ = env.world_size;
    ncclUniqueId id;
    if (world_ > 1) {
      bootstrap_ = CreateMpiCommunicator(options);
      if (bootstrap_->world_size() != world_ || bootstrap_->rank() != rank_) {
        Fail("NCCL bootstrap: MPI sees rank ", bootstrap_->rank(), " of ", bootstrap_->world_size(),
             " but the launcher said ", rank_, " of ", world_);
      }
      at::Tensor buf = at::empty({static_cast<int64_t>(sizeof(id))}, at::TensorOptions().dtype(at::kByte));
      if (rank_ == 0) {
        NcclCheck(ncclGetUniqueId(&id), "ncclGetUniqueId");
        std::memcpy(buf.data_ptr(), &id, sizeof(id));
      }
      // uint8 is not a collective dtype: move the bytes as int32 words (128 bytes = 32 words).
      at::Tensor words = buf.view(at::kInt);
      bootstrap_->Broadcast(words, 0);
      std::memcpy(&id, buf.data_ptr(), sizeof(id));
    } else {
      NcclCheck(ncclGetUniqueId(&id), "ncclGetUniqueId");
    }
    NcclCheck(ncclCommInitRank(&comm_, world_, id, rank_), "ncclCommInitRank");
    CudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    CudaCheck(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    CudaCheck(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
  }

  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
    if (ready_) cudaEventDestroy(ready_);
    if (done_) cudaEventDestroy(done_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "nccl"; }
  std::string device() const override { return "cuda:" + std::to_string(device_index_); }

  void AllReduce(at::Tensor& t, ReduceOp op) override {
    CheckTensor(t, "AllReduce", true);
    if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type())) throw CommError("AllReduce avg needs a floating tensor");
    const std::string what = Begin("AllReduce", {t});
    NcclCheck(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), NcclType(t.scalar_type()), NcclOp(op),
                            comm_, stream_), what);
    Finish(what, {t});
  }

  void Broadcast(at::Tensor& t, int root) override {
    CheckTensor(t, "Broadcast", true);
    const std::string what = Begin("Broadcast", {t});
    NcclCheck(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), NcclType(t.scalar_type()), root, comm_,
                            stream_), what);
    Finish(what, {t});
  }

  at::Tensor AllGather(const at::Tensor& t) override {
    CheckTensor(t, "AllGather", true);
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (shape.empty()) shape.push_back(1);
    shape[0] *= world_;
    at::Tensor out = at::empty(shape, t.options());
    const std::string what = Begin("AllGather", {t, out});
    NcclCheck(ncclAllGather(t.data_ptr(), out.data_ptr(), t.numel(), NcclType(t.scalar_type()), comm_, stream_),
              what);
    Finish(what, {t, out});
    return out;
  }

  AllToAllResult AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                          std::optional<std::vector<int64_t>> recv_splits) override {
    CheckTensor(input, "AllToAll", true);
    if (static_cast<int>(send_splits.size()) != world_) throw CommError("AllToAll: wrong number of send splits");
    AllToAllResult res;
    if (recv_splits) {
      res.recv_splits = *recv_splits;
    } else {
      at::Tensor counts = at::empty({world_}, at::TensorOptions().dtype(at::kLong));
      std::copy(send_splits.begin(), send_splits.end(), counts.data_ptr<int64_t>());
      at::Tensor dev = counts.to(input.device());
      at::Tensor got = at::empty({world_}, dev.options());
      const std::string what = Begin("AllToAll (split exchange)", {dev, got});
      NcclCheck(ncclGroupStart(), what);
      for (int r = 0; r < world_; ++r) {
        NcclCheck(ncclSend(dev.data_ptr<int64_t>() + r, 1, ncclInt64, r, comm_, stream_), what);
        NcclCheck(ncclRecv(got.data_ptr<int64_t>() + r, 1, ncclInt64, r, comm_, stream_), what);
      }
      NcclCheck(ncclGroupEnd(), what);
      Finish(what, {dev, got});
      at::Tensor host = got.cpu();
      res.recv_splits.assign(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + world_);
    }
    int64_t row_elems = 1;
    for (int64_t d = 1; d < input.dim(); ++d) row_elems *= input.size(d);
    int64_t rows = 0;
    for (int64_t r : res.recv_splits) rows += r;
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape[0] = rows;
    res.output = at::empty(shape, input.options());
    const std::string what = Begin("AllToAll", {input, res.output});
    const size_t esize = input.element_size();
    const char* src = static_cast<const char*>(input.data_ptr());
    char* dst = static_cast<char*>(res.output.data_ptr());
    NcclCheck(ncclGroupStart(), what);
    int64_t so = 0, ro = 0;
    for (int r = 0; r < world_; ++r) {
      const int64_t sn = send_splits[r] * row_elems, rn = res.recv_splits[r] * row_elems;
      if (sn > 0) NcclCheck(ncclSend(src + so * esize, sn * esize, ncclUint8, r, comm_, stream_), what);
      if (rn > 0) NcclCheck(ncclRecv(dst + ro * esize, rn * esize, ncclUint8, r, comm_, stream_), what);
      so += sn;
      ro += rn;
    }
    NcclCheck(ncclGroupEnd(), what);
    Finish(what, {input, res.output});
    return res;
  }

  at::Tensor ReduceScatter(const at::Tensor& input, ReduceOp op) override {
    CheckTensor(input, "ReduceScatter", true);
    if (input.dim() < 1 || input.size(0) % world_ != 0) throw CommError("ReduceScatter: rows must be a multiple of the world size");
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape[0] /= world_;
    at::Tensor out = at::empty(shape, input.options());
    const std::string what = Begin("ReduceScatter", {input, out});
    NcclCheck(ncclReduceScatter(input.data_ptr(), out.data_ptr(), out.numel(), NcclType(input.scalar_type()),
                                NcclOp(op), comm_, stream_), what);
    Finish(what, {input, out});
    return out;
  }

  void Barrier() override {
    at::Tensor one = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(device()));
    AllReduce(one, ReduceOp::kSum);
  }

 private:
  // Orders our stream after the caller's current stream; keeps the tensors' memory alive for it.
  std::string Begin(const char* op, std::initializer_list<at::Tensor> tensors) {
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_index_));
    cudaStream_t caller = c10::cuda::getCurrentCUDAStream().stream();
    CudaCheck(cudaEventRecord(ready_, caller), op);
    CudaCheck(cudaStreamWaitEvent(stream_, ready_, 0), op);
    for (const auto& t : tensors) {
      c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(),
                                                    c10::cuda::getStreamFromExternal(stream_, t.device().index()));
    }
    return Describe(op, ++seq_);
  }

  // Waits for completion against the deadline, polling NCCL's asynchronous errors; then orders the
  // caller's stream after ours.
  void Finish(const std::string& what, std::initializer_list<at::Tensor>) {
    CudaCheck(cudaEventRecord(done_, stream_), what);
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (true) {
      cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) CudaCheck(q, what);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess) Die(what + " failed: " + ncclGetErrorString(async) + " (a peer died or the network failed)");
      if (std::chrono::steady_clock::now() > deadline) {
        Die(what + " did not complete within " + std::to_string(options_.timeout.count() / 1000.0) +
            " s: a peer died, hangs, or is in a different collective (uneven work?)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    cudaStream_t caller = c10::cuda::getCurrentCUDAStream().stream();
    CudaCheck(cudaStreamWaitEvent(caller, done_, 0), what);
  }

  void NcclCheck(ncclResult_t rc, const std::string& what) {
    if (rc != ncclSuccess && rc != ncclInProgress) Die(what + ": " + ncclGetErrorString(rc));
  }
  void CudaCheck(cudaError_t rc, const std::string& what) {
    if (rc != cudaSuccess) Die(what + ": CUDA error: " + cudaGetErrorString(rc));
  }

  [[noreturn]] void Die(const std::string& message) {
    std::fprintf(stderr, "shardrec: error: rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    AbortJob(2);
  }

  CommOptions options_;
  std::unique_ptr<Communicator> bootstrap_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  int rank_ = 0, world_ = 1, device_index_ = 0;
  int64_t seq_ = 0;
};

}  // namespace

bool NcclCompiled() { return true; }

std::unique_ptr<Communicator> CreateNcclCommunicator(const LaunchEnv& env, const CommOptions& options) {
  return std::make_unique<NcclCommunicator>(env, options);
}

int CudaDeviceCount() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // namespace shardrec
