#!/usr/bin/env bash
# The packaging, init-script and upgrade tests with OpenWrt's real userland:
# procd as PID 1 of a namespace, ubus, uci, opkg-lede and apk-tools v3
# (built from the pinned sources in ../shared/openwrt-userland, see its
# README). Needs root (namespaces, chroot). Prepares, idempotently, under
# target/:
#   target/openwrt-userland/   the tools (build.sh, ~2 min once; .built)
#   target/owrt-root/          the pristine rootfs (mkrootfs.sh); each test boots a copy
#   target/owrt-pkgs/          the agent, static x86_64 musl (the rootfs runs it), as
#                              .ipk and .apk in several versions, and a signed apk feed
# then runs tests/openwrt/test_*.py.
# Env: OPENWRT_USERLAND (the shared dir; default ../shared/openwrt-userland
#      beside the repository or its parent), OWRT_TESTS (unittest names).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
say() { printf '[openwrt-tests] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then echo "SKIPPED: tests/openwrt need root (namespaces, chroot)"; exit 0; fi
if ! unshare --fork --pid --mount true 2>/dev/null; then
    echo "SKIPPED: tests/openwrt: this machine cannot create PID + mount namespaces"; exit 0
fi
S=${OPENWRT_USERLAND:-}
for c in ../shared/openwrt-userland ../../shared/openwrt-userland /work/shared/openwrt-userland; do
    [ -z "$S" ] && [ -x "$c/build.sh" ] && S=$(cd "$c" && pwd)
done
[ -n "$S" ] || { say "ERROR: ../shared/openwrt-userland not found (set OPENWRT_USERLAND)"; exit 1; }

"$S/build.sh" target/openwrt-userland >&2
stamp=target/owrt-root.stamp
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(cat target/openwrt-userland/.built)" ]; then
    "$S/mkrootfs.sh" target/openwrt-userland target/owrt-root >&2
    cat target/openwrt-userland/.built > "$stamp"
fi

# The agent: static musl x86_64. cross/build.sh's release build when its
# toolchain (cargo-zigbuild) is there, else a debug build with rustup's musl
# target (ring's C with the host gcc; static, self-contained crt).
t=x86_64-unknown-linux-musl
have_musl() { rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t" >&2; }
if [ "${OWRT_RELEASE:-0}" = 1 ] || ! have_musl; then
    # The release build with the project's own cross toolchain (Debian's
    # rustc + std source, zig from PyPI): also where rustup cannot fetch
    # the musl target (no network to its servers).
    cross/install-deps.sh >&2
    cross/build.sh "$t" >&2
    bin=dist/$t/dma-agent
else
    CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-gcc} \
    RUSTFLAGS="-C link-self-contained=yes -C target-feature=+crt-static" \
        cargo build --target "$t" --bin dma-agent >&2
    bin=target/$t/debug/dma-agent
fi
P=target/owrt-pkgs
rm -rf "$P"; mkdir -p "$P/bin" "$P/feed"
objcopy --strip-all "$bin" "$P/bin/dma-agent"
file "$P/bin/dma-agent" | grep -q 'statically linked\|static-pie' || { say "ERROR: $P/bin/dma-agent is not static"; exit 1; }
# r2: the same program, other bytes (a new build: procd must restart it).
cp "$P/bin/dma-agent" "$P/bin/dma-agent-r2"; printf 'build r2' >> "$P/bin/dma-agent-r2"
# A binary that exits at once (a version that crashes at start) and one
# that runs but never reaches the broker (a wrong port baked in).
printf '#!/bin/sh\necho "broken build: exits at start" >&2\nexit 3\n' > "$P/bin/crash"
printf '#!/bin/sh\n# runs, never reaches the broker\nexec sleep 100000\n' > "$P/bin/nobroker"
chmod 755 "$P/bin/crash" "$P/bin/nobroker"
arch=x86_64
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
mk() { # NAME BINARY VERSION
    local ipk apk
    ipk=$(cross/mkipk.sh "$2" "$arch" "$3" "$P/ipk-$1" 2>/dev/null)
    apk=$(cross/mkapk.py "$2" "$arch" "$3" "$P/apk-$1" 2>/dev/null)
    printf '"ipk-%s": "%s", "apk-%s": "%s",\n' "$1" "$repo/$ipk" "$1" "$repo/$apk"
}
{
    echo "{"
    mk r1 "$P/bin/dma-agent" 0.1.0-r1
    mk r2 "$P/bin/dma-agent-r2" 0.1.0-r2
    mk crash "$P/bin/crash" 0.1.0-r3
    mk nobroker "$P/bin/nobroker" 0.1.0-r4
    echo "\"end\": \"\"}"
} > "$P/index.json"
# A signed apk feed holding r1 and r2 (a fleet's key; the router has the public half).
openssl ecparam -name prime256v1 -genkey -noout -out "$P/feed.key.pem" 2>/dev/null
openssl ec -in "$P/feed.key.pem" -pubout -out "$P/dma-feed.pub.pem" 2>/dev/null
cp "$P"/apk-r1/*.apk "$P"/apk-r2/*.apk "$P/feed/"
cross/mkapk-index.py --key "$P/feed.key.pem" --output "$P/feed/packages.adb" "$P"/feed/*.apk >&2

# The operator CLI the tests drive the routers with: a host build of dma-ctl.
cargo build -q -p dma-ctl --bin dma-ctl >&2
export OWRT_CTL=$repo/target/debug/dma-ctl
export OWRT_USERLAND=$S OWRT_ROOTFS=$repo/target/owrt-root OWRT_PKGS=$repo/$P OWRT_AGENT=$repo/$P/bin/dma-agent
say "packages ready in $P ($(stat -c %s "$P/bin/dma-agent") B binary); running the tests"
if [ -n "${OWRT_TESTS:-}" ]; then
    # shellcheck disable=SC2086
    python3 -m unittest -v $OWRT_TESTS
else
    python3 -m unittest discover -s tests/openwrt -t . -v
fi
