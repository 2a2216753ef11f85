#!/bin/bash
# ShardRec's SLURM scripts under a real one-machine SLURM (tests/launch/slurm_cluster.sh):
#   1. `sbatch launch/train.sbatch train ...` on 2 tasks trains the model `launch/mpirun.sh -np 2`
#      trains (every parameter equal);
#   2. the same job with a time limit of two minutes and SIGTERM 80 s before it: the ranks
#      checkpoint and exit 75, the script requeues the job, the requeued run resumes
#      (--resume=latest-valid) and ends with the same model again;
#   3. `sbatch launch/nightly.sbatch` runs a night on 2 tasks and publishes its version.
# The services are stopped at the end by their process ids.
#   slurm_check.sh SHARDREC REPO WORKDIR PYTHON
set -u
bin=$1 repo=$2 w=$3 py=$4
rm -rf "$w" && mkdir -p "$w" && cd "$w" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
# shellcheck source=tests/launch/slurm_cluster.sh
source "$repo/tests/launch/slurm_cluster.sh"
trap slurm_stop EXIT
slurm_start "$w/cluster"
case $? in 0) ;; 77) exit 77 ;; *) fail "the cluster did not start" ;; esac
export SHARDREC=$bin SHARDREC_HOME=$repo

"$bin" data synth --output d.h5 --users 600 --items 300 --events 30000 > synth.log 2>&1 || fail "synth: $(cat synth.log)"
# Dropout on (the generic config's 0.5): the ranks' masks are keyed by row, not rank.
# About a minute of training: long enough for the time limit's signal to find it running.
train=(train --data d.h5 --dim 32 --blocks 2 --max-len 50 --batch-size 128 --epochs 10000 --max-steps 1200
  --eval-every 0 --checkpoint-every 100 --log-every 100 --dropout 0.5 --sharding row_wise --seed 3)
# The script's defaults ask for 8 tasks with a GPU each: this node has 2 CPUs and no GPU.
alloc=(--ntasks-per-node=2 --cpus-per-task=1 --gpus-per-task=0 --mem=0)

same_model() {  # same_model RUN_A RUN_B: every dense parameter and embedding row equal
  "$py" - "$repo/tests/serve" "$1/model" "$2/model" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from serve_util import model_arrays
a, b = model_arrays(sys.argv[2]), model_arrays(sys.argv[3])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
differ = [k for k in a if not np.array_equal(a[k], b[k], equal_nan=True)]
worst = max((float(np.nanmax(np.abs(a[k].astype(np.float64) - b[k]))) for k in differ), default=0.0)
print("models %s and %s: %d arrays, largest difference %.3g" % (sys.argv[2], sys.argv[3], len(a), worst))
assert not differ, "the models differ in " + ", ".join(differ)
PY
}

# 1. mpirun against sbatch.
"$repo/launch/mpirun.sh" -np 2 "$bin" "${train[@]}" --run-dir mpi > mpi.log 2>&1 || fail "mpirun train: $(tail -20 mpi.log)"
sbatch --wait "${alloc[@]}" --time=10 --output=train-%j.out "$repo/launch/train.sbatch" "${train[@]}" --run-dir batch \
  > sbatch.log 2>&1 || fail "sbatch train: $(cat sbatch.log train-*.out | tail -30)"
same_model mpi batch || fail "sbatch training differs from mpirun training"

# 2. Time limit: SIGTERM, checkpoint, exit 75, requeue, resume. The signal is due 40 s after the
# start (SLURM may send it up to its timer's period early), within the run's minute of training
# and after the handlers are up.
job=$(sbatch --parsable "${alloc[@]}" --time=2 --signal=TERM@80 --open-mode=append --output=requeue-%j.out "$repo/launch/train.sbatch" \
  "${train[@]}" --run-dir requeued) || fail "sbatch (time limit) refused"
# Once requeued, the job gets room to finish (it would otherwise be stopped each minute, still
# resuming each time), and starts now: SLURM makes a requeued job wait about two minutes
# (its BeginTime) before it may run again.
restarts=0
for _ in $(seq 600); do
  info=$(scontrol show job "$job" 2> /dev/null)
  state=$(grep -o 'JobState=[A-Z_]*' <<< "$info" | cut -d= -f2)
  restarts=$(grep -o 'Restarts=[0-9]*' <<< "$info" | cut -d= -f2)
  if [ "${restarts:-0}" -ge 1 ] && ! grep -q 'TimeLimit=00:10:00' <<< "$info"; then
    scontrol update JobId="$job" TimeLimit=10 StartTime=now 2> /dev/null || true  # tried again next poll
  fi
  case "$state" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
  sleep 0.5
done
[ "$state" = COMPLETED ] || fail "the time-limited job ended $state: $(cat requeue-*.out | tail -30)"
[ "${restarts:-0}" -ge 1 ] || fail "the job was never requeued: $(cat requeue-*.out | tail -30)"
grep -q "stopped with a checkpoint; requeueing job $job" requeue-"$job".out || fail "no exit 75 and requeue: $(cat requeue-"$job".out)"
grep -q "resumed from requeued/checkpoints/" requeue-"$job".out || fail "the requeued run did not resume: $(tail -30 requeue-"$job".out)"
same_model mpi requeued || fail "the requeued run's model differs from the uninterrupted one"
echo "time limit: job $job requeued $restarts time(s), then completed with the uninterrupted model"

# 3. A night under sbatch.
"$bin" data synth --output days --days 1 --users 300 --items 200 --events 6000 > days.log 2>&1 || fail "synth days: $(cat days.log)"
sbatch --wait "${alloc[@]}" --time=10 --output=nightly-%j.out "$repo/launch/nightly.sbatch" --day day-1 --work night \
  --export-root serve --data days/day-1.h5 --k 20 --train-args "--max-steps 20 --dim 16 --blocks 1 --max-len 10 --eval-every 10" \
  --publish-args "--tolerance 0.5" > nightly-sbatch.log 2>&1 || fail "nightly sbatch: $(cat nightly-sbatch.log nightly-*.out | tail -30)"
[ "$(cat serve/LATEST 2> /dev/null)" = day-1 ] || fail "the night did not publish day-1: $(tail -30 nightly-*.out)"
[ -f night/day-1/recall/manifest.json ] || fail "the night wrote no recall lists"
echo "slurm check: OK"
