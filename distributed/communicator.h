// Collective communication between the ranks of one job (docs/architecture.md, "Collectives"). The interface is the
// contract shared by three backends: in-process threads (tests), MPI (CPU tensors) and NCCL (CUDA
// tensors). Collective algorithms built on top (sharded lookups, gradient buckets) live elsewhere.
//
// Every method is COLLECTIVE: every rank of the communicator must call it, in the same order, with
// compatible arguments (same dtype; same shape where stated). Tensors must be contiguous, of dtype
// float32, bfloat16, int32 or int64, on the backend's device (CPU for in-process and MPI, the
// rank's CUDA device for NCCL). Every call has a deadline (Options::timeout): a peer that died,
// hangs or calls a different collective makes the call fail with one message naming the
// operation, its sequence number, the step (SetStep) and, where the backend knows it, the peer.
// In-process: a CommError is thrown on every waiting rank. MPI and NCCL: the message is printed
// and the whole job is aborted (a half-finished collective cannot be cancelled), so no rank hangs.
//
// A Communicator is used by one thread at a time.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace shardrec {

enum class ReduceOp { kSum, kAvg, kMax };
const char* ReduceOpName(ReduceOp op);

// A collective failed: timeout, peer failure, mismatched calls or arguments across ranks.
class CommError : public UserError {
 public:
  using UserError::UserError;
};

struct CommOptions {
  std::chrono::milliseconds timeout{600'000};  // --comm-timeout
};

struct AllToAllResult {
  at::Tensor output;                 // rows received, grouped by source rank (rank 0 first)
  std::vector<int64_t> recv_splits;  // rows received from each rank
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;  // "inprocess", "mpi", "nccl"
  virtual std::string device() const = 0;   // "cpu", "cuda:0", ...

  // In place. kAvg divides the sum by world_size (floating dtypes only).
  virtual void AllReduce(at::Tensor& tensor, ReduceOp op) = 0;
  // In place; `tensor` has the same shape on every rank; root's values win.
  virtual void Broadcast(at::Tensor& tensor, int root) = 0;
  // Same shape [n, ...] on every rank -> [world_size * n, ...], rank 0's rows first.
  virtual at::Tensor AllGather(const at::Tensor& tensor) = 0;
  // Rows of `input` [sum(send_splits), ...] go to rank r in order: the first send_splits[0] to
  // rank 0, and so on. `recv_splits` (rows coming from each rank) may be given when known;
  // otherwise the counts are exchanged first. Trailing dims must agree across ranks.
  virtual AllToAllResult AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_splits,
                                  std::optional<std::vector<int64_t>> recv_splits = std::nullopt) = 0;
  // input [world_size * n, ...], the same shape on every rank -> this rank's block
  // [n, ...] of the elementwise reduction.
  virtual at::Tensor ReduceScatter(const at::Tensor& input, ReduceOp op) = 0;
  virtual void Barrier() = 0;

  // Context for error messages: the training step in progress (-1 = none). Local, not collective.
  void SetStep(int64_t step) { step_ = step; }
  int64_t step() const { return step_; }

 protected:
  // "AllReduce #12 (step 7)" for messages.
  std::string Describe(const char* op, int64_t seq) const;
  // Validates a tensor argument; throws CommError naming the operation.
  void CheckTensor(const at::Tensor& t, const char* op, bool cuda) const;
  int64_t step_ = -1;
};

// Rows per rank for splitting n rows as evenly as possible: rank r holds [n r / W, n (r + 1) / W).
std::vector<int64_t> EvenSplits(int64_t n, int world_size);
// Rank `rank`'s rows [begin, end) of that split (the one formula of every per-rank range: users,
// items, export shards).
std::pair<int64_t, int64_t> RankRange(int64_t n, int world_size, int rank);
std::pair<int64_t, int64_t> RankRange(int64_t n, const Communicator& comm);

// Collective: true when every rank has data; false when none has. When only some ranks have data
// (uneven work, e.g. one rank out of batches) throws CommError naming the ranks without data.
bool AllRanksHaveData(Communicator& comm, bool local_has_data, const std::string& what);

// Collective: `text` of rank `root` on every rank.
std::string BroadcastString(Communicator& comm, const std::string& text, int root);

// Collective: every rank passes its own error message ("" for none); returns the message of the
// lowest rank that has one ("" when none has), the same on every rank. Work split across ranks
// (e.g. verifying files) ends in one agreed message instead of each rank deciding alone.
std::string FirstError(Communicator& comm, const std::string& local_error);
// Collective: throws AgreedUserError(FirstError(...)) on every rank when any rank has an error.
void ThrowIfAnyRankFailed(Communicator& comm, const std::string& local_error);
// Collective: runs this rank's part `fn` (which must make no collective call); when it threw a
// UserError on any rank, every rank runs `clean_up` (e.g. rank 0 removes an unpublished
// directory) and throws the first rank's error as AgreedUserError. Writes of a multi-rank output go
// through it, so a full disk on one rank ends every rank with one message and no partial output.
void RunAgreed(Communicator& comm, const std::function<void()>& fn, const std::function<void()>& clean_up = {});

}  // namespace shardrec
