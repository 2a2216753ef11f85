#!/bin/bash
# The nightly job (launch/nightly.sh) on a 3-day synthetic scenario under NP ranks:
#   - an uninterrupted run of days 1-3 (warm starts from what is served) publishes every day and
#     writes recall lists in which items new on day 2 appear;
#   - run again, every stage is skipped (idempotent), and the served version stays;
#   - a broken candidate (one step from scratch) is refused: the job fails naming the publish stage
#     and LATEST still names day 3; --rollback restores the previous version;
#   - a second run of the same 3 days, with kill -9 of the whole job during each stage (train, eval,
#     publish, recall) and the same command re-run, ends in the same served version with the same
#     gate evaluation and the same recall lists as the uninterrupted run.
#   nightly_check.sh SHARDREC NIGHTLY_SH WORKDIR NP PYTHON
set -u
bin=$1 nightly=$2 w=$3 np=$4 py=$5
rm -rf "$w" && mkdir -p "$w" && cd "$w" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
export SHARDREC=$bin
"$bin" data synth --output days --days 3 --users 400 --items 300 --events 9000 --new-items 0.1 > synth.log 2>&1 ||
  fail "synth: $(cat synth.log)"
# Validation every 5 epochs (2 steps each): the model exists long before training ends.
train="--max-steps 40 --dim 16 --blocks 1 --max-len 10 --eval-every 5 --checkpoint-every 10 --log-every 0"
night() {  # night ROOT WORK DAY [extra nightly args...]
  local root=$1 work=$2 day=$3
  shift 3
  "$nightly" --day "$day" --work "$work" --export-root "$root" --data "days/$day.h5" --np "$np" --k 20 \
    --train-args "$train" --publish-args "--tolerance 0.5" "$@"
}

# 1. Uninterrupted.
for d in day-1 day-2 day-3; do
  night serve work "$d" > "run-$d.log" 2>&1 || fail "$d: $(tail -20 "run-$d.log")"
  [ "$(cat serve/LATEST)" = "$d" ] || fail "$d: LATEST names $(cat serve/LATEST)"
done
grep -q "warm start from" work/day-2/logs/train.log || fail "day 2 did not warm-start: $(cat work/day-2/logs/train.log)"
"$py" - <<'PY' || fail "new items in recall lists"
import glob, h5py, json
def strings(f, name, n=None):
    o, b = f[name + "/offsets"][:], f[name + "/bytes"][:]
    return [bytes(b[o[i]:o[i + 1]]).decode() for i in range(len(o) - 1)]
def items(path):
    with h5py.File(path) as f:
        return set(strings(f, "/items/raw_ids"))
new = items("days/day-2.h5") - items("days/day-1.h5")
assert new, "the scenario has no new items on day 2"
m = json.load(open("work/day-2/recall/manifest.json"))
assert m["export_version"] == "day-2" and m["k"] == 20, m
listed = set()
for p in m["parts"]:
    with h5py.File("work/day-2/recall/" + p["file"]) as f:
        listed |= set(strings(f, "/items"))
hit = new & listed
assert hit, "no item new on day 2 appears in the day-2 recall lists"
print("new on day 2: %d items, %d of them in recall lists" % (len(new), len(hit)))
PY

# 2. Idempotent: everything is done already.
night serve work day-3 > again.log 2>&1 || fail "re-run: $(cat again.log)"
for s in train eval recall; do grep -q "stage $s: done" again.log || fail "re-run redid $s: $(cat again.log)"; done
grep -q "its recorded decision stands" again.log || fail "re-run published again: $(cat again.log)"
[ "$(cat serve/LATEST)" = day-3 ] || fail "re-run: LATEST names $(cat serve/LATEST)"

# 3. A broken candidate is refused; rollback.
night serve work bad --data days/day-3.h5 --init-from none --train-args "--max-steps 1 --dim 16 --blocks 1 --max-len 10 --eval-every 0" > bad.log 2>&1
rc=$?
[ $rc -eq 1 ] || fail "broken candidate: exit $rc, expected 1: $(tail -20 bad.log)"
grep -q "stage publish failed (exit 1)" bad.log || fail "the failure does not name the stage: $(tail -5 bad.log)"
grep -q "refused: NDCG@10" bad.log || fail "not refused by the gate: $(tail -20 bad.log)"
[ "$(cat serve/LATEST)" = day-3 ] || fail "after the refusal LATEST names $(cat serve/LATEST)"
"$bin" publish --rollback --export-root serve > rollback.log 2>&1 || fail "rollback: $(cat rollback.log)"
[ "$(cat serve/LATEST)" = day-2 ] || fail "rollback: LATEST names $(cat serve/LATEST)"
# Re-running a night after a rollback does not serve its version again.
night serve work day-3 > after-rollback.log 2>&1 || fail "re-run after a rollback: $(tail -20 after-rollback.log)"
[ "$(cat serve/LATEST)" = day-2 ] || fail "a re-run undid the rollback: LATEST names $(cat serve/LATEST)"
grep -q "not served now" after-rollback.log || fail "re-run after a rollback: $(tail -5 after-rollback.log)"
"$bin" publish --rollback day-3 --export-root serve > rollback.log 2>&1 || fail "rollback to day-3: $(cat rollback.log)"

