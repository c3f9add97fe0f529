#!/usr/bin/env bash
# Footprint benchmark: every figure of issue 11 in one run.
#
#   bench/footprint.sh [all|sizes|soak|idle|sms]...      default: all
#
# sizes  stripped size of dist/<target>/dma-agent per target (SIZE_TARGETS,
#        default armv7, mipsel, x86_64; build them with cross/build.sh) and the
#        hello-world baseline of cross/hello for the native target.
# soak   the agent (BIN) with MQTT over TLS to a mosquitto on 127.0.0.1, four
#        simulated LAN devices (dma-sim) polled every POLL s, the SMS receiver
#        on, for SOAK_MIN minutes: RSS every minute, steady RSS at the end,
#        growth from minute GROWTH_FROM to the end, threads, the RSS breakdown
#        (/proc/PID/smaps_rollup, heap, per-thread stacks) and a hello-world's
#        RSS as the floor.
# idle   the agent with no LAN devices and reports every 60 s, two windows of IDLE_SEC:
#        CPU % of one core (utime+stime from /proc/PID/stat) and wake-ups/s
#        (voluntary+involuntary context switches summed over every thread).
# sms    push SMS_N SMS (one per request, as the GoIP does) to the receiver
#        and time them until the platform has every `sms-received` event.
#
# Env: BIN (default dist/x86_64-unknown-linux-musl/dma-agent, else
#      target/release/dma-agent), SIM_BIN (dma-sim; built with -p dma-sims
#      if missing), SOAK_MIN (10), POLL (5), GROWTH_FROM (5, or 1 for soaks
#      under 6 min), IDLE_SEC (60), SMS_N (1000), STATE_ROOT (the state
#      dirs' parent; default the work dir), KEEP=1 keeps the work dir.
# Examples: SOAK_MIN=2 bench/footprint.sh soak idle
#           SOAK_MIN=60 POLL=1 bench/footprint.sh soak     (the growth row)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SOAK_MIN=${SOAK_MIN:-10}
POLL=${POLL:-5}
GROWTH_FROM=${GROWTH_FROM:-$([ "$SOAK_MIN" -ge 6 ] && echo 5 || echo 1)}
IDLE_SEC=${IDLE_SEC:-60}
SMS_N=${SMS_N:-1000}
SIZE_TARGETS=${SIZE_TARGETS:-"armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl x86_64-unknown-linux-musl"}

say() { printf '%s\n' "$*"; }
log() { printf '[footprint] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pick_bin() {
    if [ -n "${BIN:-}" ]; then echo "$BIN"; return; fi
    for b in dist/x86_64-unknown-linux-musl/dma-agent target/release/dma-agent; do
        [ -x "$b" ] && { echo "$ROOT/$b"; return; }
    done
    die "no agent binary: cross/build.sh x86_64-unknown-linux-musl (or set BIN)"
}

pick_sim() {
    if [ -n "${SIM_BIN:-}" ]; then echo "$SIM_BIN"; return; fi
    for b in target/release/dma-sim target/debug/dma-sim; do
        [ -x "$b" ] && { echo "$ROOT/$b"; return; }
    done
    log "building dma-sim"
    cargo build -q -p dma-sims --bin dma-sim >&2
    echo "$ROOT/target/debug/dma-sim"
}

# The operator CLI (host build of dma-ctl; CTL_BIN to use another).
pick_ctl() {
    if [ -n "${CTL_BIN:-}" ]; then echo "$CTL_BIN"; return; fi
    for b in target/release/dma-ctl target/debug/dma-ctl; do
        [ -x "$b" ] && { echo "$ROOT/$b"; return; }
    done
    log "building dma-ctl"
    cargo build -q -p dma-ctl --bin dma-ctl >&2
    echo "$ROOT/target/debug/dma-ctl"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

WORK=$(mktemp -d /tmp/footprint.XXXXXX)
# The agents' state dirs (journal, event queue, seen set): on the disk by
# default, like a router's flash; STATE_ROOT=/dev/shm/... takes fsync out.
STATE_ROOT=${STATE_ROOT:-$WORK}
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---- sizes -------------------------------------------------------------------
hello_size() {
    # shellcheck source=cross/measure.sh
    (. "$ROOT/cross/measure.sh" && stat -c %s "$(hello_bin "$1")") 2>/dev/null || echo "?"
}

cmd_sizes() {
    say "### Stripped binary sizes (release profile, TLS on)"
    say
    say "| target | dma-agent (B) | hello-world (B) |"
    say "|---|---:|---:|"
    local t
    for t in $SIZE_TARGETS; do
        local b="dist/$t/dma-agent" s="not built" h="?"
        [ -f "$b" ] && s=$(stat -c %s "$b")
        [ "$t" = x86_64-unknown-linux-musl ] && h=$(hello_size "$t")
        say "| $t | $s | $h |"
    done
    say
}

# ---- the rig: TLS broker, simulators, agent ----------------------------------
make_certs() {
    local d=$WORK/pki
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
            -days 2 -subj /CN=bench-ca 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
            -subj /CN=localhost 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
            -extfile ext.cnf 2>/dev/null
    )
}

