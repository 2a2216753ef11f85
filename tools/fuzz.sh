#!/usr/bin/env bash
# The libFuzzer harnesses of ShardRec's parsers (tests/fuzz: the three converters, the dataset
# reader, the manifest parsers, the text inputs, the server's request parser), built with clang
# under AddressSanitizer + UBSan in build-fuzz/.
#
#   tools/fuzz.sh [SECONDS] [HARNESS...]   each harness runs SECONDS (default 30) from its seed
#                                          corpus (tests/fuzz/corpus/<harness>, read-only) plus
#                                          build-fuzz/corpus/<harness> (grows between runs)
#
# Any crash, sanitizer report, uncaught exception, CHECK, out-of-memory or 10-second input fails the
# run (exit 1) and leaves the input that caused it in build-fuzz/findings/<harness>/. Replay one:
# build-fuzz/fuzz/<harness> FILE. FUZZ_SEED=N fixes libFuzzer's seed (CI does, so that a run can be
# repeated); FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS=-fork=2 for every core (docs/errors.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SHARDREC_FUZZ_BUILD:-$ROOT/build-fuzz}
SECONDS_EACH=${1:-30}
if ! [[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: tools/fuzz.sh [SECONDS] [HARNESS...]  (SECONDS a positive number, got '$SECONDS_EACH')" >&2
  exit 2
fi
shift || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_convert_movielens fuzz_convert_seq fuzz_convert_csv fuzz_dataset fuzz_manifest fuzz_text_inputs fuzz_recommend_body)

# The project's Debian packages, and clang with libFuzzer.
bash "$ROOT/tools/bootstrap.sh" debs clang libclang-rt-dev

san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cmake -S "$ROOT" -B "$BUILD" -DSHARDREC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS="$san" -DCMAKE_C_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > "$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target "${HARNESSES[@]}" > "$BUILD.build.log" 2>&1 ||
  { tail -50 "$BUILD.build.log" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for h in "${HARNESSES[@]}"; do
  corpus="$BUILD/corpus/$h" findings="$BUILD/findings/$h"
  mkdir -p "$corpus" "$findings"
  log="$BUILD/$h.log"
  set +e
  # shellcheck disable=SC2086
  "$BUILD/fuzz/$h" "$corpus" "$ROOT/tests/fuzz/corpus/$h" -max_total_time="$SECONDS_EACH" -timeout=10 \
    -ignore_timeouts=0 -ignore_ooms=0 -ignore_crashes=0 -seed="${FUZZ_SEED:-0}" -rss_limit_mb=2048 -max_len=8192 -artifact_prefix="$findings/" -print_final_stats=1 ${FUZZ_ARGS:-} > "$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\):* .*/\1/p' "$log" | tail -1)  # fork mode's progress lines
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ $rc -ne 0 ]; then
    echo "[fuzz] $h: FAILED (exit $rc) after ${runs:-?} runs; input in $findings/, log $log" >&2
    grep -E 'ERROR|runtime error|terminate|Check failed|deadly' "$log" | head -5 >&2 || true
    status=1
  else
    echo "[fuzz] $h: ${runs:-?} runs in ${SECONDS_EACH} s, $cov, no findings" >&2
  fi
done
exit $status
