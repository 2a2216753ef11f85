#!/usr/bin/env bash
# mpirun with what Open MPI needs here: --allow-run-as-root when root, and --oversubscribe
# --bind-to none when more ranks than cores are asked for (laptops, CI, small VMs). The library
# environment is forwarded to every rank.
# Signals: SIGTERM or SIGINT to this script reaches every rank at once as SIGUSR1 (which mpirun
# forwards), so `shardrec train` finishes its step, checkpoints and exits 75 (docs/errors.md). A
# SIGTERM sent to mpirun itself reaches the ranks after SHARDREC_KILL_WAIT seconds (default 30),
# and they get as long again before SIGKILL. Usage:
#   launch/mpirun.sh -np 4 build/shardrec comm check
#   launch/mpirun.sh -np 4 --hostfile hosts build/shardrec train ...
set -euo pipefail
args=("$@")
np=1
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    -np|-n|--np) np=${args[$((i + 1))]} ;;
  esac
done
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-run-as-root)
if [ "$np" -gt "$(nproc)" ]; then extra+=(--oversubscribe --bind-to none); fi
for v in LD_LIBRARY_PATH PATH SHARDREC_DATA HF_HUB_OFFLINE; do
  [ -n "${!v:-}" ] && extra+=(-x "$v")
done
extra+=(--mca odls_base_sigkill_timeout "${SHARDREC_KILL_WAIT:-30}")
set +e
mpirun "${extra[@]}" "$@" &
pid=$!
trap 'kill -USR1 "$pid" 2>/dev/null' TERM INT
# `wait` returns early when a trapped signal arrives: wait again until mpirun has ended.
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
