#!/usr/bin/env bash
# Size and memory figures for the cross builds.
#
#   cross/measure.sh [TARGET...]      default: every supported target
#       Builds what is missing in dist/ (NO_BUILD=1: only use what is there),
#       builds the hello-world baseline (cross/hello) per target, and prints a
#       markdown table: stripped size, baseline size, peak RSS of
#       `dma-agent --version` and of hello-world in the same run, and the
#       difference. Under qemu-user the emulator adds ~11 MB of RSS, so only
#       the difference to the baseline means anything; the honest absolute
#       figure is the native x86_64-unknown-linux-musl one (see shared/CROSS.md).
#
#   cross/measure.sh rss TARGET -- COMMAND [ARGS...]
#       Runs COMMAND once and prints its peak RSS, the hello-world baseline
#       for TARGET (median of 3, measured right after, same runner) and the difference, in KB.
#       Use the runner yourself in COMMAND (e.g. qemu-arm-static dist/.../dma-agent ...).
#
#   cross/measure.sh e2e TARGET
#       Runs the end-to-end suites (agent_core, devices_e2e, sms) against
#       dist/TARGET/dma-agent (under its QEMU runner) and prints the largest
#       peak RSS (VmHWM) any agent process reached, the hello-world baseline
#       and the difference, in KB.
#
#   . cross/measure.sh   # sourcing defines peak_rss_kb, baseline_rss_kb, hello_bin
set -euo pipefail
# shellcheck source=cross/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HELLO_DIR="$CROSS_DIR/hello"
HELLO_TARGET_DIR="$(target_dir)/hello-baseline"

# peak_rss_kb COMMAND [ARGS...]: run it (stdout/stderr to /dev/null), print its
# peak resident set size in KB (GNU time %M: max RSS of the process, which for
# qemu-user includes the emulator). Fails if the command fails.
peak_rss_kb() {
    [ -x /usr/bin/time ] || die "/usr/bin/time missing: run cross/install-deps.sh (package 'time')"
    local out rc=0
    out=$(mktemp)
    /usr/bin/time -f %M -o "$out" "$@" >/dev/null 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then rm -f "$out"; log "command failed (exit $rc): $*"; return "$rc"; fi
    tail -1 "$out"
    rm -f "$out"
}

# hello_bin TARGET: build (once) and print the path of the hello-world baseline.
hello_bin() {
    local t=$1 bin="$HELLO_TARGET_DIR/$1/release/hello-baseline"
    if [ ! -x "$bin" ]; then
        check_tools
        log "building hello-world baseline for $t"
        # From the repository root, so .cargo/config.toml (rustflags) applies.
        (cd "$ROOT_DIR" && cargo-zigbuild zigbuild --release --target "$t" "${BUILD_STD[@]}" \
            --manifest-path "$HELLO_DIR/Cargo.toml" --target-dir "$HELLO_TARGET_DIR" >&2)
    fi
    echo "$bin"
}

# baseline_rss_kb TARGET: peak RSS of the hello-world for TARGET under its runner.
baseline_rss_kb() {
    local runner bin
    runner=$(runner_for "$1"); bin=$(hello_bin "$1")
    peak_rss_kb ${runner:+"$runner"} "$bin"
}

# Median of 3 runs, to damp noise from a busy machine.
median3() { local a b c; a=$("$@"); b=$("$@"); c=$("$@"); printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p; }

cmd_rss() {
    local t=$1; shift
    [ "${1:-}" = -- ] && shift
    [ $# -gt 0 ] || die "usage: $0 rss TARGET -- COMMAND [ARGS...]"
    known_target "$t" || die "unknown target '$t'"
    local peak base
    peak=$(peak_rss_kb "$@")
    base=$(median3 baseline_rss_kb "$t")
    printf 'peak_rss_kb=%s baseline_kb=%s diff_kb=%s\n' "$peak" "$base" "$((peak - base))"
}

cmd_table() {
    local targets=("$@") t
    [ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
    for t in "${targets[@]}"; do known_target "$t" || die "unknown target '$t'"; done
    local rows=()
    for t in "${targets[@]}"; do
        local bin="$ROOT_DIR/dist/$t/$BIN_NAME" runner hello size hsize arss hrss
        if [ ! -x "$bin" ]; then
            if [ "${NO_BUILD:-0}" = 1 ]; then
                rows+=("| $t | not built | | | | |"); continue
            fi
            "$CROSS_DIR/build.sh" "$t" >&2
        fi
        runner=$(runner_for "$t")
        hello=$(hello_bin "$t")
        size=$(stat -c %s "$bin"); hsize=$(stat -c %s "$hello")
        arss=$(median3 peak_rss_kb ${runner:+"$runner"} "$bin" --version || echo "?")
        hrss=$(median3 peak_rss_kb ${runner:+"$runner"} "$hello" || echo "?")
        local diff="?"
        [[ "$arss$hrss" =~ ^[0-9]+$ ]] && diff=$((arss - hrss))
        rows+=("| $t | $size | $hsize | $arss | $hrss | $diff |")
    done
    echo
    echo "| target | dma-agent stripped (B) | hello-world stripped (B) | peak RSS \`dma-agent --version\` (KB) | peak RSS hello-world (KB) | difference (KB) |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Foreign targets run under qemu-user (its ~11 MB are in both RSS columns); x86_64 runs natively."
}

cmd_e2e() {
    local t=$1 bin="$ROOT_DIR/dist/$1/$BIN_NAME" runner log peak base
    known_target "$t" || die "unknown target '$t'"
    [ -x "$bin" ] || "$CROSS_DIR/build.sh" "$t" >&2
    runner=$(runner_for "$t")
    log=$(mktemp)
    (
        cd "$ROOT_DIR"
        unset RUSTUP_TOOLCHAIN RUSTC_BOOTSTRAP
        export DMA_AGENT_BIN="$bin" DMA_RSS_LOG="$log"
        if [ -n "$runner" ]; then export DMA_AGENT_RUNNER="$runner"; else unset DMA_AGENT_RUNNER; fi
        cargo test -q --test agent_core --test devices_e2e --test sms >&2
    )
    peak=$(sort -n "$log" | tail -1)
    rm -f "$log"
    [ -n "$peak" ] || die "no RSS recorded"
    if [ -n "$runner" ]; then
        base=$(median3 baseline_rss_kb "$t")
        printf '%s e2e peak_rss_kb=%s baseline_kb=%s diff_kb=%s\n' "$t" "$peak" "$base" "$((peak - base))"
    else
        printf '%s e2e peak_rss_kb=%s (native)\n' "$t" "$peak"
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
        e2e) shift; [ $# -eq 1 ] || die "usage: $0 e2e TARGET"; cmd_e2e "$1" ;;
        rss) shift; [ $# -ge 2 ] || die "usage: $0 rss TARGET -- COMMAND [ARGS...]"; cmd_rss "$@" ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
        *) cmd_table "$@" ;;
    esac
fi
