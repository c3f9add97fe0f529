#!/usr/bin/env bash
# The cross/packaging part of CI for one target (default armv7):
# install deps, release build + smoke run, tests under QEMU, packaging tests,
# and an .ipk in dist/ipk/. Prints the time each step took.
#
#   cross/ci.sh [TARGET]       env: SKIP_QEMU_TESTS=1 to skip cross/test-qemu.sh
set -euo pipefail
# shellcheck source=cross/common.sh
. "$(dirname "$0")/common.sh"

target=${1:-$DEFAULT_TARGET}
known_target "$target" || die "unknown target '$target'"
cd "$ROOT_DIR"

step() {
    local name=$1 start rc=0; shift
    log "=== $name"
    start=$(date +%s)
    "$@" || rc=$?
    log "=== $name: $([ "$rc" = 0 ] && echo ok || echo "FAILED ($rc)") in $(( $(date +%s) - start ))s"
    return "$rc"
}

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
step install-deps "$CROSS_DIR/install-deps.sh"
step build "$CROSS_DIR/build.sh" "$target"
[ "${SKIP_QEMU_TESTS:-0}" = 1 ] || step test-qemu "$CROSS_DIR/test-qemu.sh" "$target"
step packaging-tests python3 -m unittest discover -s tests/packaging -t . -v
step ipk "$CROSS_DIR/mkipk.sh" "dist/$target/$BIN_NAME" "$(openwrt_arch_for "$target")" "${version}-r1" dist/ipk
step apk sh -c 'a=$(python3 "$1/mkapk.py" "$2" "$3" "$4" "dist/apk/$3") && python3 tests/packaging/apkread.py "$a"' _ "$CROSS_DIR" "dist/$target/$BIN_NAME" "$(openwrt_arch_for "$target")" "${version}-r1"  # [apk, issue 12] the .apk for OpenWrt 25.12+, checked with the project's reader