start_broker() {
    BROKER_PORT=$(free_port)
    PLAIN_PORT=$(free_port)
    local d=$WORK/pki
    # A plain listener too, for the idle figure without TLS; the TLS
    # settings after the second listener line apply to it alone.
    printf 'user root\nallow_anonymous true\nset_tcp_nodelay true\nlistener %s 127.0.0.1\nlistener %s 127.0.0.1\ncafile %s/ca.pem\ncertfile %s/server.pem\nkeyfile %s/server.key\n' \
        "$PLAIN_PORT" "$BROKER_PORT" "$d" "$d" "$d" >"$WORK/mosquitto.conf"
    local m
    m=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    "$m" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    PIDS+=($!)
    wait_port "$BROKER_PORT" || die "mosquitto did not start"
    wait_port "$PLAIN_PORT" || die "mosquitto's plain listener did not start"
}

start_sims() {
    "$SIM" all >"$WORK/sims.conf" 2>"$WORK/sims.log" &
    PIDS+=($!)
    local i
    for i in $(seq 1 100); do
        [ "$(grep -c '^config device' "$WORK/sims.conf" 2>/dev/null)" = 4 ] && return 0
        sleep 0.1
    done
    die "dma-sim did not start: $(cat "$WORK/sims.log")"
}

# write_config NAME SN DEVICES(0: none, 1: all four, goip: the GoIP only) SMS_PORT(or empty)
write_config() {
    local name=$1 sn=$2 devices=$3 rx=$4 f=$WORK/$1.conf
    mkdir -p "$STATE_ROOT/$name-state"
    {
        if [ "${PLAIN:-0}" = 1 ]; then
            printf "config agent 'agent'\n\toption sn '%s'\n\toption broker_host 'localhost'\n\toption broker_port '%s'\n" "$sn" "$PLAIN_PORT"
            printf "\toption tls '0'\n\toption state_dir '%s/%s-state'\n" "$STATE_ROOT" "$name"
        else
            printf "config agent 'agent'\n\toption sn '%s'\n\toption broker_host 'localhost'\n\toption broker_port '%s'\n" "$sn" "$BROKER_PORT"
            printf "\toption tls '1'\n\toption ca_file '%s/pki/ca.pem'\n\toption state_dir '%s/%s-state'\n" "$WORK" "$STATE_ROOT" "$name"
        fi
        printf "\toption sys_interval '60'\n\toption procs_interval '60'\n\toption periph_interval '300'\n"
        printf "\toption boot_id_file '%s/boot_id'\n\n" "$WORK"
        if [ "$devices" = 1 ]; then
            sed "s/^config device.*/&\n\toption poll_interval '$POLL'/" "$WORK/sims.conf"
        elif [ "$devices" = goip ]; then
            awk '/^config device/ {on = ($0 ~ /goip/)} on' "$WORK/sims.conf"
        fi
        if [ -n "$rx" ]; then
            printf "config sms_receiver\n\toption enabled '1'\n\toption listen '127.0.0.1:%s'\n\toption rate '100000'\n" "$rx"
            printf "\toption reconcile_interval '3600'\n\n"
        fi
    } >"$f"
    echo "$f"
}

start_agent() {
    local conf=$1 log=$2
    "$AGENT" --config "$conf" >"$log" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
    sleep 0.5
    kill -0 "$AGENT_PID" 2>/dev/null || die "agent exited: $(cat "$log")"
}

rig() {
    [ -f "$WORK/pki/ca.pem" ] && return
    echo "bench-boot-0" >"$WORK/boot_id"
    make_certs
    start_broker
}

# ---- /proc readers -----------------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
# utime+stime in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ctxt_sum() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'; }

