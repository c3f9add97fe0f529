#!/usr/bin/env bash
# Install, upgrade and remove dma-agent .apk packages with the real apk-tools v3
# in an offline root, then install from a signed feed without --allow-untrusted.
# Not part of CI (CI cannot fetch apk-tools; it runs tests/packaging/ instead).
#
#   APK=/path/to/apk cross/apk/check-real.sh [BINARY]
#
# apk-tools: build v3.0.x from source, e.g.
#   git clone -b v3.0.6 https://gitlab.alpinelinux.org/alpine/apk-tools && cd apk-tools
#   meson setup build -Ddocs=disabled -Dhelp=disabled -Dlua=disabled -Dpython=disabled \
#         -Dtests=disabled -Dzstd=enabled && ninja -C build        # build/src/apk
# Needs root (apk chroots into the root to run the package scripts) and a
# static busybox for /bin/sh inside that root (Debian: busybox-static).
# The scripts source the root's /lib/functions.sh; this check puts a stand-in
# there that records default_postinst / default_prerm calls.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root_dir=$(cd "$here/../.." && pwd)
APK=${APK:?set APK to the apk-tools v3 binary}
BUSYBOX=${BUSYBOX:-$(command -v busybox)}
binary=${1:-}
arch=$(uname -m)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '\n$ %s\n' "$*"; "$@"; }
R=$work/root

if [ -z "$binary" ]; then
    binary=$work/dma-agent
    printf '#!/bin/sh\necho stand-in agent\n' > "$binary"
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
v1=$("$root_dir/cross/mkapk.py" "$binary" "$arch" 0.1.0-r1 "$work/feed" 2>/dev/null)
v2=$("$root_dir/cross/mkapk.py" "$binary" "$arch" 0.1.1-r1 "$work/feed" 2>/dev/null)

echo "# $("$APK" --version)"
mkdir -p "$R/bin" "$R/lib" "$R/tmp"
cp "$BUSYBOX" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
cat > "$R/lib/functions.sh" <<'SH'
# stand-in for OpenWrt's /lib/functions.sh: records what the scripts call
add_group_and_user() { :; }
default_postinst() { echo "default_postinst pkg=$pkgname upgrade=${PKG_UPGRADE:-0}" >> /tmp/scripts.log; }
default_prerm() { echo "default_prerm pkg=$pkgname" >> /tmp/scripts.log; }
SH

step "$APK" --root "$R" --initdb --no-network --allow-untrusted add --virtual libc
step "$APK" --root "$R" --no-network --allow-untrusted add "$v1"
step ls -l "$R/usr/bin/dma-agent" "$R/etc/init.d/dma-agent" "$R/etc/config/dma-agent" "$R/lib/apk/packages/"
step cat "$R/tmp/scripts.log"
echo "option broker_host 'modified.example'  # operator's change" >> "$R/etc/config/dma-agent"
# the upgrade as the agent's `upgrade` command runs it (commands/upgrade/installer.rs)
step "$APK" --root "$R" add --no-network --repositories-file /dev/null --allow-untrusted "$v2"
step "$APK" --root "$R" --no-network info -v dma-agent
step tail -1 "$R/etc/config/dma-agent"
step ls -l "$R/etc/config/"
grep -q modified.example "$R/etc/config/dma-agent" || { echo "FAIL: modified config lost on upgrade"; exit 1; }
[ -f "$R/etc/config/dma-agent.apk-new" ] || { echo "FAIL: no new config beside the kept one"; exit 1; }
step cat "$R/tmp/scripts.log"
step "$APK" --root "$R" --no-network del dma-agent
step ls -l "$R/etc/config/"
step find "$R/usr" "$R/etc/init.d" 2>&1 || true
[ ! -e "$R/usr/bin/dma-agent" ] && [ ! -e "$R/etc/init.d/dma-agent" ] || { echo "FAIL: files left after del"; exit 1; }
grep -q modified.example "$R/etc/config/dma-agent" || { echo "FAIL: modified config removed"; exit 1; }
step cat "$R/tmp/scripts.log"

echo
echo "# signed feed: key, index, install without --allow-untrusted"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/feed.key.pem" 2>/dev/null
openssl ec -in "$work/feed.key.pem" -pubout -out "$work/dma-feed.pub.pem" 2>/dev/null
step "$root_dir/cross/mkapk-index.py" --key "$work/feed.key.pem" --output "$work/feed/packages.adb" "$v1" "$v2"
R2=$work/root2
mkdir -p "$R2/bin" "$R2/lib" "$R2/tmp" "$R2/etc/apk/keys" "$R2/etc/apk/repositories.d"
cp "$BUSYBOX" "$R2/bin/busybox"; ln -s busybox "$R2/bin/sh"
cp "$R/lib/functions.sh" "$R2/lib/functions.sh"
cp "$work/dma-feed.pub.pem" "$R2/etc/apk/keys/"
echo "file://$work/feed/packages.adb" > "$R2/etc/apk/repositories.d/dma-agent.list"
step "$APK" --root "$R2" --initdb --no-network --allow-untrusted add --virtual libc
step "$APK" --root "$R2" update
# installed from a local file first (pinned in world), then handed to the feed
step "$APK" --root "$R2" --allow-untrusted add "$v1"
step cat "$R2/etc/apk/world"
echo "option broker_host 'modified.example'  # operator's change" >> "$R2/etc/config/dma-agent"
step "$APK" --root "$R2" add dma-agent
step cat "$R2/etc/apk/world"
step "$APK" --root "$R2" upgrade
step "$APK" --root "$R2" list --installed
step ls -l "$R2/etc/config/"
"$APK" --root "$R2" list --installed | grep -q 'dma-agent-0.1.1-r1' || { echo "FAIL: not upgraded from the feed"; exit 1; }
grep -q modified.example "$R2/etc/config/dma-agent" || { echo "FAIL: modified config lost on feed upgrade"; exit 1; }
echo "# a router without the operator's key: the index is refused, nothing to install"
R3=$work/root3
mkdir -p "$R3/etc/apk/repositories.d"
cp "$R2/etc/apk/repositories.d/dma-agent.list" "$R3/etc/apk/repositories.d/"
step "$APK" --root "$R3" --initdb --no-network --allow-untrusted add --virtual libc
if step "$APK" --root "$R3" add dma-agent; then echo "FAIL: untrusted index accepted"; exit 1; fi

echo
echo "# a signed package (APK_SIGN_KEY) installs as a local file without --allow-untrusted"
signed=$(APK_SIGN_KEY="$work/feed.key.pem" "$root_dir/cross/mkapk.py" "$binary" "$arch" 0.1.2-r1 "$work/signed" 2>/dev/null)
R4=$work/root4
mkdir -p "$R4/bin" "$R4/lib" "$R4/tmp" "$R4/etc/apk/keys"
cp "$BUSYBOX" "$R4/bin/busybox"; ln -s busybox "$R4/bin/sh"
cp "$R/lib/functions.sh" "$R4/lib/functions.sh"
step "$APK" --root "$R4" --initdb --no-network --allow-untrusted add --virtual libc
if step "$APK" --root "$R4" --no-network --repositories-file /dev/null add "$signed"; then
    echo "FAIL: signed package accepted without the key"; exit 1
fi
cp "$work/dma-feed.pub.pem" "$R4/etc/apk/keys/"
step "$APK" --root "$R4" --no-network --repositories-file /dev/null add "$signed"
step "$APK" --root "$R4" list --installed

echo
echo "OK: install, upgrade (config kept, new one beside it), remove (config left), signed feed, signed package"
