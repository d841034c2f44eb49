#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, to try profiles/slurm and to test it (tests/test_slurm.py).
#
#   scripts/slurm-local.sh start    install (Debian's slurm-wlm and munge) if missing, configure, start, wait
#   scripts/slurm-local.sh stop     stop the daemons this script started (by their PID files)
#   scripts/slurm-local.sh status   sinfo, or exit 1 when the cluster is down
#
# Idempotent: `start` on a running cluster only checks it. Two partitions, `short` (default, CPU jobs) and
# `accel` (GPU jobs), both on this node, which declares 4 GPUs as a generic resource (GRES `gpu:h100:4`) so the
# profile's GPU requests schedule; the jobs themselves find no CUDA device and run on CPU. No accounting daemon:
# the profile polls with squeue, and MinJobAge keeps finished jobs visible to it. Must run as root.
set -euo pipefail
STATE=${T2_SLURM_STATE:-/var/tmp/t2scaling-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by t2scaling scripts/slurm-local.sh"

log() { echo "slurm-local: $*" >&2; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return
    log "installing slurm-wlm and munge from Debian packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        log "$CONF exists and was not written by this script; refusing to overwrite a real cluster's config"
        exit 1
    fi
    local node cpus mem_mb
    node=$(hostname -s)
    # At least 8 CPUs declared (SlurmdParameters=config_overrides): jobs ask for up to training.threads and the
    # profile's 4 evaluation threads, as on a real node; on a 2-core machine they share its cores.
    cpus=$(( $(nproc) > 8 ? $(nproc) : 8 ))
    # Leave 10% of the memory to the system, as a site would.
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
    cat >"$CONF" <<EOF
$MARK
ClusterName=t2local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
MpiDefault=none
SlurmdParameters=config_overrides
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:h100:4 State=UNKNOWN
PartitionName=short Nodes=$node Default=YES MaxTime=1-00:00:00 State=UP
PartitionName=accel Nodes=$node MaxTime=1-00:00:00 State=UP
EOF
    # The GPU plugin counts devices by file; plain files stand in for /dev/nvidia*.
    touch "$STATE"/gpu0 "$STATE"/gpu1 "$STATE"/gpu2 "$STATE"/gpu3
    cat >/etc/slurm/gres.conf <<EOF
$MARK
NodeName=$node Name=gpu Type=h100 File=$STATE/gpu[0-3]
EOF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    [ "$(id -u)" = 0 ] || { log "run as root (it installs packages and starts daemons)"; exit 1; }
    install
    configure
    if ! running /run/munge/munged.pid; then
        [ -f /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        runuser -u munge -- /usr/sbin/munged
        log "munged started"
    fi
    if ! running "$STATE/slurmctld.pid"; then
        /usr/sbin/slurmctld
        log "slurmctld started (log: $STATE/slurmctld.log)"
    else
        scontrol reconfigure  # a running cluster picks up the config written above
    fi
    if ! running "$STATE/slurmd.pid"; then
        /usr/sbin/slurmd
        log "slurmd started (log: $STATE/slurmd.log)"
    fi
    local state
    for _ in $(seq 60); do
        state=$(sinfo --noheader --format=%t --nodes="$(hostname -s)" 2>/dev/null | head -1)
        case "$state" in
            idle | mix | alloc) sinfo; return ;;
            drain | drng | inval) scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    log "the node did not come up within 60 s; see $STATE/slurmctld.log and $STATE/slurmd.log"
    sinfo || true
    exit 1
}

stop() {
    local pidfile
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
        if running "$pidfile"; then
            kill "$(cat "$pidfile")"
            log "stopped $(basename "$pidfile" .pid)"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
