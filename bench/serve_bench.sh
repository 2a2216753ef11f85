#!/usr/bin/env bash
# `shardrec serve` under load (bench/serve_bench.cc) at 100k and 1M items of 64 dimensions, with a
# Flat, an IVF and an HNSW index: makes a synthetic dataset, a short training run and two exports
# of it per size (kept in WORK between runs), indexes both with each factory, then runs serve_bench
# on each (one client and 16, batching on and off, 10 hot reloads between the two versions, the
# in-process floor). Figures: WORK/serve-<items>-<factory>.json, and docs/results.md.
#
#   bench/serve_bench.sh [WORK]   (default /tmp/shardrec-serve-bench)
#   SERVE_BENCH_ITEMS="100000 1000000" SERVE_BENCH_FACTORIES="Flat auto HNSW32" to choose (auto: IVF<4 sqrt(n)>,Flat),
#   SERVE_BENCH_REQUESTS=4000 requests per load
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SHARDREC_BUILD_DIR:-$ROOT/build}
WORK=${1:-/tmp/shardrec-serve-bench}
SIZES=${SERVE_BENCH_ITEMS:-"100000 1000000"}
FACTORIES=${SERVE_BENCH_FACTORIES:-"Flat auto HNSW32"}
BIN="$BUILD/shardrec"
export OPENBLAS_NUM_THREADS=1  # FAISS and torch parallelise themselves; BLAS threads on top thrash 2 cores

for n in $SIZES; do
  d="$WORK/items-$n"
  if [ ! -f "$d/ready" ]; then
    rm -rf "$d" && mkdir -p "$d"
    echo "[serve_bench] $n items: data, a short run, two exports" >&2
    "$BIN" data synth --output "$d/data.h5" --users 20000 --items "$n" --events 600000 --seed 3 >/dev/null
    "$BIN" train --data "$d/data.h5" --run-dir "$d/run" --dim 64 --blocks 2 --max-len 50 --max-steps 60 --eval-every 0 \
      --log-every 0 >/dev/null
    for v in a b; do "$BIN" export --run-dir "$d/run" --out "$d/S" --export-version "$v" >/dev/null; done
    touch "$d/ready"
  fi
  for f in $FACTORIES; do
    echo "[serve_bench] $n items, $f" >&2
    for v in a b; do "$BIN" index --export "$d/S/$v" --factory "$f" >/dev/null; done
    echo a > "$d/S/LATEST.tmp" && mv "$d/S/LATEST.tmp" "$d/S/LATEST"
    "$BUILD/serve_bench" --export-root "$d/S" --reload-to b --reloads 10 --requests "${SERVE_BENCH_REQUESTS:-4000}" \
      --json "$WORK/serve-$n-${f//,/_}.json" 2>"$WORK/serve-$n-${f//,/_}.log"
  done
done
