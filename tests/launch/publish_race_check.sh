#!/bin/bash
# Writers of one export root race while queries read it (docs/serving.md, "One root, many writers"):
# each round starts two publishes (--keep 1) and a rollback at once, with a query loop running
# throughout, for a bounded number of rounds. Afterwards:
#   - every query succeeded (a reader that loses a race to --keep reads LATEST again);
#   - LATEST names a complete version (its manifest verifies);
#   - the outcome is that of SOME serial order of the writers that succeeded: every version's
#     recorded parent is what LATEST named when it was served, and the final LATEST is that
#     order's (the oracle replays each of the 6 orders);
#   - with --lock-wait 60 every writer succeeds (each waits its turn); with --lock-wait 0 a writer
#     that meets the lock held is refused with a message naming the holder, and changes nothing;
#   - --keep never removed the served version or its parent.
#   publish_race_check.sh SHARDREC WORKDIR PYTHON
set -u
bin=$1 w=$2 py=$3
rm -rf "$w" && mkdir -p "$w" && cd "$w" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
"$bin" data synth --output data.h5 --users 300 --items 200 --events 6000 > synth.log 2>&1 || fail "synth: $(cat synth.log)"
for run in a b; do
  "$bin" train --data data.h5 --run-dir "$run" --max-steps 10 --dim 8 --blocks 1 --max-len 8 --log-every 0 \
    --seed "$([ $run = a ] && echo 1 || echo 2)" > "train-$run.log" 2>&1 || fail "train $run: $(tail -5 "train-$run.log")"
done
user=$("$py" -c "
import h5py
with h5py.File('data.h5') as f:
    o, b = f['/users/raw_ids/offsets'][:], f['/users/raw_ids/bytes'][:]
    print(bytes(b[o[0]:o[1]]).decode())")
[ -n "$user" ] || fail "no user id"
"$bin" publish --run-dir a --export-root S --export-version r0 --force > r0.log 2>&1 || fail "first publish: $(cat r0.log)"

# The query loop: bounded in time and count, stops by itself (or when `stop` appears).
queries() {
  local n=0 failed=0
  while [ ! -e stop ] && [ $n -lt 2000 ]; do
    n=$((n + 1))
    timeout 60 "$bin" query --export S --user "$user" --k 5 --json > q.out 2> q.err || {
      failed=$((failed + 1))
      echo "query $n: $(cat q.err)" >> queries-failed.log
    }
  done
  echo "$n $failed" > queries.count
}
rm -f stop queries-failed.log
queries &
qpid=$!

rounds=6
for r in $(seq 1 $rounds); do
  wait_s=$([ $((r % 2)) = 1 ] && echo 60 || echo 0)
  pids=()
  # Each candidate from a run directory of its own (never the served version's: publish refuses that).
  cp -a a "a$r" && cp -a b "b$r" || fail "copy"
  "$bin" publish --run-dir "a$r" --export-root S --export-version "r$r-a" --force --keep 1 --lock-wait "$wait_s" > "r$r-a.log" 2>&1 &
  pids+=($!)
  "$bin" publish --run-dir "b$r" --export-root S --export-version "r$r-b" --force --keep 1 --lock-wait "$wait_s" > "r$r-b.log" 2>&1 &
  pids+=($!)
  sleep 0.2
  "$bin" publish --rollback --export-root S --lock-wait "$wait_s" > "r$r-rb.log" 2>&1 &
  pids+=($!)
  codes=""
  for p in "${pids[@]}"; do wait "$p"; codes="$codes $?"; done
  echo "$codes" > "r$r.codes"
  cat S/LATEST > "r$r.latest_after" 2>/dev/null
done
touch stop
wait $qpid
read -r n failed < queries.count
[ "$failed" = 0 ] || fail "$failed of $n queries failed: $(head -5 queries-failed.log)"
[ "$n" -ge 5 ] || fail "only $n queries ran"
echo "queries: $n, all answered"

"$py" - "$rounds" <<'PY' || fail "the writers' outcome is not a serial order's"
import itertools, json, os, sys
rounds = int(sys.argv[1])
def lineage(v):
    return json.load(open(f"S/{v}/manifest.json")).get("lineage", {})
# The rounds' writers, replayed: parents are known for every version that still exists.
latest = "r0"
parents = {"r0": ""}
for r in range(1, rounds + 1):
    codes = open(f"r{r}.codes").read().split()
    names = [f"r{r}-a", f"r{r}-b", "rollback"]
    logs = [open(f"r{r}-{s}.log").read() for s in ("a", "b", "rb")]
    ok = [c == "0" for c in codes]
    for i, good in enumerate(ok):
        if not good:
            # Only the lock (with --lock-wait 0) or a rollback with nothing to roll back to (no parent
            # recorded, or the parent removed by an earlier --keep) may refuse.
            assert ("is in use by" in logs[i] or "records no parent" in logs[i] or
                    (names[i] == "rollback" and "no such complete version" in logs[i])), (names[i], logs[i])
            if "is in use by" in logs[i]:
                assert r % 2 == 0, f"{names[i]} refused though it could wait: {logs[i]}"
    observed = open(f"r{r}.latest_after").read().strip()
    for v in names[:2]:
        if ok[names.index(v)] and os.path.exists(f"S/{v}/manifest.json"):
            parents[v] = lineage(v)["parent"]
    fits = []
    for order in itertools.permutations([i for i in range(3) if ok[i]]):
        cur, par, good = latest, dict(parents), True
        for i in order:
            if names[i] == "rollback":
                if not par.get(cur):
                    good = False
                    break
                cur = par[cur]
            else:
                if names[i] in parents and parents[names[i]] != cur:
                    good = False
                    break
                par[names[i]] = cur
                cur = names[i]
        if good and cur == observed:
            fits.append(order)
    assert fits, f"round {r}: codes {codes}, LATEST {observed}, parents {parents}: no serial order explains it"
    latest = observed
    print(f"round {r}: exit codes {codes}, LATEST -> {observed}, {len(fits)} serial order(s) fit")
served = open("S/LATEST").read().strip()
assert os.path.exists(f"S/{served}/manifest.json"), served
parent = lineage(served).get("parent", "")
assert not parent or os.path.exists(f"S/{parent}/manifest.json"), f"--keep removed {parent}, the served version's parent"
PY
"$bin" query --export S --user "$user" --k 5 > final.log 2>&1 || fail "final query: $(cat final.log)"
leftover=$(ls -a S | grep -E '\.tmp-|\.retired-|\.partial' || true)
[ -z "$leftover" ] || fail "temporary files left in the root: $leftover"
echo "publish race: OK"
