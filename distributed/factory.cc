#include "distributed/factory.h"

#include "common/error.h"
#include "common/strings.h"
#include "distributed/inprocess.h"
#include "distributed/mpi.h"
#include "distributed/nccl.h"

namespace shardrec {

bool HaveNccl() { return NcclCompiled(); }

std::unique_ptr<Communicator> CreateCommunicator(const std::string& backend, const std::string& device,
                                                 const LaunchEnv& env, const CommOptions& options) {
  if (device != "cpu" && device != "cuda") Fail("--device: expected cpu or cuda, got ", Quote(device));
  std::string b = backend;
  if (b == "auto") b = env.world_size == 1 ? (device == "cuda" && HaveNccl() ? "nccl" : "inprocess")
                                           : (device == "cuda" ? "nccl" : "mpi");
  if (b == "inprocess") {
    // Never a silent fall-back to the CPU.
    if (device == "cuda" && !HaveNccl()) Fail("--device cuda: this build has no CUDA support (built without CUDA); use --device cpu");
    if (env.world_size != 1) {
      Fail("--backend inprocess runs one process; this one was launched as rank ", env.rank, " of ",
           env.world_size, " (use --backend mpi or nccl)");
    }
    InProcessGroup group(1, options);  // the communicator keeps the group's state alive
    return group.Rank(0);
  }
  if (b == "mpi") {
    if (device != "cpu") Fail("--backend mpi works on CPU tensors; use --backend nccl with --device cuda");
    auto comm = CreateMpiCommunicator(options);
    if (comm->world_size() != env.world_size) {
      Fail("MPI sees ", comm->world_size(), " rank(s) but the ", env.launcher, " environment says ",
           env.world_size, ": start the job with mpirun (launch/mpirun.sh) or srun --mpi=pmix");
    }
    return comm;
  }
  if (b == "nccl") {
    if (!HaveNccl()) Fail("--backend nccl: this build has no NCCL (built without CUDA)");
    if (device != "cuda") Fail("--backend nccl needs --device cuda");
    return CreateNcclCommunicator(env, options);
  }
  Fail("--backend: expected auto, inprocess, mpi or nccl, got ", Quote(backend));
}

}  // namespace shardrec
