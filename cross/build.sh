#!/usr/bin/env bash
# Release, statically linked musl builds of dma-agent for OpenWrt targets.
#
#   cross/build.sh [TARGET...]      default: armv7-unknown-linux-musleabihf
#   cross/build.sh all              every supported target, one after another
#
# Output: dist/<target>/dma-agent (stripped by the release profile).
# Each binary is executed once (under QEMU for foreign arches) with
# --version / --help and must exit 0.
# Env: CARGO_FLAGS (extra cargo args, e.g. "--locked"), CARGO_TARGET_DIR.
set -euo pipefail
# shellcheck source=cross/common.sh
. "$(dirname "$0")/common.sh"

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("$DEFAULT_TARGET")
[ "${targets[*]}" = all ] && targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do known_target "$t" || die "unknown target '$t' (known: ${ALL_TARGETS[*]})"; done
check_tools

# Run a built binary once; succeed if --version or --help exits 0.
smoke_run() {
    local bin=$1 runner=$2 arg
    for arg in --version --help; do
        if timeout 30 ${runner:+"$runner"} "$bin" "$arg" >/dev/null 2>&1; then
            log "  runs: ${runner:+$runner }$bin $arg -> exit 0"
            return 0
        fi
    done
    die "$bin does not run (${runner:-native}): neither --version nor --help exited 0"
}

cd "$ROOT_DIR"
summary=()
for t in "${targets[@]}"; do
    log "building $BIN_NAME for $t (release, -Zbuild-std, zig linker)"
    start=$(date +%s)
    # shellcheck disable=SC2086
    cargo-zigbuild zigbuild --release --target "$t" "${BUILD_STD[@]}" "${RELEASE_STD_FEATURES[@]}" \
        --config "target.$t.rustflags=$(release_rustflags_for "$t")" --bin "$BIN_NAME" ${CARGO_FLAGS:-}
    secs=$(( $(date +%s) - start ))
    src="$(target_dir)/$t/release/$BIN_NAME"
    [ -f "$src" ] || die "build produced no $src"
    mkdir -p "dist/$t"
    cp "$src" "dist/$t/$BIN_NAME"
    out="dist/$t/$BIN_NAME"
    # The release profile strips (strip = true); report the file as built.
    size=$(stat -c %s "$out")
    desc=$(file -b "$out" 2>/dev/null | cut -d, -f1-2,4- | sed 's/BuildID[^,]*,//' || true)
    log "  $out: $size bytes (stripped) in ${secs}s; ${desc}"
    case "$(file -b "$out" 2>/dev/null)" in
        *"not stripped"*) log "  WARNING: binary is not stripped" ;;
        *dynamically*)    die "$out is dynamically linked" ;;
    esac
    smoke_run "$out" "$(runner_for "$t")"
    summary+=("$(printf '%-34s %10s B  %4ss' "$t" "$size" "$secs")")
done
log "done:"
printf '  %s\n' "${summary[@]}" >&2
