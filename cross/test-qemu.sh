#!/usr/bin/env bash
# Run the test suites against a cross target, foreign arches under QEMU.
#
#   cross/test-qemu.sh [TARGET]     default: armv7-unknown-linux-musleabihf
#
# 1. Unit tests (lib + bins) built for TARGET in the dev profile and run
#    through the QEMU runner from .cargo/config.toml
#    (`cargo test --release` with panic = "abort" cannot link: dev profile).
# 2. The host integration suite (tests/*.rs) against the
#    cross-built release binary: DMA_AGENT_BIN=dist/<target>/dma-agent and
#    DMA_AGENT_RUNNER=qemu-<arch>-static (unset for x86_64) tell the tests
#    which binary to spawn and how. The binary is built first if missing.
#
# Env: SKIP_UNIT=1, SKIP_INTEGRATION=1, DOCTESTS=1 (also run doctests on the
#      target), REBUILD=1 (rebuild the release binary), CARGO_FLAGS,
#      QEMU_TESTS="agent_core sms" (only these tests/*.rs files; default all).
set -euo pipefail
# shellcheck source=cross/common.sh
. "$(dirname "$0")/common.sh"

[ $# -le 1 ] || die "usage: $0 [TARGET]"
target=${1:-$DEFAULT_TARGET}
known_target "$target" || die "unknown target '$target' (known: ${ALL_TARGETS[*]})"
runner=$(runner_for "$target")
[ -z "$runner" ] || command -v "$runner" >/dev/null || die "$runner missing: run cross/install-deps.sh"
check_tools
cd "$ROOT_DIR"

if [ "${SKIP_UNIT:-0}" != 1 ]; then
    log "unit tests for $target (dev profile, runner: ${runner:-native})"
    # shellcheck disable=SC2086
    cargo-zigbuild test --target "$target" "${BUILD_STD[@]}" --lib --bins ${CARGO_FLAGS:-}
    if [ "${DOCTESTS:-0}" = 1 ]; then
        log "doctests for $target"
        # shellcheck disable=SC2086
        cargo-zigbuild test --target "$target" "${BUILD_STD[@]}" --doc ${CARGO_FLAGS:-}
    fi
fi

if [ "${SKIP_INTEGRATION:-0}" != 1 ]; then
    bin="$ROOT_DIR/dist/$target/$BIN_NAME"
    if [ ! -x "$bin" ] || [ "${REBUILD:-0}" = 1 ]; then
        "$CROSS_DIR/build.sh" "$target"
    fi
    if ! compgen -G "$ROOT_DIR/tests/*.rs" >/dev/null; then
        log "no integration tests (tests/*.rs) yet: skipping the host suite"
    else
        log "host integration suite against $bin (runner: ${runner:-native})"
        # The host build uses the normal toolchain, not the cross setup.
        (
            unset RUSTUP_TOOLCHAIN RUSTC_BOOTSTRAP
            export DMA_AGENT_BIN="$bin"
            if [ -n "$runner" ]; then export DMA_AGENT_RUNNER="$runner"; else unset DMA_AGENT_RUNNER; fi
            sel=(--test '*')
            if [ -n "${QEMU_TESTS:-}" ]; then
                sel=()
                for f in $QEMU_TESTS; do sel+=(--test "$f"); done
                log "only: $QEMU_TESTS"
            fi
            # shellcheck disable=SC2086
            cargo test "${sel[@]}" ${CARGO_FLAGS:-}
        )
    fi
fi
log "OK: $target"
