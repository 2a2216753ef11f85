#!/usr/bin/env bash
# The nightly job: convert -> train (warm start from what is served) -> eval -> publish (export,
# index, gate) -> recall lists. docs/operations.md explains it. Usage:
#   launch/nightly.sh --day 2026-11-30 --work nightly --export-root serve \
#     --convert "--format csv --input events.csv --since 1764374400 --until 1764460800" \
#     [--config configs/sequential.yaml] [--train-args "--epochs 4"] [--publish-args "--keep 7"] \
#     [--recall-users all|FILE] [--k 100] [--np N] [--init-from served|none|PATH]
#   launch/nightly.sh --day d2 --work nightly --export-root serve --data day-2.h5 ...   # no convert
#
# Every stage leaves a complete result or none (the commands write atomically), and a stage whose
# result exists is skipped: killed at any point (kill -9 included) and run again with the same
# arguments, the job continues where it stopped. Train continues from its latest valid checkpoint;
# publish is idempotent for the night's version (WORK/DAY's version name is DAY). What is served
# (EXPORT_ROOT/LATEST) changes only inside publish, atomically, so exactly one complete version is
# served throughout. A failed stage exits with its status and names the stage and its log.
#
# Ranks: --np N runs the distributed stages under launch/mpirun.sh -np N; SHARDREC_LAUNCH replaces
# that prefix (launch/nightly.sbatch sets it to srun). SHARDREC (default: build/shardrec beside this
# script, else `shardrec` on PATH) is the binary.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "nightly: error: $*" >&2; exit 2; }

