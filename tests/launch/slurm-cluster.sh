#!/usr/bin/env bash
# A one-node SLURM cluster for the launch tests (Debian slurm-wlm + munge, as root, no
# systemd, no cgroups; see /work/shared/infra.md).
#   tests/launch/slurm-cluster.sh start   write slurm.conf (unless a foreign one exists), start
#                                         munged, slurmctld, slurmd if not running; wait for the node
#   tests/launch/slurm-cluster.sh stop    stop only the daemons this script started
# sacct is not available (no slurmdbd): the launcher copes without it.
set -euo pipefail
STATE=/run/conscience-slurm-test
CONF=/etc/slurm/slurm.conf
MARK='# written by chain-of-conscience tests/launch/slurm-cluster.sh'
cmd=${1:-}

running() { pgrep -x "$1" >/dev/null 2>&1; }
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
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  if [[ ! -f $CONF ]] || grep -qF "$MARK" "$CONF"; then
    cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$h
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
KillWait=5
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$h CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$h Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  fi
  if [[ ! -f /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
    chmod 600 /etc/munge/munge.key
  fi
  chown -R munge:munge /run/munge /etc/munge /var/lib/munge /var/log/munge
  # record the pid of each daemon we start (from its pid file) so stop ends exactly those
  if ! running munged; then su -s /bin/sh munge -c /usr/sbin/munged && remember munged /run/munge/munged.pid; fi
  if ! running slurmctld; then slurmctld && remember slurmctld /run/slurmctld.pid; fi
  if ! running slurmd; then slurmd && remember slurmd /run/slurmd.pid; fi
  for _ in $(seq 1 60); do
    st=$(sinfo -h -o %t 2>/dev/null | head -n1 || true)
    case "$st" in idle|mix|alloc|comp) echo "slurm: node $st"; exit 0 ;; down*|drain*) scontrol update nodename="$h" state=resume >/dev/null 2>&1 || true ;; esac
    sleep 1
  done
  echo "slurm-cluster.sh: the node did not become idle (sinfo: $(sinfo 2>&1 | tail -n +2)); see /var/log/slurm/" >&2
  exit 1
}

stop() {
  for d in slurmd slurmctld munged; do
    if [[ -f $STATE/$d.pid ]]; then
      kill "$(cat "$STATE/$d.pid")" 2>/dev/null || true
      rm -f "$STATE/$d.pid"
    fi
  done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
