# shellcheck shell=bash
# Shared by the cross/*.sh scripts: environment and per-target facts.
# Source it; do not run it.
# shellcheck disable=SC2034  # variables used by the scripts that source this

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$CROSS_DIR/.." && pwd)
BIN_NAME=dma-agent
DEFAULT_TARGET=armv7-unknown-linux-musleabihf
ALL_TARGETS=(armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl mipsel-unknown-linux-musl
             arm-unknown-linux-musleabi x86_64-unknown-linux-musl)

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# The pip-installed cargo-zigbuild may live in python's scripts dir.
_py_scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
[ -n "$_py_scripts" ] && case ":$PATH:" in *":$_py_scripts:"*) ;; *) PATH="$PATH:$_py_scripts" ;; esac
export PATH

# Debian's rustc-web (matches /usr/lib/rustlib/src), never rustup's own.
if command -v rustup >/dev/null; then export RUSTUP_TOOLCHAIN=deb; fi
# -Zbuild-std on a stable compiler.
export RUSTC_BOOTSTRAP=1
BUILD_STD=("-Zbuild-std=std,panic_abort")
# Release builds only (tests need std's unwinding): std without its backtrace
# symbolizer (addr2line, gimli, demangler: panic messages stay, backtraces
# go) and with core/alloc's size-optimised algorithms. See README "Size and memory".
RELEASE_STD_FEATURES=("-Zbuild-std-features=optimize_for_size")
# A panic (none is expected: outside data never panics, see README) aborts at
# once, without formatting a message; nothing unwinds, so no unwind tables
# (.eh_frame / .ARM.exidx). Appended to the target's rustflags from
# .cargo/config.toml (cargo merges config arrays). Gains: README "Size and memory".
RELEASE_RUSTFLAGS='["-Zunstable-options", "-Cpanic=immediate-abort", "-Cforce-unwind-tables=no"]'

# The release rustflags of one target. armv7: Thumb-2 code instead of A32
# (1,682,264 -> 1,214,392 B on armv7, -28 %): every ARMv7-A core runs it
# (Cortex-A7/A9/A15/A53 in 32-bit mode), Debian's armhf is built the same
# way, and ring's assembly (A32 or Thumb-2 by its own directives) and musl
# interwork with it. Not for arm-unknown-linux-musleabi (ARMv6: Thumb-1).
#
# mipsel (README "Size and memory", each gain measured alone on the same
# build, stripped): 2,196,384 -> 1,952,676 B.
# - cross/mipsel-no-pdr.ld discards .pdr, the procedure descriptor LLVM
#   writes for every MIPS function (32 B each, 213,376 B here): debugger-only
#   data in no loadable segment, kept by the linker's --strip-all
#   (-213,420 B). Nothing at run time reads it: RSS and code are unchanged.
# - -disable-mips-df-succbb-search=false: the delay-slot filler also takes
#   an instruction from a branch's successor block (as GCC does) instead of
#   a nop: 9,611 fewer nops (-29,536 B). LLVM moves only what is safe on
#   both paths (no side effects, no register the other path reads; across a
#   conditional branch only loads from the stack or constants). The mipsel
#   QEMU suites run against this binary.
# - -mno-check-zero-division: no `teq` trap after each divide (-528 B).
#   Rust checks every `/` and `%` for zero before dividing (a panic, never
#   the trap); in C a division by zero is undefined behaviour anyway.
release_rustflags_for() {
    case "$1" in
        armv7-*) echo "${RELEASE_RUSTFLAGS%]}, \"-Ctarget-feature=+thumb-mode\"]" ;;
        mipsel-*) echo "${RELEASE_RUSTFLAGS%]}, \"-Clink-arg=-Wl,--script=$CROSS_DIR/mipsel-no-pdr.ld\", \"-Cllvm-args=-disable-mips-df-succbb-search=false\", \"-Cllvm-args=-mno-check-zero-division\"]" ;;
        *) echo "$RELEASE_RUSTFLAGS" ;;
    esac
}

check_tools() {
    command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild not found: run cross/install-deps.sh"
    if command -v rustup >/dev/null; then
        rustup toolchain list | grep -q '^deb\b' || die "rustup toolchain 'deb' missing: run cross/install-deps.sh"
    fi
    [ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library" ] \
        || die "std source missing in $(rustc --print sysroot)/lib/rustlib/src: run cross/install-deps.sh"
}

known_target() {
    local t
    for t in "${ALL_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

# QEMU user-mode runner for a target ("" = runs natively).
runner_for() {
    case "$1" in
        armv7-*|arm-*)  echo qemu-arm-static ;;
        aarch64-*)      echo qemu-aarch64-static ;;
        mipsel-*)       echo qemu-mipsel-static ;;
        mips-*)         echo qemu-mips-static ;;
        x86_64-*)       echo "" ;;
        *) die "no runner known for $1" ;;
    esac
}

# Default OpenWrt package architecture for a target (override with OPENWRT_ARCH).
openwrt_arch_for() {
    case "$1" in
        armv7-unknown-linux-musleabihf) echo arm_cortex-a7_neon-vfpv4 ;;
        aarch64-unknown-linux-musl)     echo aarch64_cortex-a53 ;;
        mipsel-unknown-linux-musl)      echo mipsel_24kc ;;
        arm-unknown-linux-musleabi)     echo arm_arm926ej-s ;;
        x86_64-unknown-linux-musl)      echo x86_64 ;;
        *) die "no OpenWrt arch known for $1" ;;
    esac
}

target_dir() { echo "${CARGO_TARGET_DIR:-$ROOT_DIR/target}"; }
