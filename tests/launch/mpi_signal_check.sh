#!/bin/bash
# Under mpirun: SIGTERM to a 2-rank `train` (through launch/mpirun.sh, and straight to mpirun)
# stops both ranks at the same step with a checkpoint and exit 75; resuming from it reaches,
# bitwise, the logged losses of a run that was never stopped.
#   mpi_signal_check.sh SHARDREC MPIRUN_SH WORKDIR
source "$(dirname "$0")/mpi_check_lib.sh"
synth
flags=(--data s.h5 --dim 16 --blocks 1 --max-len 10 --batch-size 32 --epochs 100000 --eval-every 3 --patience 100000 --log-every 0)
# Starts a long run, waits until it has logged a few reads, sends SIGTERM to $1 ("script": the
# launcher's pid; "mpirun": mpirun itself), and prints the step it stopped after.
stop_run() {
  local run=$2
  SHARDREC_KILL_WAIT=5 "$mpirun" -np 2 "$bin" train "${flags[@]}" --run-dir "$run" > "$run.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    [ "$(grep -c '"train"' "$run/metrics.jsonl" 2> /dev/null)" -ge 3 ] 2>/dev/null && break
    sleep 0.1
  done
  if [ "$1" = script ]; then kill -TERM "$pid"; else pkill -TERM -f "^mpirun .*--run-dir $run\$"; fi
  wait "$pid"
  local rc=$?
  # Through the launcher: the ranks' status, 75. Signalled itself, mpirun ends the job with its own (1).
  if [ "$1" = script ]; then
    [ $rc -eq 75 ] || fail "$1: exit status $rc, expected 75: $(tail -5 "$run.log")"
  else
    [ $rc -ne 0 ] || fail "$1: exit status 0 after a stop"
  fi
  grep -q "shardrec: error" "$run.log" && fail "$1: an error on a stop: $(cat "$run.log")"
  local step
  step=$(sed -n 's/^stopped by SIG[A-Z0-9]* after step \([0-9]*\);.*/\1/p' "$run.log")
  [ -n "$step" ] || fail "$1: no 'stopped by' line: $(tail -5 "$run.log")"
  [ -f "$run/checkpoints/step-$(printf %09d "$step")/manifest.json" ] || fail "$1: no checkpoint at step $step"
  echo "$step"
}
for how in script mpirun; do
  step=$(stop_run "$how" "run-$how") || { echo "$step"; exit 1; }
  target=$((step + 45))
  "$mpirun" -np 2 "$bin" train --resume "run-$how" --max-steps "$target" > "resume-$how.log" 2>&1 ||
    fail "$how: resume: $(tail -5 "resume-$how.log")"
  "$mpirun" -np 2 "$bin" train "${flags[@]}" --run-dir "whole-$how" --max-steps "$target" > "whole-$how.log" 2>&1 ||
    fail "$how: uninterrupted run: $(tail -5 "whole-$how.log")"
  same_losses "run-$how" "whole-$how" "$how: resumed at step $step"
  echo "$how: stopped after step $step, resumed to step $target: $logged logged losses equal"
done
echo "mpi signal: SIGTERM stops 2 ranks with a checkpoint; the resumed losses equal an uninterrupted run's"