# RSS breakdown: smaps_rollup, the largest mappings, and each thread's stack
# counted page by page (bench/rss.py).
breakdown() {
    local pid=$1
    say "#### RSS breakdown (pid $pid, $(threads "$pid") threads)"
    say
    say '```'
    grep -E '^(Rss|Pss|Pss_Anon|Pss_File|Anonymous|Private_Dirty|Shared_Clean|Private_Clean):' "/proc/$pid/smaps_rollup"
    say '```'
    say
    say "| mapping | RSS (KiB) | what |"
    say "|---|---:|---|"
    awk '
        /^[0-9a-f]+-[0-9a-f]+ / { range=$1; perm=$2; path=$6; if (path == "") path="[anon]" }
        /^Rss:/ { if ($2 > 0) printf "%s %s %s %d\n", range, perm, path, $2 }
    ' "/proc/$pid/smaps" | sort -k4 -n -r | head -8 | while read -r range perm path kb; do
        local what=""
        case "$path" in
            "$AGENT") case "$perm" in r-x*) what="code (text)";; r--*) what="read-only data";; *) what="data/bss";; esac ;;
            "[heap]") what="heap (brk)";;
            "[stack]") what="main thread stack";;
            "[anon]") what="anonymous: mmap'd heap chunks or a thread stack";;
        esac
        say "| $range $perm $path | $kb | $what |"
    done
    say
    python3 "$ROOT/bench/rss.py" "$pid" || say "(bench/rss.py could not read /proc/$pid/pagemap)"
    say
}

