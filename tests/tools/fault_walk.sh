#!/bin/bash
# The fault-injection walk (docs/errors.md): every write and fsync of `data convert`, `train` (with a
# checkpoint), `export`, `index`, `recall`, `publish` and `publish --rollback` is made to fail in turn (ENOSPC, or EIO for every third point),
# through tests/tools/fault_inject.c loaded with LD_PRELOAD. For each point N: exit status 2 with
# one "shardrec: error:" line, no crash, no temporary or partial file left, and the previously
# published state byte for byte as it was.
#   fault_walk.sh SHARDREC FAULT_LIB WORKDIR [STRIDE]
# STRIDE 1 walks every point; STRIDE S > 1 the first and last 4 and every S-th between.
set -u
bin=$1 lib=$2 w=$3 stride=${4:-1}
rm -rf "$w" && mkdir -p "$w" && cd "$w" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
sums() { (cd "$1" && find . -type f ! -name '.lock' -print0 | sort -z | xargs -0 -r md5sum); }

# Pristine states, made without faults.
"$bin" data synth --output s.h5 --users 300 --items 150 --events 4000 > /dev/null || fail "synth"
python3 -c 'import random
r = random.Random(3)
for u in range(400):
    print(u, *[r.randrange(300) for _ in range(r.randrange(3, 12))])' > seq.txt
"$bin" data convert --format seq --input seq.txt --output old.h5 --min-user-events 5 > /dev/null || fail "convert"
common=(--dim 8 --blocks 1 --max-len 8 --batch-size 64 --eval-every 0 --log-every 0)
"$bin" train --data s.h5 --run-dir run "${common[@]}" --max-steps 2 --checkpoint-every 2 > /dev/null || fail "train"
"$bin" export --run-dir run --data s.h5 --out exports --export-version v1 > /dev/null || fail "export"
cp -a exports indexed && "$bin" index --export indexed > /dev/null || fail "index"
# A root of published versions: p1 (from a copy of the run: a candidate never comes from the served
# version's own run directory) served, its parent p0.
cp -a run run1 || fail "copy"
"$bin" publish --run-dir run --data s.h5 --export-root pub --export-version p0 --force --factory Flat > /dev/null || fail "publish p0"
"$bin" publish --run-dir run1 --data s.h5 --export-root pub --export-version p1 --force --factory Flat > /dev/null || fail "publish p1"

total=0
# walk NAME PRISTINE_DIR CHECKED_DIR COMMAND...: CHECKED_DIR (inside a fresh copy of PRISTINE_DIR,
# made in ./t) must be unchanged after each failed run.
walk() {
  local name=$1 pristine=$2 checked=$3
  shift 3
  rm -rf t && cp -a "$pristine" t || fail "copy"
  (cd t && SHARDREC_FAULT_COUNT=../count LD_PRELOAD="$lib" "$@" > ../out.log 2>&1) || fail "$name without faults: $(tail -3 out.log)"
  local n
  n=$(cat count)
  [ "$n" -gt 0 ] || fail "$name: no write was seen (is $lib loaded?)"
  local points=0
  for ((k = 1; k <= n; k++)); do
    if [ "$stride" -gt 1 ] && [ $k -gt 4 ] && [ $k -le $((n - 4)) ] && [ $((k % stride)) -ne 0 ]; then continue; fi
    rm -rf t && cp -a "$pristine" t || fail "copy"
    local before
    before=$(cd t && sums "$checked")
    local errno=ENOSPC
    [ $((k % 3)) -eq 0 ] && errno=EIO
    (cd t && SHARDREC_FAULT_AT=$k SHARDREC_FAULT_ERRNO=$errno LD_PRELOAD="$lib" "$@" > ../out.log 2>&1)
    local rc=$?
    [ $rc -eq 2 ] || fail "$name, fault $k of $n ($errno): exit status $rc, expected 2: $(tail -3 out.log)"
    [ "$(grep -c 'shardrec: error:' out.log)" -eq 1 ] || fail "$name, fault $k: not one error line: $(cat out.log)"
    grep -q -i "internal error\|segmentation\|terminate called" out.log && fail "$name, fault $k: $(cat out.log)"
    local left
    left=$(cd t && find . -name '*.tmp-*' -o -name '*.partial' -o -name '.*.partial')
    [ -z "$left" ] || fail "$name, fault $k: left behind: $left"
    [ "$(cd t && sums "$checked")" = "$before" ] || fail "$name, fault $k: the published state changed"
    points=$((points + 1))
  done
  echo "$name: $n injection points, $points walked: exit 2, one message, nothing partial, previous state intact"
  total=$((total + n))
}

mkdir -p c && cp seq.txt old.h5 c/
walk convert c . "$bin" data convert --format seq --input seq.txt --output old.h5
mkdir -p r && cp -a s.h5 run r/
walk train r run/checkpoints/step-000000002 "$bin" train --resume run --max-steps 4 --checkpoint-every 2
mkdir -p e && cp -a s.h5 run exports e/
walk export e exports "$bin" export --run-dir run --data s.h5 --out exports --export-version v2
mkdir -p i && cp -a indexed i/
walk index i indexed "$bin" index --export indexed
mkdir -p q && cp -a indexed s.h5 q/
walk recall q . "$bin" recall --export indexed --k 5 --out lists
# publish (its lock, the export, the index, the gate and --keep) and a rollback: LATEST and every version stay as they were.
mkdir -p p && cp -a s.h5 run run1 pub p/
walk publish p pub "$bin" publish --run-dir run --data s.h5 --export-root pub --export-version p2 --force --keep 1 --factory Flat
walk rollback p pub "$bin" publish --rollback --export-root pub
echo "fault walk: $total injection points in all"
