#!/usr/bin/env bash
# mpirun with what Open MPI needs here: --allow-run-as-root when root, and --oversubscribe
# --bind-to none when more ranks than cores are asked for (laptops, CI, small VMs). The library
# environment is forwarded to every rank. Usage:
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
exec mpirun "${extra[@]}" "$@"
