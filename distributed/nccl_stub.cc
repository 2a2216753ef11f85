// Built when CUDA is not available: the NCCL backend reports itself missing.
#include "distributed/nccl.h"

namespace shardrec {

bool NcclCompiled() { return false; }

std::unique_ptr<Communicator> CreateNcclCommunicator(const LaunchEnv&, const CommOptions&) {
  Fail("the NCCL backend is not compiled into this build (no CUDA toolkit at build time)");
}

int CudaDeviceCount() { return 0; }

}  // namespace shardrec
