#!/usr/bin/env bash
# A two-node SLURM cluster on this one machine for the launch tests (Debian slurm-wlm + munge,
# as root, no systemd, no cgroups; see /work/shared/infra.md): SLURM's multiple-slurmd mode,
# two slurmd (nodes n1 and n2, one port each, both at 127.0.0.1) behind one slurmctld, each
# node declaring 2 GPUs as generic resources whose files are stand-ins for /dev/nvidia* (no GPU here).
#   tests/launch/slurm-cluster.sh start   write slurm.conf + gres.conf (unless foreign ones exist),
#                                         start munged, slurmctld, both slurmd if not running;
#                                         wait until both nodes are idle
#   tests/launch/slurm-cluster.sh stop    stop only the daemons this script started
# sacct is not available (no slurmdbd): the launcher copes without it.
set -euo pipefail
STATE=/run/conscience-slurm-test
CONF=/etc/slurm/slurm.conf
MARK='# written by chain-of-conscience tests/launch/slurm-cluster.sh'
cmd=${1:-}

# a live (non-zombie) process of that name: a daemon stopped here may stay a zombie when
# nothing reaps it in a container
running() { ps -C "$1" -o stat= 2>/dev/null | grep -q '^[^Z]'; }
remember() {
  for _ in $(seq 1 50); do [[ -s $2 ]] && break; sleep 0.1; done
  cp "$2" "$STATE/$1.pid"
}

start() {
  [[ $(id -u) == 0 ]] || { echo "slurm-cluster.sh: must run as root" >&2; exit 1; }
  for b in munged slurmctld slurmd sbatch; do command -v "$b" >/dev/null || { echo "slurm-cluster.sh: $b missing (scripts/setup.sh installs slurm-wlm and munge)" >&2; exit 1; }; done
  mkdir -p "$STATE" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge /etc/slurm
  local h cpus mem
  h=$(hostname -s)
  cpus=$(nproc)
  # two nodes share this machine's memory; a node declaring more than the machine has is drained
  mem=$(( ($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512) / 2 ))
  if [[ ! -f $CONF ]] || grep -qF "$MARK" "$CONF"; then
    cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$h
AuthType=auth/munge
# a requeued job waits cred_expire + 1 s before it may start again (default 120 s)
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmdPidFile=/run/slurmd.%n.pid
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.%n.log
NodeName=n1 NodeHostname=$h NodeAddr=127.0.0.1 Port=17001 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
NodeName=n2 NodeHostname=$h NodeAddr=127.0.0.1 Port=17002 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    # 22.05 drops a GPU without File= ("Removing file-less GPU"): each node's two "GPUs" are
    # character devices that are /dev/null (no cgroup constrains devices here)
    printf '%s\nName=gpu File=%s/gpu[0-1]\n' "$MARK" "$STATE" > /etc/slurm/gres.conf
  fi
  mkdir -p /var/spool/slurmd/n1 /var/spool/slurmd/n2
  for g in 0 1; do [[ -c $STATE/gpu$g ]] || mknod "$STATE/gpu$g" c 1 3; done
  if [[ ! -f /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    chmod 600 /etc/munge/munge.key
  fi
  chown -R munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge
  # record the pid of each daemon we start (from its pid file) so stop ends exactly those
  if ! running munged; then su -s /bin/sh munge -c /usr/sbin/munged && remember munged /run/munge/munged.pid; fi
  if ! running slurmctld; then slurmctld && remember slurmctld /run/slurmctld.pid; fi
  for n in n1 n2; do
    if ! { [[ -f /run/slurmd.$n.pid ]] && ps -o stat= -p "$(cat /run/slurmd.$n.pid)" 2>/dev/null | grep -q '^[^Z]'; }; then
      slurmd -N "$n" && remember "slurmd.$n" "/run/slurmd.$n.pid"
    fi
  done
  for _ in $(seq 1 60); do
    st=$(timeout 5 sinfo -h -N -o '%N %t' 2>/dev/null || true)
    if [[ $(grep -cE ' (idle|mix|alloc|comp)$' <<<"$st") == 2 ]]; then echo "slurm: $(tr '\n' ' ' <<<"$st")"; exit 0; fi
    while read -r n t; do case "$t" in down*|drain*) scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true ;; esac; done <<<"$st"
    sleep 1
  done
  echo "slurm-cluster.sh: the nodes did not become idle (sinfo: $(sinfo -N 2>&1 | tail -n +2)); see /var/log/slurm/" >&2
  exit 1
}

stop() {
  for d in slurmd.n1 slurmd.n2 slurmctld munged; do
    if [[ -f $STATE/$d.pid ]]; then
      local pid
      pid=$(cat "$STATE/$d.pid")
      kill "$pid" 2>/dev/null || true
      # wait for it to be gone (a zombie counts as gone): a start right after a stop must not
      # find a daemon still shutting down and skip starting it
      for _ in $(seq 1 100); do ps -o stat= -p "$pid" 2>/dev/null | grep -q '^[^Z]' || break; sleep 0.1; done
      rm -f "$STATE/$d.pid"
    fi
  done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