# ---- soak --------------------------------------------------------------------
cmd_soak() {
    rig
    [ -s "$WORK/sims.conf" ] || start_sims
    local rx conf
    rx=$(free_port)
    conf=$(write_config soak 5A0000000001 1 "$rx")
    start_agent "$conf" "$WORK/soak.log"
    local pid=$AGENT_PID m rss first="" at_from=""
    log "soak: $SOAK_MIN min, poll every $POLL s, agent pid $pid ($AGENT)"
    say "### Soak: TLS to mosquitto, four simulated LAN devices polled every $POLL s, SMS receiver on, $SOAK_MIN min"
    say
    say "| minute | RSS (KiB) | threads |"
    say "|---:|---:|---:|"
    for m in $(seq 1 "$SOAK_MIN"); do
        sleep 60
        kill -0 "$pid" 2>/dev/null || die "agent died during the soak: $(tail -20 "$WORK/soak.log")"
        rss=$(rss_kb "$pid")
        [ -z "$first" ] && first=$rss
        [ "$m" = "$GROWTH_FROM" ] && at_from=$rss
        say "| $m | $rss | $(threads "$pid") |"
    done
    say
    local peak errors
    peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    errors=$(grep -ci 'offline\|error' "$WORK/soak.log" || true)
    say "steady RSS after $SOAK_MIN min: **$rss KiB** (peak $peak KiB, $(threads "$pid") threads);" \
        "growth minute $GROWTH_FROM → $SOAK_MIN: **$((rss - ${at_from:-$rss})) KiB**;" \
        "agent log lines with error/offline: $errors"
    say
    breakdown "$pid"
    local hello hrss
    hello=$( (. "$ROOT/cross/measure.sh" && hello_bin x86_64-unknown-linux-musl) 2>/dev/null || true)
    if [ -x "$hello" ]; then
        hrss=$( (. "$ROOT/cross/measure.sh" && peak_rss_kb "$hello") 2>/dev/null || echo "?")
        say "hello-world (x86_64 musl, static) peak RSS: $hrss KiB"
        say
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ---- idle --------------------------------------------------------------------
# Context switches of each thread (voluntary + involuntary), "tid comm count" lines.
per_thread_ctxt() {
    local pid=$1 tid
    for tid in $(ls "/proc/$pid/task"); do
        printf '%s %s %s\n' "$tid" "$(tr ' ' _ <"/proc/$pid/task/$tid/comm" 2>/dev/null)" \
            "$(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "/proc/$pid/task/$tid/status" 2>/dev/null)"
    done
}

cmd_idle() {
    idle_run TLS
    PLAIN=1 idle_run "no TLS"
}

# idle_run LABEL: one idle measurement (PLAIN=1: the broker's plain listener),
# in two windows of IDLE_SEC: from 10 s after start (connected, first
# reports out; the code pages are given back 60 s after start, inside it)
# and the one after it (steady idle: what every later hour looks like,
# but for the hourly release).
idle_run() {
    rig
    local label=$1 conf pid hz t0 t1 t2 s0 s1 s2 rss0 rss1 rss2
    conf=$(write_config "idle${PLAIN:-0}" 5A0000000002 0 "")
    start_agent "$conf" "$WORK/idle.log"
    pid=$AGENT_PID
    sleep 10
    hz=$(getconf CLK_TCK)
    per_thread_ctxt "$pid" >"$WORK/ctxt0"; t0=$(cpu_ticks "$pid"); s0=$(date +%s.%N); rss0=$(rss_kb "$pid")
    sleep "$IDLE_SEC"
    per_thread_ctxt "$pid" >"$WORK/ctxt1"; t1=$(cpu_ticks "$pid"); s1=$(date +%s.%N); rss1=$(rss_kb "$pid")
    sleep "$IDLE_SEC"
    per_thread_ctxt "$pid" >"$WORK/ctxt2"; t2=$(cpu_ticks "$pid"); s2=$(date +%s.%N); rss2=$(rss_kb "$pid")
    local w1=$((IDLE_SEC + 10)) w2=$((2 * IDLE_SEC + 10))
    say "### Idle, $label: no LAN devices, reports every 60 s, two windows of ${IDLE_SEC} s"
    say
    say "| window | CPU (% of a core) | wake-ups /s | context switches | RSS at its end (KiB) |"
    say "|---|---:|---:|---:|---:|"
    window_row "10 → $w1 s after start (the code pages given back at 60 s)" "$WORK/ctxt0" "$WORK/ctxt1" "$t0" "$t1" "$s0" "$s1" "$hz" "$rss1"
    window_row "$w1 → $w2 s (steady idle)" "$WORK/ctxt1" "$WORK/ctxt2" "$t1" "$t2" "$s1" "$s2" "$hz" "$rss2"
    say
    say "RSS 10 s after start: $rss0 KiB; $(threads "$pid") threads. CPU resolution: 1 tick of 1/$hz s in ${IDLE_SEC} s = $(awk -v h="$hz" -v d="$IDLE_SEC" 'BEGIN {printf "%.3f", 100 / h / d}') %."
    say
    say "| thread | context switches, first window | second window |"
    say "|---|---:|---:|"
    awk 'FILENAME == ARGV[1] {a[$1] = $3; next} FILENAME == ARGV[2] {b[$1] = $3; next} {printf "| %s | %d | %d |\n", $2, b[$1] - a[$1], $3 - b[$1]}' \
        "$WORK/ctxt0" "$WORK/ctxt1" "$WORK/ctxt2"
    say
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# window_row LABEL CTXT_BEFORE CTXT_AFTER TICKS0 TICKS1 SECS0 SECS1 HZ RSS: one row of the idle table.
window_row() {
    local c
    c=$(awk 'NR == FNR {b[$1] = $3; next} {s += $3 - b[$1]} END {print s}' "$2" "$3")
    awk -v l="$1" -v c="$c" -v t="$(($5 - $4))" -v s0="$6" -v s1="$7" -v hz="$8" -v rss="$9" 'BEGIN {
        d = s1 - s0
        printf "| %s | **%.3f** (%d ticks) | **%.2f** | %d | %d |\n", l, 100 * t / hz / d, t, c / d, c, rss }'
}

# ---- sms throughput ----------------------------------------------------------
# sms_run BATCH FIRST: push SMS_N SMS, BATCH per request, numbered from FIRST;
# print the rate at which their events reached the platform.
sms_run() {
    local batch=$1 first=$2 out=$WORK/sms-events-$1 t0 t1 got ctl
    "$(pick_ctl)" --host localhost --port "$BROKER_PORT" --tls --ca "$WORK/pki/ca.pem" --json watch "$SMS_SN" >"$out" 2>/dev/null &
    ctl=$!
    PIDS+=("$ctl")
    sleep 2
    t0=$(date +%s.%N)
    local rx_secs
    rx_secs=$(python3 - "$SMS_RX" "$SMS_N" "$batch" "$first" "$STATE_ROOT/sms-state/sms/push-tokens.json" <<'PY'
import base64, http.client, json, sys, time
t_start = time.monotonic()
port, n, batch, first = (int(a) for a in sys.argv[1:5])
# The GoIP's push URL carries its token (src/sms/tokens.rs).
name, token = next(iter(json.load(open(sys.argv[5])).items()))
url = "/goip/%s/%s" % (name, token)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
i = 0
while i < n:
    k = min(batch, n - i)
    rows = [[0, "1A", 1700000000 + first + i + j, "10010", "13800000000",
             base64.b64encode(("bench %d" % (first + i + j)).encode()).decode()] for j in range(k)]
    body = json.dumps({"type": "recv-sms", "sms_num": k, "sms": rows})
    try:
        c.request("POST", url, body, {"Content-Type": "application/json;charset=utf-8"})
        r = c.getresponse(); r.read()
    except Exception:
        c.close(); c = http.client.HTTPConnection("127.0.0.1", port, timeout=30); time.sleep(0.05); continue
    if r.status == 200:
        i += k
    elif r.status in (429, 503):
        time.sleep(0.01)
    else:
        sys.exit("receiver answered %d" % r.status)
# The receiver's own rate: every push answered 200 (each SMS on flash).
print("%.3f" % (time.monotonic() - t_start))
PY
)
    # The time the last event arrived (polled every 20 ms, for up to 5 min).
    local i
    for i in $(seq 1 15000); do
        got=$(grep -c '"sms-received"' "$out" || true)
        [ "$got" -ge "$SMS_N" ] && break
        sleep 0.02
    done
    t1=$(date +%s.%N)
    kill "$ctl" 2>/dev/null || true
    wait "$ctl" 2>/dev/null || true
    awk -v n="$got" -v want="$SMS_N" -v b="$batch" -v s0="$t0" -v s1="$t1" -v rx="$rx_secs" 'BEGIN {
        printf "| %d | %d of %d | %.2f | **%.0f** | %.2f | **%.0f** |\n", b, n, want, s1 - s0, n / (s1 - s0), rx, want / rx }'
}

