#!/usr/bin/env bash
# Pack dma-agent into an OpenWrt .ipk, the way OpenWrt's scripts/ipkg-build does.
#
#   cross/mkipk.sh BINARY ARCH VERSION OUTDIR
#   e.g. cross/mkipk.sh dist/armv7-unknown-linux-musleabihf/dma-agent \
#            arm_cortex-a7_neon-vfpv4 0.1.0-r1 dist/ipk
#
# Writes OUTDIR/dma-agent_<VERSION>_<ARCH>.ipk and prints its path.
#
# Layout (as ipkg-build): a gzip'd GNU tar (not an ar archive) holding
#   ./debian-binary ("2.0\n"), ./data.tar.gz, ./control.tar.gz   in that order;
# every tar is --format=gnu (no PAX headers), --numeric-owner 0/0, --sort=name,
# --mtime=@SOURCE_DATE_EPOCH, compressed with gzip -n: the same inputs and
# SOURCE_DATE_EPOCH give a byte-identical package.
# Installed-Size is, as in ipkg-build, the size of the uncompressed data.tar.
#
# data:    /usr/bin/dma-agent 0755, /usr/libexec/dma-agent/upgrade 0755 (the
#          upgrade transaction runner), /etc/init.d/dma-agent 0755,
#          /etc/config/dma-agent 0600 (conffile: opkg keeps a modified copy on upgrade)
# control: control, conffiles, postinst/prerm = OpenWrt's default_postinst/default_prerm
#          (postinst enables and starts the service; prerm stops and disables it).
#
# Env: SOURCE_DATE_EPOCH (default: last git commit time, else now),
#      PKG_MAINTAINER, PKG_LICENSE, PKG_SOURCE, PKG_DEPENDS (default libc),
#      FILES_DIR (default openwrt/dma-agent/files).
set -euo pipefail
# shellcheck source=cross/common.sh
. "$(dirname "$0")/common.sh"

[ $# -eq 4 ] || die "usage: $0 BINARY ARCH VERSION OUTDIR"
binary=$1 arch=$2 version=$3 outdir=$4
pkg=dma-agent

[ -f "$binary" ] || die "binary not found: $binary"
[[ "$arch" =~ ^[A-Za-z0-9_.+-]+$ ]] || die "bad ARCH '$arch' (OpenWrt names: arm_cortex-a7_neon-vfpv4, aarch64_cortex-a53, mipsel_24kc, ...)"
[[ "$version" =~ ^[A-Za-z0-9_.+~:-]+$ ]] || die "bad VERSION '$version'"
files_dir=${FILES_DIR:-$ROOT_DIR/openwrt/dma-agent/files}
for f in dma-agent.init dma-agent.config dma-agent.upgrade; do
    [ -f "$files_dir/$f" ] || die "missing $files_dir/$f"
done

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$ROOT_DIR" log -1 --format=%ct 2>/dev/null || date +%s)
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be unix seconds"
export SOURCE_DATE_EPOCH

maintainer=${PKG_MAINTAINER:-dma-agent maintainers}
license=${PKG_LICENSE:-$(sed -n 's/^license *= *"\(.*\)"/\1/p' "$ROOT_DIR/Cargo.toml" | head -1)}
license=${license:-Apache-2.0}
source=${PKG_SOURCE:-feeds/dmaagent/dma-agent}
depends=${PKG_DEPENDS-libc}

export LC_ALL=C TZ=UTC
umask 022
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data ctrl=$work/control out=$work/out
install -d -m 0755 "$data" "$ctrl" "$out" \
    "$data/usr" "$data/usr/bin" "$data/usr/libexec" "$data/usr/libexec/dma-agent" \
    "$data/etc" "$data/etc/init.d" "$data/etc/config"
install -m 0755 "$binary" "$data/usr/bin/dma-agent"
install -m 0755 "$files_dir/dma-agent.upgrade" "$data/usr/libexec/dma-agent/upgrade"
install -m 0755 "$files_dir/dma-agent.init" "$data/etc/init.d/dma-agent"
install -m 0600 "$files_dir/dma-agent.config" "$data/etc/config/dma-agent"
if [ -d "$files_dir/uci-defaults" ]; then
    install -d -m 0755 "$data/etc/uci-defaults"
    for f in "$files_dir"/uci-defaults/*; do
        [ -f "$f" ] && install -m 0755 "$f" "$data/etc/uci-defaults/$(basename "$f")"
    done
fi

# Same tar invocation for all three archives (as ipkg-build, plus explicit 0/0).
mktar() { # DIR MEMBERS... -> gzip'd tar on stdout
    local dir=$1; shift
    tar -C "$dir" --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
        --mtime="@$SOURCE_DATE_EPOCH" -cf - "$@" | gzip -n
}

mktar "$data" . > "$out/data.tar.gz"
installed_size=$(gzip -dc "$out/data.tar.gz" | wc -c)

{
    echo "Package: $pkg"
    echo "Version: $version"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Source: $source"
    echo "SourceName: $pkg"
    echo "License: $license"
    echo "Section: net"
    echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
    echo "Maintainer: $maintainer"
    echo "Architecture: $arch"
    echo "Installed-Size: $installed_size"
    echo "Description:  dma-agent runs on the router, watches LAN devices (IAD, GL-S20,"
    echo " GoIP, SSL VPN), reports status to an IoT platform over MQTT and carries"
    echo " out the platform's remote commands."
} > "$ctrl/control"
echo /etc/config/dma-agent > "$ctrl/conffiles"
# Text as OpenWrt's include/package-pack.mk writes it.
cat > "$ctrl/postinst" <<'SH'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
SH
cat > "$ctrl/prerm" <<'SH'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
SH
chmod 0644 "$ctrl/control" "$ctrl/conffiles"
chmod 0755 "$ctrl/postinst" "$ctrl/prerm"
mktar "$ctrl" . > "$out/control.tar.gz"

printf '2.0\n' > "$out/debian-binary"
chmod 0644 "$out/debian-binary" "$out/data.tar.gz" "$out/control.tar.gz"

mkdir -p "$outdir"
ipk="$outdir/${pkg}_${version}_${arch}.ipk"
# No --sort here: the member order debian-binary, data, control is the one given.
tar -C "$out" --format=gnu --numeric-owner --owner=0 --group=0 \
    --mtime="@$SOURCE_DATE_EPOCH" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz \
    | gzip -n > "$ipk.tmp"
mv "$ipk.tmp" "$ipk"
log "$ipk: $(stat -c %s "$ipk") bytes (Installed-Size $installed_size, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH)"
echo "$ipk"
