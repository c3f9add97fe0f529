#!/usr/bin/env bash
# Command round trip against an echo client on the same broker (issue 24).
#
#   bench/latency.sh                      both state-dir placements, N=500
#
# A mosquitto on 127.0.0.1 with `set_tcp_nodelay true`, a real agent (BIN,
# release build) and the echo client of examples/rtt.rs (RTT_BIN). rtt
# sends N `agent get` commands to the agent and N echo requests, interleaved
# in one run, and prints p50/p90/p99 of both and the ratio.
#
# A command that changes something is journalled before it runs and its
# answer stored before it is published (docs/PROTOCOL.md "Commands"); a
# read-only one such as `agent get` is not, so its round trip carries no
# fsync (agents before issue 24's second round journalled it too). The run
# is made twice: state_dir on the disk (what a router's flash does) and on
# tmpfs (/dev/shm). RTT_ARGS='--command sh --body {"shcmd":"true"}'
# measures a journalled command instead (two fsyncs of the journal).
#
# Env: BIN (default dist/x86_64-unknown-linux-musl/dma-agent), RTT_BIN
#      (default: built with cargo build --release --example rtt), N (500),
#      STATES ("disk shm"), LOG_LEVEL (the agent's log_level; default info:
#      a line per command into the agent's log file), OUT (bench/results/latency-<date>.md; "-" for
#      stdout only), KEEP=1 keeps the work dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-500}
STATES=${STATES:-"disk shm"}
log() { printf '[latency] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

BIN=${BIN:-$ROOT/dist/x86_64-unknown-linux-musl/dma-agent}
[ -x "$BIN" ] || die "no agent binary $BIN: cross/build.sh x86_64-unknown-linux-musl (or set BIN)"
if [ -z "${RTT_BIN:-}" ]; then
    for b in target/release/examples/rtt target/x86_64-unknown-linux-musl/release/examples/rtt; do
        [ -x "$b" ] && RTT_BIN=$ROOT/$b && break
    done
fi
if [ -z "${RTT_BIN:-}" ]; then
    log "building examples/rtt (release)"
    cargo build -q --release --example rtt >&2
    RTT_BIN=$ROOT/target/release/examples/rtt
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    local i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

WORK=$(mktemp -d /tmp/latency.XXXXXX)
SHM=$(mktemp -d /dev/shm/latency.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$SHM"
    if [ "${KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n' "$PORT" >"$WORK/mosquitto.conf"
[ "$(id -u)" = 0 ] && printf 'user root\n' >>"$WORK/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_port "$PORT" || die "mosquitto did not start"
echo bench-boot-0 >"$WORK/boot_id"

OUT=${OUT:-bench/results/latency-$(date -u +%Y-%m-%d).md}
report() { if [ "$OUT" = - ]; then cat; else tee -a "$OUT"; fi; }
{
    echo "## Command round trip vs an echo client ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "agent: \`$("$BIN" --version 2>/dev/null | head -1)\` ($BIN); mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') with set_tcp_nodelay true, plain TCP on 127.0.0.1; host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
} | report

sn=5A00000000B0
for st in $STATES; do
    case "$st" in
        disk) sd=$WORK/state-$sn ;;
        shm) sd=$SHM/state-$sn ;;
        *) die "unknown state placement $st (disk, shm)" ;;
    esac
    mkdir -p "$sd"
    conf=$WORK/$sn.conf
    {
        printf "config agent 'agent'\n\toption sn '%s'\n\toption broker_host '127.0.0.1'\n\toption broker_port '%s'\n" "$sn" "$PORT"
        printf "\toption tls '0'\n\toption state_dir '%s'\n\toption boot_id_file '%s/boot_id'\n" "$sd" "$WORK"
        printf "\toption sys_interval '3600'\n\toption procs_interval '3600'\n\toption periph_interval '3600'\n"
        [ -z "${LOG_LEVEL:-}" ] || printf "\toption log_level '%s'\n" "$LOG_LEVEL"
    } >"$conf"
    "$BIN" --config "$conf" >"$WORK/agent-$sn.log" 2>&1 &
    apid=$!
    PIDS+=("$apid")
    sleep 2
    kill -0 "$apid" 2>/dev/null || die "agent exited: $(cat "$WORK/agent-$sn.log")"
    {
        echo "### state_dir on $st ($(df -T "$sd" | awk 'NR==2 {print $2}'))"
        echo
        # shellcheck disable=SC2086
        "$RTT_BIN" --port "$PORT" --sn "$sn" --n "$N" ${RTT_ARGS:-}
        echo
    } | report
    kill "$apid" 2>/dev/null || true
    wait "$apid" 2>/dev/null || true
    sn=$(printf '5A00000000B%X' $(( 0x${sn: -1} + 1 )))
done