# fsync_rate DIR: appends + fdatasync per second in DIR (500 of them).
fsync_rate() {
    python3 - "$1" <<'PY'
import os, sys, time
p = os.path.join(sys.argv[1], ".fsync-probe")
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
t, n = time.monotonic(), 500
for _ in range(n):
    os.write(fd, b"x" * 300 + b"\n")
    os.fdatasync(fd)
print("%.0f" % (n / (time.monotonic() - t)))
os.close(fd)
os.unlink(p)
PY
}

cmd_sms() {
    rig
    SMS_SN=5A0000000003
    SMS_RX=$(free_port)
    [ -s "$WORK/sims.conf" ] || start_sims
    local conf
    conf=$(write_config sms "$SMS_SN" goip "$SMS_RX")
    start_agent "$conf" "$WORK/sms.log"
    wait_port "$SMS_RX" || die "SMS receiver did not listen: $(tail -5 "$WORK/sms.log")"
    sleep 3 # connected
    say "### Inbound SMS, push → platform (receiver → event queue → MQTT over TLS → subscriber)"
    say
    # The bound for one SMS per push: the receiver answers 200 only once the
    # SMS is on flash, one fsync per push. A bare append+fdatasync loop on
    # the same file system, for scale.
    say "state dir $STATE_ROOT ($(df -T "$STATE_ROOT" | awk 'NR==2 {print $2}')): a bare 300-byte append + fdatasync loop runs at $(fsync_rate "$STATE_ROOT")/s"
    say
    say "| SMS per push | events received | seconds | SMS/s (push → platform) | receiver: seconds | SMS/s (pushes answered 200) |"
    say "|---:|---:|---:|---:|---:|---:|"
    sms_run 1 0
    sms_run "${SMS_BATCH:-50}" 100000
    say
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
}

AGENT=$(pick_bin)
what=("$@")
[ "${#what[@]}" -gt 0 ] || what=(all)
[ "${what[*]}" = all ] && what=(sizes idle sms soak)
say "## dma-agent footprint ($(date -u +%Y-%m-%dT%H:%MZ), $("$AGENT" --version 2>/dev/null | head -1), $AGENT)"
say
for w in "${what[@]}"; do
    case "$w" in
        sizes) cmd_sizes ;;
        soak) SIM=$(pick_sim); cmd_soak ;;
        idle) cmd_idle ;;
        sms) SIM=$(pick_sim); cmd_sms ;;
        *) die "unknown part '$w' (sizes, soak, idle, sms, all)" ;;
    esac
done
