#!/usr/bin/env bash
# A real single-node SLURM on this machine, for testing `cbecsim sweep --cluster slurm`.
#
#   scripts/slurm_single_node.sh start    # install (Debian, root) if needed, configure, start; wait for "idle"
#   scripts/slurm_single_node.sh status   # sinfo
#   scripts/slurm_single_node.sh stop     # stop slurmd, slurmctld and munged (by their pids)
#
# Follows ../shared/RECIPES.md: munge auth, proctrack/linuxproc and task/none (cgroups do
# not work in this sandbox), one node named after `hostname` with `nproc` CPUs, one
# partition "debug". Needs root. Idempotent: "start" on a running cluster only checks it.
set -euo pipefail

HOST="$(hostname)"
CPUS="$(nproc)"
# RealMemory in MB, leaving 1 GiB for the system (dask-jobqueue asks for --mem).
MEM_MB="$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 1024 ))"
CONF=/etc/slurm/slurm.conf

install() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge
    fi
}

configure() {
    mkdir -p /etc/munge /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
    [ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown -R munge:munge /etc/munge /run/munge
    chmod 400 /etc/munge/munge.key
    cat > "$CONF" <<CONF
ClusterName=local
SlurmctldHost=${HOST}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
NodeName=${HOST} CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
CONF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    install
    configure
    if ! pgrep -u munge -x munged >/dev/null; then
        su munge -s /bin/sh -c /usr/sbin/munged
    fi
    running /run/slurmctld.pid || /usr/sbin/slurmctld
    running /run/slurmd.pid || /usr/sbin/slurmd
    for _ in $(seq 60); do
        state="$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)"
        case "$state" in
            idle|mixed|allocated) sinfo; return 0 ;;
            down*|drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    echo "slurm_single_node.sh: node did not become idle; see /var/log/slurm/*.log" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        running "$pidfile" && kill "$(cat "$pidfile")" || true
    done
    if [ -f /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
