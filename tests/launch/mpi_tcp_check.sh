#!/bin/bash
# Between machines Open MPI talks TCP, not shared memory. Forces the TCP transport
# (--mca pml ob1 --mca btl self,tcp: no shared-memory or other BTL can be picked) for a 2-rank
# `train` and checks that it logs, bitwise, the losses of the same run over shared memory
# (btl self,vader), and that both runs really used the transport they were given.
#   mpi_tcp_check.sh SHARDREC MPIRUN_SH WORKDIR
source "$(dirname "$0")/mpi_check_lib.sh"
synth
for btl in tcp vader; do
  # btl_base_verbose names the components each rank opened: the run must have used only $btl.
  "$mpirun" -np 2 --mca pml ob1 --mca btl "self,$btl" --mca btl_base_verbose 100 "$bin" train "${small_train_flags[@]}" \
    --run-dir "run-$btl" > "run-$btl.log" 2>&1 || fail "$btl: train failed: $(tail -5 "run-$btl.log")"
  other=$([ "$btl" = tcp ] && echo vader || echo tcp)
  grep -q "select: init of component $btl returned success" "run-$btl.log" ||
    fail "$btl: the log does not show the $btl transport in use: $(grep -m5 'btl' "run-$btl.log")"
  grep -q "select: init of component $other returned success" "run-$btl.log" && fail "$btl: $other was opened too"
done
same_losses run-tcp run-vader "TCP against shared memory"
echo "mpi tcp: 2 ranks, row-wise tables, $logged logged losses over TCP equal shared memory's bitwise"
