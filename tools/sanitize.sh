#!/usr/bin/env bash
# The unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, in their own build folder
# (build-asan/, beside build/). LibTorch, FAISS and HDF5 are not instrumented; leaks are not
# checked (LibTorch keeps process-lifetime allocations) and UBSan stops at its first finding.
#   tools/sanitize.sh [ctest args]       e.g. tools/sanitize.sh -R Checkpoint
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SHARDREC_ASAN_BUILD:-$ROOT/build-asan}
PYENV=${SHARDREC_PYENV:-/opt/shardrec/py}
JOBS=${JOBS:-$(nproc)}
bash "$ROOT/tools/bootstrap.sh" setup
prefix=$("$PYENV/bin/python" -c 'import torch;print(torch.utils.cmake_prefix_path)')
san="-fsanitize=address,undefined -fno-omit-frame-pointer"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS="$san -O1" -DCMAKE_C_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" -DCMAKE_PREFIX_PATH="$prefix" \
  -DSHARDREC_PYTHON="$PYENV/bin/python" -DSHARDREC_WITH_CUDA=OFF -DCMAKE_CXX_COMPILER_LAUNCHER=ccache > "$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j "$JOBS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:alloc_dealloc_mismatch=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The fault walk preloads its own library, which ASan does not allow before itself; the slow walk
# is left to the normal build.
cd "$BUILD" && exec ctest --output-on-failure -j "$JOBS" -L unit -E 'fault_walk' "$@"
