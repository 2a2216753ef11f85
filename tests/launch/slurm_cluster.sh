#!/bin/bash
# A one-machine SLURM cluster for the tests (docs/operations.md, "SLURM"): munged, slurmctld and
# slurmd with a generated configuration (one node, this machine's CPUs, 127.0.0.1 only), all state
# under one directory. Installs slurm-wlm and munge from Debian when they are missing (root).
#   source tests/launch/slurm_cluster.sh
#   slurm_start DIR    # starts the three services; exports SLURM_CONF; their PIDs in DIR/pids
#   slurm_stop         # cancels the jobs, waits for them to end, stops the services by those PIDs
# Jobs run as root: the services are started as root with SlurmUser=root. slurm_start returns 77
# (a test's "skipped") when this is not root.

slurm_install() {
  command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v munged > /dev/null && return 0
  echo "slurm_cluster: installing slurm-wlm and munge" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge > /dev/null
}

# A TCP port nobody listens on (from the kernel's ephemeral range).
slurm_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_start() {
  local d=$1
  if [ "$(id -u)" != 0 ]; then
    echo "slurm_cluster: skipped: the test cluster runs its services and jobs as root" >&2
    return 77
  fi
  slurm_install || return 1
  SLURM_DIR=$d
  mkdir -p "$d"/{munge,state,spool,log} && chmod 711 "$d/munge" || return 1
  : > "$d/pids"
  # munge: a private key, socket and daemon.
  dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none && chmod 400 "$d/munge/munge.key"
  munged --foreground --force --key-file="$d/munge/munge.key" --socket="$d/munge/munge.socket" \
    --pid-file="$d/munge/munged.pid" --seed-file="$d/munge/seed" > "$d/log/munged.log" 2>&1 &
  echo "$! munged" >> "$d/pids"
  local host ctl_port d_port cpus mem
  host=$(hostname -s)
  ctl_port=$(slurm_free_port) d_port=$(slurm_free_port)
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(slurm_free_port); done
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  cat > "$d/slurm.conf" <<CONF
ClusterName=shardrec-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SwitchType=switch/none
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF=$d/slurm.conf

  for _ in $(seq 50); do [ -S "$d/munge/munge.socket" ] && break; sleep 0.1; done
  slurmctld -D -i -f "$SLURM_CONF" > "$d/log/slurmctld.out" 2>&1 &
  echo "$! slurmctld" >> "$d/pids"
  slurmd -D -f "$SLURM_CONF" -N "$host" > "$d/log/slurmd.out" 2>&1 &
  echo "$! slurmd" >> "$d/pids"
  # Up when the node takes jobs.
  for _ in $(seq 120); do
    if sinfo -h -N -o '%T' 2> /dev/null | grep -qE '^(idle|mixed|allocated)'; then return 0; fi
    sleep 0.5
  done
  echo "slurm_cluster: the node did not come up; logs:" >&2
  tail -20 "$d/log/slurmctld.log" "$d/log/slurmd.log" "$d/log/slurmctld.out" "$d/log/slurmd.out" >&2
  return 1
}

slurm_stop() {
  [ -n "${SLURM_DIR:-}" ] && [ -f "$SLURM_DIR/pids" ] || return 0
  local pid
  # Jobs first, waiting until none is left (their steps run under slurmstepd, which slurmd detaches),
  # then the services, newest first.
  scancel --full --quiet --user=root 2> /dev/null
  for _ in $(seq 120); do
    [ -z "$(squeue -h -o %i 2> /dev/null)" ] && break
    sleep 0.5
  done
  tac "$SLURM_DIR/pids" | while read -r pid _; do kill "$pid" 2> /dev/null; done
  for _ in $(seq 50); do
    local alive=0
    while read -r pid _; do kill -0 "$pid" 2> /dev/null && alive=1; done < "$SLURM_DIR/pids"
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  while read -r pid _; do kill -9 "$pid" 2> /dev/null; done < "$SLURM_DIR/pids"
  : > "$SLURM_DIR/pids"
}