day='' work='' root='' data='' convert='' config='' train_args='' publish_args='' users=all k=100 np=1 init_from=served
while [ $# -gt 0 ]; do
  case "$1" in
    --day) day=${2-}; shift 2 ;;
    --work) work=${2-}; shift 2 ;;
    --export-root) root=${2-}; shift 2 ;;
    --data) data=${2-}; shift 2 ;;
    --convert) convert=${2-}; shift 2 ;;
    --config) config=${2-}; shift 2 ;;
    --train-args) train_args=${2-}; shift 2 ;;
    --publish-args) publish_args=${2-}; shift 2 ;;
    --recall-users) users=${2-}; shift 2 ;;
    --k) k=${2-}; shift 2 ;;
    --np) np=${2-}; shift 2 ;;
    --init-from) init_from=${2-}; shift 2 ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$day" ] || die "--day is required (the night's name; it names the export version too)"
# The day names the export version: the rule of CheckVersionName (io/export_format.h).
[[ "$day" =~ ^[A-Za-z0-9_+@][A-Za-z0-9._+@-]{0,127}$ && "$day" != LATEST ]] \
  || die "--day '$day': not a version name (1 to 128 of letters, digits and . _ + @ -, not starting with . or -, not LATEST)"
[ -n "$work" ] || die "--work is required (the job's state directory)"
[ -n "$root" ] || die "--export-root is required (what the serving tier reads)"
if [ -n "$data" ] && [ -n "$convert" ]; then die "give --data or --convert, not both"; fi
if [ -z "$data" ] && [ -z "$convert" ]; then die "give --data FILE (a dataset) or --convert \"ARGS\" (of shardrec data convert)"; fi
[[ "$np" =~ ^[1-9][0-9]*$ ]] || die "--np '$np': expected a number of ranks"
[[ "$k" =~ ^[1-9][0-9]*$ ]] || die "--k '$k': expected a positive number"
[ -z "$data" ] || [ -f "$data" ] || die "--data $data: no such file"
[ -z "$config" ] || [ -f "$config" ] || die "--config $config: no such file"

bin=${SHARDREC:-}
if [ -z "$bin" ]; then
  if [ -x "$here/../build/shardrec" ]; then bin=$here/../build/shardrec; else bin=$(command -v shardrec) || die "no shardrec binary (set SHARDREC)"; fi
fi
if [ -n "${SHARDREC_LAUNCH:-}" ]; then
  read -r -a launch <<< "$SHARDREC_LAUNCH"
elif [ "$np" -gt 1 ]; then
  launch=("$here/mpirun.sh" -np "$np")
else
  launch=()
fi

dir=$work/$day
mkdir -p "$dir/logs" "$root" || die "cannot create $dir/logs or $root"
# One job at a time per night, and per export root (two nights publishing into one root at once
# would gate against each other's versions).
exec 9> "$dir/.lock" || die "cannot open $dir/.lock"
flock -n 9 || die "$dir is in use by another nightly job (lock $dir/.lock)"
exec 8> "$root/.nightly.lock" || die "cannot open $root/.nightly.lock"
flock -n 8 || die "$root is in use by another nightly job (lock $root/.nightly.lock)"

note() { echo "nightly $day: $*"; }
die_with_job=()
command -v setpriv > /dev/null && die_with_job=(setpriv --pdeathsig TERM --)
# run_stage NAME CMD...: runs, logs to $dir/logs/NAME.log (appended, shown too), and stops the job
# naming the stage if it fails.
run_stage() {
  local name=$1
  shift
  note "stage $name: $*"
  echo "== $(date -u +%FT%TZ) $*" >> "$dir/logs/$name.log"
  # The stage goes with the job: it gets SIGTERM when this script ends, however it ends (kill -9
  # included; mpirun.sh passes it on to every rank), and it does not inherit the job's locks.
  ${die_with_job[@]+"${die_with_job[@]}"} "$@" 8>&- 9>&- 2>&1 | tee -a "$dir/logs/$name.log" 8>&- 9>&-
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "nightly $day: stage $name failed (exit $rc); log: $dir/logs/$name.log; run the same command again to continue" >&2
    exit "$rc"
  fi
}

# 1. convert (written to a temporary name and renamed: complete or absent).
if [ -n "$data" ]; then
  dataset=$data
  note "stage convert: skipped (--data $data)"
else
  dataset=$dir/data.h5
  if [ -f "$dataset" ]; then
    note "stage convert: done ($dataset)"
  else
    read -r -a conv <<< "$convert"
    run_stage convert "$bin" data convert ${conv[@]+"${conv[@]}"} --output "$dataset"
  fi
fi

# 2. train: a warm start from the served version (--init-from served, the default; from scratch when
# nothing is served), from scratch (none), or from a run directory or export version (PATH). The
# choice is recorded when the night's training first starts, so a restart warm-starts from the
# same version even if another one is served by then (a rollback in between).
run=$dir/run
if [ -f "$dir/train.done" ]; then
  note "stage train: done ($run/model)"
else
  if [ ! -f "$dir/init-from" ]; then
    case "$init_from" in
      served)
        # The served version (train takes the checkpoint its run wrote at the served model's step,
        # optimizer state included, while that run is still there; else the model).
        served=$(cat "$root/LATEST" 2> /dev/null || true)
        if [ -n "$served" ]; then echo "$root/$served"; else echo none; fi > "$dir/init-from.tmp" ;;
      *) echo "$init_from" > "$dir/init-from.tmp" ;;
    esac
    mv "$dir/init-from.tmp" "$dir/init-from" || die "cannot write $dir/init-from"
  fi
  init=$(cat "$dir/init-from")
  read -r -a extra <<< "$train_args"
  args=(train --data "$dataset" --run-dir "$run")
  [ -n "$config" ] && args+=(--config "$config")
  [ "$init" != none ] && args+=(--init-from "$init")
  args+=(${extra[@]+"${extra[@]}"})
  checkpoint=$(ls -d "$run"/checkpoints/step-* 2> /dev/null | grep -v '\.partial$' | head -1)
  if [ -n "$checkpoint" ]; then
    run_stage train ${launch[@]+"${launch[@]}"} "$bin" train --resume=latest-valid --run-dir "$run"
  elif [ -e "$run" ]; then
    run_stage train ${launch[@]+"${launch[@]}"} "$bin" "${args[@]}" --overwrite  # started, no checkpoint yet: again
  else
    run_stage train ${launch[@]+"${launch[@]}"} "$bin" "${args[@]}"
  fi
  # The model exists from the first validation on: only a finished run marks the stage done.
  touch "$dir/train.done" || die "cannot write $dir/train.done"
fi

# 3. eval (eval.json is written atomically).
if [ -f "$dir/eval.json" ]; then
  note "stage eval: done ($dir/eval.json)"
else
  run_stage eval ${launch[@]+"${launch[@]}"} "$bin" eval --run-dir "$run" --out "$dir/eval.json"
fi

# 4. publish: idempotent for the version named after the night (a refused gate fails the stage
# again, with LATEST untouched).
read -r -a pub <<< "$publish_args"
run_stage publish ${launch[@]+"${launch[@]}"} "$bin" publish --run-dir "$run" --export-root "$root" --export-version "$day" ${pub[@]+"${pub[@]}"}

# 5. recall lists of the version just published (renamed into place whole).
if [ -f "$dir/recall/manifest.json" ]; then
  note "stage recall: done ($dir/recall)"
else
  run_stage recall ${launch[@]+"${launch[@]}"} "$bin" recall --export "$root/$day" --users "$users" --k "$k" --out "$dir/recall"
fi
note "done: $root/LATEST -> $(cat "$root/LATEST"), recall lists in $dir/recall"
