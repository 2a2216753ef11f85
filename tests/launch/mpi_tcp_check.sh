#!/bin/bash
# Between machines Open MPI talks TCP, not shared memory. Forces the TCP transport
# (--mca pml ob1 --mca btl self,tcp: no shared-memory or other BTL can be picked) for a 2-rank
# `train` and checks that it logs, bitwise, the losses of the same run over shared memory
# (btl self,vader), and that both runs really used the transport they were given.
#   mpi_tcp_check.sh SHARDREC MPIRUN_SH WORKDIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 mpirun=$2 w=$3
rm -rf "$w" && mkdir -p "$w" && cd "$w" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
"$bin" data synth --output s.h5 --users 300 --items 150 --events 4000 > /dev/null || fail "synth"
flags=(--data s.h5 --dim 16 --blocks 1 --max-len 10 --batch-size 32 --max-steps 40 --eval-every 0 --log-every 0
  --sharding row_wise)
# Train losses logged in RUN/metrics.jsonl, one "step loss" line each (full precision).
losses() { python3 "$here/train_losses.py" "$1"; }
for btl in tcp vader; do
  # btl_base_verbose names the components each rank opened: the run must have used only $btl.
  "$mpirun" -np 2 --mca pml ob1 --mca btl "self,$btl" --mca btl_base_verbose 100 "$bin" train "${flags[@]}" \
    --run-dir "run-$btl" > "run-$btl.log" 2>&1 || fail "$btl: train failed: $(tail -5 "run-$btl.log")"
  other=$([ "$btl" = tcp ] && echo vader || echo tcp)
  grep -q "select: init of component $btl returned success" "run-$btl.log" ||
    fail "$btl: the log does not show the $btl transport in use: $(grep -m5 'btl' "run-$btl.log")"
  grep -q "select: init of component $other returned success" "run-$btl.log" && fail "$btl: $other was opened too"
done
a=$(losses run-tcp/metrics.jsonl) b=$(losses run-vader/metrics.jsonl)
[ -n "$a" ] || fail "no losses logged"
[ "$a" = "$b" ] || fail "losses over TCP differ from shared memory:
$(diff <(echo "$a") <(echo "$b") | head -10)"
echo "mpi tcp: 2 ranks, row-wise tables, $(echo "$a" | wc -l) logged losses over TCP equal shared memory's bitwise"
