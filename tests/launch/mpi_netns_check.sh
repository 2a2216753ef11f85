#!/bin/bash
# Two "machines" on one: each rank in its own network namespace, joined by a bridge, so the ranks
# share no network stack and reach each other only over TCP/IP, as nodes do; mpirun starts its
# daemons there through an rsh agent (a hostfile of the namespaces' addresses, as with ssh).
# Checks `shardrec comm check` across them, and that a 2-rank row-wise `train` logs, bitwise, the
# losses of the same run over shared memory. Needs root and network namespaces: exits 77 (skipped)
# when they are not available.
#   mpi_netns_check.sh SHARDREC MPIRUN_SH WORKDIR
source "$(dirname "$0")/mpi_check_lib.sh"
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip > /dev/null || skip "no 'ip' command (iproute2)"
n=$(( $$ % 200 + 20 ))  # a subnet and names of our own: runs at once do not collide
br=srbr$n net=10.$n.77 ns=(srns${n}a srns${n}b)
cleanup() {
  for x in "${ns[@]}"; do ip netns del "$x" 2> /dev/null; done
  ip link del "$br" 2> /dev/null
}
trap cleanup EXIT
ip link add "$br" type bridge 2> /dev/null || skip "cannot create a bridge here"
ip addr add "$net.1/24" dev "$br" && ip link set "$br" up || fail "bridge setup"
for i in 0 1; do
  ip netns add "${ns[$i]}" 2> /dev/null || skip "cannot create network namespaces here"
  ip link add "sv${n}$i" type veth peer name "sv${n}${i}h" &&
    ip link set "sv${n}$i" netns "${ns[$i]}" && ip link set "sv${n}${i}h" master "$br" && ip link set "sv${n}${i}h" up &&
    ip netns exec "${ns[$i]}" ip addr add "$net.1$i/24" dev "sv${n}$i" &&
    ip netns exec "${ns[$i]}" ip link set "sv${n}$i" up && ip netns exec "${ns[$i]}" ip link set lo up || fail "namespace $i setup"
done
cat > agent.sh <<AGENT
#!/bin/bash
# mpirun's rsh agent: "HOST COMMAND..." runs COMMAND in HOST's namespace.
host=\$1; shift
case "\$host" in $net.10) x=${ns[0]} ;; $net.11) x=${ns[1]} ;; *) echo "unknown host \$host" >&2; exit 1 ;; esac
# One host name for both "nodes": each daemon keeps its session files in a directory of its own.
mkdir -p "$PWD/tmp-\$x"
exec ip netns exec "\$x" env OMPI_MCA_orte_tmpdir_base="$PWD/tmp-\$x" /bin/sh -c "\$*"
AGENT
chmod +x agent.sh
printf '%s slots=1\n%s slots=1\n' "$net.10" "$net.11" > hosts
nodes=(--hostfile hosts --mca plm_rsh_agent "$PWD/agent.sh" --mca oob_tcp_if_include "$net.0/24"
  --mca btl_tcp_if_include "$net.0/24" --mca pml ob1 --mca btl self,tcp)
out=$("$mpirun" -np 2 "${nodes[@]}" "$bin" comm check --bytes 65536 2>&1) || fail "comm check: $out"
echo "$out" | grep -q "local rank 0 of 1" || fail "the ranks did not start on two nodes: $out"
echo "$out" | grep -q "collectives: .* ok" || fail "comm check: $out"
synth
"$mpirun" -np 2 "${nodes[@]}" "$bin" train "${small_train_flags[@]}" --run-dir "$PWD/run-nodes" > run-nodes.log 2>&1 ||
  fail "train across namespaces: $(tail -5 run-nodes.log)"
"$mpirun" -np 2 "$bin" train "${small_train_flags[@]}" --run-dir "$PWD/run-shm" > run-shm.log 2>&1 || fail "train: $(tail -5 run-shm.log)"
same_losses "$PWD/run-nodes" "$PWD/run-shm" "across namespaces against shared memory"
echo "mpi netns: 2 ranks in 2 network namespaces over TCP, $logged logged losses equal shared memory's bitwise"
