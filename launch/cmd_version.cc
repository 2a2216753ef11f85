// shardrec version: what this build links (LibTorch, CUDA), and what it sees.
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdio>

#include "launch/cli.h"

namespace shardrec::cli {
namespace {

int RunVersion(const std::vector<std::string>&) {
  std::printf("shardrec 0.1.0\nLibTorch %s\nCUDA devices visible: %d\n", TORCH_VERSION,
              static_cast<int>(torch::cuda::device_count()));
  return 0;
}

Registrar version_cmd({
    .name = "version",
    .summary = "print the version of shardrec and of the libraries it links",
    .usage = "shardrec version",
    .flags = {},
    .positional = 0,
    .run = RunVersion,
});

}  // namespace
}  // namespace shardrec::cli
