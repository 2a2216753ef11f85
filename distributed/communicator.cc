#include "distributed/communicator.h"

#include <ATen/ops/zeros.h>

#include <cstring>
#include <sstream>

#include "common/error.h"

namespace shardrec {

const char* ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
  }
  return "?";
}

std::string Communicator::Describe(const char* op, int64_t seq) const {
  std::ostringstream os;
  os << op << " #" << seq;
  if (step_ >= 0) os << " (step " << step_ << ")";
  return os.str();
}

void Communicator::CheckTensor(const at::Tensor& t, const char* op, bool cuda) const {
  if (!t.defined()) throw CommError(std::string(op) + ": undefined tensor on rank " + std::to_string(rank()));
  const auto s = t.scalar_type();
  if (s != at::kFloat && s != at::kBFloat16 && s != at::kInt && s != at::kLong) {
    throw CommError(std::string(op) + ": unsupported dtype " + std::string(c10::toString(s)) +
                    " on rank " + std::to_string(rank()) + " (float32, bfloat16, int32, int64)");
  }
  if (!t.is_contiguous()) throw CommError(std::string(op) + ": tensor must be contiguous");
  if (t.is_cuda() != cuda) {
    throw CommError(std::string(op) + ": tensor on " + t.device().str() + " but the " + backend() +
                    " backend works on " + (cuda ? "CUDA" : "CPU") + " tensors");
  }
}

std::vector<int64_t> EvenSplits(int64_t n, int world_size) {
  std::vector<int64_t> out(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    const auto [begin, end] = RankRange(n, world_size, r);
    out[r] = end - begin;
  }
  return out;
}

std::pair<int64_t, int64_t> RankRange(int64_t n, int world_size, int rank) {
  return {n * rank / world_size, n * (rank + 1) / world_size};
}

std::pair<int64_t, int64_t> RankRange(int64_t n, const Communicator& comm) {
  return RankRange(n, comm.world_size(), comm.rank());
}

bool AllRanksHaveData(Communicator& comm, bool local_has_data, const std::string& what) {
  at::Tensor flag = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(comm.device()));
  flag.fill_(local_has_data ? 1 : 0);
  at::Tensor all = comm.AllGather(flag).cpu();
  std::vector<int> without;
  for (int r = 0; r < comm.world_size(); ++r) {
    if (all[r].item<int>() == 0) without.push_back(r);
  }
  if (without.empty()) return true;
  if (static_cast<int>(without.size()) == comm.world_size()) return false;
  std::ostringstream os;
  os << "uneven work in " << what;
  if (comm.step() >= 0) os << " at step " << comm.step();
  os << ": rank" << (without.size() > 1 ? "s" : "");
  for (size_t i = 0; i < without.size(); ++i) os << (i ? "," : "") << " " << without[i];
  os << " ran out of data while the others still have some; every rank must run the same number "
        "of steps (pad short batches instead of skipping them)";
  throw CommError(os.str());
}

std::string BroadcastString(Communicator& comm, const std::string& text, int root) {
  const auto on_device = at::TensorOptions().device(comm.device());
  at::Tensor len = at::zeros({1}, on_device.dtype(at::kLong));
  if (comm.rank() == root) len.fill_(static_cast<int64_t>(text.size()));
  comm.Broadcast(len, root);
  const int64_t n = len.cpu().item<int64_t>();
  // int32 words: every backend moves them.
  at::Tensor buf = at::zeros({std::max<int64_t>((n + 3) / 4, 1)}, at::TensorOptions().dtype(at::kInt));
  if (comm.rank() == root) std::memcpy(buf.data_ptr(), text.data(), text.size());
  at::Tensor dbuf = buf.to(comm.device());
  comm.Broadcast(dbuf, root);
  buf = dbuf.cpu();
  return std::string(static_cast<const char*>(buf.data_ptr()), static_cast<size_t>(n));
}

std::string FirstError(Communicator& comm, const std::string& local_error) {
  at::Tensor flag = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(comm.device()));
  flag.fill_(local_error.empty() ? 0 : 1);
  at::Tensor all = comm.AllGather(flag).cpu();
  for (int r = 0; r < comm.world_size(); ++r) {
    if (all[r].item<int>() != 0) return BroadcastString(comm, local_error, r);
  }
  return "";
}

void ThrowIfAnyRankFailed(Communicator& comm, const std::string& local_error) {
  const std::string error = FirstError(comm, local_error);
  if (!error.empty()) throw AgreedUserError(error);
}

void RunAgreed(Communicator& comm, const std::function<void()>& fn, const std::function<void()>& clean_up) {
  std::string error;
  try {
    fn();
  } catch (const UserError& e) {
    error = e.what();
  } catch (const std::exception& e) {  // agreed too: the other ranks must not wait for this one
    error = std::string("internal error: ") + e.what();
  }
  const std::string first = FirstError(comm, error);
  if (first.empty()) return;
  if (clean_up) clean_up();
  throw AgreedUserError(first);
}

}  // namespace shardrec