# 3b. kill -9 of the nightly.sh process alone (not its session): its stage goes with it (SIGTERM,
# passed on to the ranks) and no process of the job keeps its locks.
"$nightly" --day day-1 --work work3 --export-root serve3 --data days/day-1.h5 --np "$np" --k 20 --train-args "$train" \
  > alone.log 2>&1 &
alone=$!  # the nightly.sh process itself
for _ in $(seq 1 1200); do grep -q "stage train: " alone.log 2> /dev/null && break; sleep 0.05; done
sleep 1
kill -9 $alone
{ wait $alone; } 2> /dev/null
gone=0
for _ in $(seq 1 600); do
  pgrep -f "shardrec.*work3/day-1" > /dev/null || { gone=1; break; }
  sleep 0.1
done
[ $gone = 1 ] || fail "the train stage outlived the killed nightly.sh: $(pgrep -af 'shardrec.*work3/day-1')"
flock -n work3/day-1/.lock true || fail "work3/day-1/.lock is still held after the job was killed"
flock -n serve3/.nightly.lock true || fail "serve3/.nightly.lock is still held after the job was killed"

# 4. kill -9 during each stage, then the same command again (each night is killed more than once:
# every re-run skips what is done and is killed in a later stage).
landed=0
finished() {  # finished DAY STAGE: whether STAGE's result exists
  case "$2" in
    train) [ -f "work2/$1/train.done" ] ;;
    eval) [ -f "work2/$1/eval.json" ] ;;
    publish) [ "$(cat serve2/LATEST 2> /dev/null)" = "$1" ] ;;
    recall) [ -f "work2/$1/recall/manifest.json" ] ;;
  esac
}
kill_during() {  # kill_during DAY STAGE DELAY: starts the night, kills the whole job DELAY s into STAGE
  local day=$1 stage=$2 log=kill-$1-$2-$3.log
  setsid bash -c "$(declare -f night); train='$train' nightly='$nightly' np=$np night serve2 work2 $day" > "$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 1200); do
    grep -q "stage $stage: " "$log" 2> /dev/null && break
    kill -0 $pid 2> /dev/null || break
    sleep 0.05
  done
  sleep "$3"
  pkill -9 -s $pid 2> /dev/null
  { wait $pid; } 2> /dev/null
  sleep 0.3
  pkill -9 -s $pid 2> /dev/null  # anything a dying launcher started meanwhile
  if ! finished "$day" "$stage"; then landed=$((landed + 1)); fi
  echo "$day: killed ${3}s into $stage; finished: $(for s in train eval publish recall; do finished "$day" $s && printf '%s ' $s; done)" >> kills.txt
  grep -q "^FAIL\|error: .*LATEST" "$log" && fail "$log"
  true
}
kill_during day-1 train 1.2
kill_during day-1 train 0.1
kill_during day-1 publish 1.0
night serve2 work2 day-1 > resume-day-1.log 2>&1 || fail "day-1 after kills: $(tail -20 resume-day-1.log)"
kill_during day-2 train 2.5
kill_during day-2 eval 0.5
kill_during day-2 publish 1.2
night serve2 work2 day-2 > resume-day-2.log 2>&1 || fail "day-2 after kills: $(tail -20 resume-day-2.log)"
kill_during day-3 publish 0.6
kill_during day-3 recall 0
night serve2 work2 day-3 > resume-day-3.log 2>&1 || fail "day-3 after kills: $(tail -20 resume-day-3.log)"
[ "$(cat serve2/LATEST)" = day-3 ] || fail "after the kills LATEST names $(cat serve2/LATEST)"
[ $landed -ge 4 ] || fail "only $landed kills landed inside their stage: $(cat kills.txt)"
"$py" - <<'PY' || fail "the interrupted run differs from the uninterrupted one"
import json, h5py
def lineage(root):
    return json.load(open(root + "/day-3/manifest.json"))["lineage"]
a, b = lineage("serve"), lineage("serve2")
assert a["parent"] == b["parent"] == "day-2", (a["parent"], b["parent"])
for k in ("ndcg@10", "hr@10"):
    assert abs(a["candidate"][k] - b["candidate"][k]) < 1e-9, (k, a["candidate"][k], b["candidate"][k])
def lists(work):
    m = json.load(open(work + "/day-3/recall/manifest.json"))
    out = []
    for p in m["parts"]:
        with h5py.File(work + "/day-3/recall/" + p["file"]) as f:
            o, by = f["/items/offsets"][:], f["/items/bytes"][:]
            out += [bytes(by[o[i]:o[i + 1]]).decode() for i in range(len(o) - 1)]
    return out
assert lists("work") == lists("work2"), "recall lists differ"
PY
echo "nightly: 3 days on $np ranks, gate, rollback, $landed kills inside a stage resumed to the same served version ok"
