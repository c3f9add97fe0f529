#!/usr/bin/env python3
"""Pack dma-agent into an apk-tools v3 package (.apk) for OpenWrt 25.12 and later.

    cross/mkapk.py BINARY ARCH VERSION OUTDIR
    e.g. cross/mkapk.py dist/armv7-unknown-linux-musleabihf/dma-agent \\
             arm_cortex-a7_neon-vfpv4 0.1.0-r1 dist/apk/arm_cortex-a7_neon-vfpv4

Writes OUTDIR/dma-agent-<VERSION>.apk (OpenWrt's file name) and prints its path.
Python 3 stdlib only: no apk-tools, no SDK, no Docker.

What goes in, as OpenWrt's include/package-pack.mk puts it with `apk mkpkg`:
  info     name, version (X.Y.Z-rN), description, arch (OpenWrt's name), license,
           origin, url, maintainer, depends, provides (dma-agent-any, the
           virtual name OpenWrt gives every package), installed-size, and the
           `openwrt:abiversion=` tag when PKG_ABIVERSION is set (libraries only;
           dma-agent has none)
  scripts  post-install: default_postinst (enables and starts the service)
           post-upgrade: the same with PKG_UPGRADE=1
           pre-deinstall: default_prerm (stops and disables it)
  files    /usr/bin/dma-agent 0755, /usr/libexec/dma-agent/upgrade 0755,
           /etc/init.d/dma-agent 0755,
           /etc/config/dma-agent 0600 (apk protects /etc: a modified copy is
           kept on upgrade, the new one written beside it as .apk-new, and left
           in place on removal),
           /lib/apk/packages/dma-agent.list, .conffiles, .conffiles_static
           (the files OpenWrt's sysupgrade and `apk` wrappers read)

The bytes are those `apk mkpkg` (apk-tools 3.0.6) writes for the same files and
arguments (tests/packaging/data/apk-3.0.6/ keeps the reference).
Reproducible: every mtime is SOURCE_DATE_EPOCH, owners root:root, paths sorted,
fixed deflate parameters, no signature in the package (as OpenWrt's: a feed's
index is signed instead, cross/mkapk-index.py). The same inputs give a
byte-identical file.

Optional: APK_SIGN_KEY=operator-key.pem adds a signature block (ECDSA over
SHA-512, openssl CLI), so `apk add FILE.apk` accepts the file without
--allow-untrusted on routers holding the public key in /etc/apk/keys.
A signed package is not byte-reproducible (ECDSA signatures are randomised);
its metadata and data blocks still are.

Env: SOURCE_DATE_EPOCH (default: last git commit time, else now),
     PKG_MAINTAINER, PKG_LICENSE, PKG_SOURCE, PKG_URL, PKG_DEPENDS (default libc;
     space or comma separated; empty for none), PKG_ABIVERSION, APK_SIGN_KEY,
     FILES_DIR (default openwrt/dma-agent/files).
"""

import hashlib
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "apk"))
import adb  # noqa: E402  (cross/apk/adb.py)

PKG = "dma-agent"
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESCRIPTION = ("dma-agent runs on the router, watches LAN devices (IAD, GL-S20, GoIP, "
               "SSL VPN), reports status to an IoT platform over MQTT and carries out "
               "the platform's remote commands.")

# The scripts, with the text OpenWrt's include/package-pack.mk generates for
# an apk build (Package/<name>/postinst-pkg and prerm-pkg are empty here).
POST_INSTALL = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="%(pkg)s"
add_group_and_user
default_postinst
"""
PRE_DEINSTALL = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="%(pkg)s"
default_prerm
"""


def die(msg):
    print("mkapk: error: " + msg, file=sys.stderr)
    sys.exit(1)


def post_upgrade(post_install):
    # package-pack.mk: "#!/bin/sh", "export PKG_UPGRADE=1", then post-install
    # without its #! line.
    body = "".join(l for l in post_install.splitlines(True) if not l.lstrip().startswith("#!"))
    return "#!/bin/sh\nexport PKG_UPGRADE=1\n" + body


def cargo_field(name):
    try:
        with open(os.path.join(ROOT_DIR, "Cargo.toml")) as f:
            for line in f:
                m = re.match(r'^%s\s*=\s*"(.*)"' % name, line)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def source_date_epoch():
    v = os.environ.get("SOURCE_DATE_EPOCH")
    if not v:
        try:
            v = subprocess.run(["git", "-C", ROOT_DIR, "log", "-1", "--format=%ct"],
                               capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            import time
            v = str(int(time.time()))
    if not v.isdigit():
        die("SOURCE_DATE_EPOCH must be unix seconds")
    return int(v)


# apk's version rule (apk-package(5)): number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*[a-z]?"
                        r"(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*"
                        r"(~[0-9a-f]+)?(-r[0-9]+)?$")


def collect(binary, files_dir):
    """[(path without leading /, mode, bytes)] of the payload."""
    def read(p):
        with open(p, "rb") as f:
            return f.read()
    entries = [
        ("usr/bin/dma-agent", 0o755, read(binary)),
        ("etc/init.d/dma-agent", 0o755, read(os.path.join(files_dir, "dma-agent.init"))),
        ("etc/config/dma-agent", 0o600, read(os.path.join(files_dir, "dma-agent.config"))),
    ]
    # The upgrade transaction runner (absent from tests/packaging's apk-tools
    # reference files, made before it existed).
    runner = os.path.join(files_dir, "dma-agent.upgrade")
    if os.path.isfile(runner):
        entries.append(("usr/libexec/dma-agent/upgrade", 0o755, read(runner)))
    ucid = os.path.join(files_dir, "uci-defaults")
    if os.path.isdir(ucid):
        for name in sorted(os.listdir(ucid)):
            p = os.path.join(ucid, name)
            if os.path.isfile(p):
                entries.append(("etc/uci-defaults/" + name, 0o755, read(p)))
    conffiles = ["/etc/config/dma-agent"]
    meta = "lib/apk/packages/" + PKG
    listing = "".join("/%s\n" % p for p in sorted(p for p, _, _ in entries))
    by_path = {"/" + p: data for p, _, data in entries}
    static = "".join("%s %s\n" % (c, hashlib.sha256(by_path[c]).hexdigest())
                     for c in conffiles if c in by_path)
    entries += [
        (meta + ".list", 0o644, listing.encode()),
        (meta + ".conffiles", 0o644, "".join(c + "\n" for c in conffiles).encode()),
        (meta + ".conffiles_static", 0o644, static.encode()),
    ]
    return entries


def build(binary, arch, version, env):
    """The package bytes. Values are written in the order `apk mkpkg` (3.0.x)
    writes them, so that the same inputs give the same bytes as OpenWrt's own
    build (cross/apk/check-real.sh compares the two)."""
    epoch = env["epoch"]
    entries = collect(binary, env["files_dir"])
    w = adb.Writer()
    P, A, F, D = adb.PI, adb.ACL, adb.FI, adb.DI

    # 1. The info fields given to mkpkg (--info), in slot order.
    info = {P["name"]: w.blob(PKG), P["version"]: w.blob(version),
            P["description"]: w.blob(DESCRIPTION), P["arch"]: w.blob(arch),
            P["license"]: w.blob(env["license"]), P["origin"]: w.blob(env["source"]),
            P["maintainer"]: w.blob(env["maintainer"]), P["url"]: w.blob(env["url"])}
    info[P["depends"]] = adb.write_dependencies(w, env["depends"])
    # OpenWrt's package.mk gives every package the virtual "<name>-any"
    # (no version: it does not own the name; other builds may provide it too).
    info[P["provides"]] = adb.write_dependencies(w, [PKG + "-any"])
    if env["abiversion"]:
        info[P["tags"]] = adb.write_strings(w, ["openwrt:abiversion=" + env["abiversion"]])

    # 2. Every directory (the root "" and each parent included, as mkpkg
    # without --compat writes them), root first then by name, each with its
    # files by name.
    dirs = {"": []}
    for path, mode, data in entries:
        d, name = path.rsplit("/", 1)
        dirs.setdefault(d, []).append((name, mode, data))
        while d:
            dirs.setdefault(d, [])
            d = d.rsplit("/", 1)[0] if "/" in d else ""
    paths, order = [], []  # order: (dir index, file index, data) for the DATA blocks
    for di, d in enumerate(sorted(dirs, key=str.encode), start=1):
        files = []
        for fi, (name, mode, data) in enumerate(sorted(dirs[d], key=lambda e: e[0].encode()), start=1):
            fv = {F["name"]: w.blob(name), F["hash"]: w.blob(hashlib.sha256(data).digest()),
                  F["mtime"]: w.int(epoch), F["size"]: w.int(len(data))}
            acl = {A["mode"]: w.int(mode), A["user"]: w.blob("root"), A["group"]: w.blob("root")}
            fv[F["acl"]] = w.fields(acl)
            files.append(w.fields(fv))
            if data:
                order.append((di, fi, data))
        dv = {D["name"]: w.blob(d)}
        acl = {A["mode"]: w.int(0o755), A["user"]: w.blob("root"), A["group"]: w.blob("root")}
        dv[D["acl"]] = w.fields(acl)
        dv[D["files"]] = w.slots(files)
        paths.append(w.fields(dv))

    # 3. Size, the unique id's place (20 zero bytes, never shared), the info.
    info[P["installed_size"]] = w.int(max(1, sum(len(d) for _, _, d in entries)))
    info[P["hashes"]], uid_at = w.blob_raw(bytes(20))
    pkg = {adb.PKG["info"]: w.fields(info), adb.PKG["paths"]: w.slots(paths)}

    # 4. Scripts (slot order), then the package.
    post_install = POST_INSTALL % {"pkg": PKG}
    scripts = {adb.SCRIPT["post-install"]: post_install,
               adb.SCRIPT["pre-deinstall"]: PRE_DEINSTALL % {"pkg": PKG},
               adb.SCRIPT["post-upgrade"]: post_upgrade(post_install)}
    pkg[adb.PKG["scripts"]] = w.fields({i: w.blob(scripts[i]) for i in sorted(scripts)})
    payload = w.finish(w.fields(pkg))
    # Unique id: the first 20 bytes of the SHA-256 of the ADB block written with
    # zeros in its place (apk reads a 20-byte id as a name, not a checksum).
    payload[uid_at:uid_at + 20] = hashlib.sha256(bytes(payload)).digest()[:20]

    out = adb.file_header(adb.SCHEMA_PACKAGE) + adb.block(adb.BLOCK_ADB, payload)
    if env["sign_key"]:
        sig, _ = adb.signature_block(adb.SCHEMA_PACKAGE, payload, env["sign_key"])
        out += sig
    for di, fi, data in order:
        out += adb.block(adb.BLOCK_DATA, struct.pack("<II", di, fi) + data)
    return adb.deflate(out)


def main(argv):
    if len(argv) != 5:
        die("usage: %s BINARY ARCH VERSION OUTDIR" % argv[0])
    binary, arch, version, outdir = argv[1:]
    if not os.path.isfile(binary):
        die("binary not found: " + binary)
    if not re.match(r"^[A-Za-z0-9_.+-]+$", arch):
        die("bad ARCH '%s' (OpenWrt names: arm_cortex-a7_neon-vfpv4, aarch64_cortex-a53, mipsel_24kc, ...)" % arch)
    if not VERSION_RE.match(version):
        die("bad VERSION '%s' (apk wants X.Y.Z-rN)" % version)
    files_dir = os.environ.get("FILES_DIR") or os.path.join(ROOT_DIR, "openwrt/dma-agent/files")
    for f in ("dma-agent.init", "dma-agent.config"):
        if not os.path.isfile(os.path.join(files_dir, f)):
            die("missing %s/%s" % (files_dir, f))
    depends = os.environ.get("PKG_DEPENDS", "libc")
    env = {
        "epoch": source_date_epoch(),
        "files_dir": files_dir,
        "maintainer": os.environ.get("PKG_MAINTAINER") or "dma-agent maintainers",
        "license": os.environ.get("PKG_LICENSE") or cargo_field("license") or "Apache-2.0",
        "source": os.environ.get("PKG_SOURCE") or "feeds/dmaagent/dma-agent",
        "url": os.environ.get("PKG_URL") or cargo_field("repository") or "",
        "depends": [d for d in re.split(r"[\s,]+", depends) if d],
        "abiversion": os.environ.get("PKG_ABIVERSION", ""),
        "sign_key": os.environ.get("APK_SIGN_KEY", ""),
    }
    if env["sign_key"] and not os.path.isfile(env["sign_key"]):
        die("APK_SIGN_KEY: no such file " + env["sign_key"])
    try:
        data = build(binary, arch, version, env)
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        die("cannot build the package: %s" % e)
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "%s-%s.apk" % (PKG, version))
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    print("mkapk: %s: %d bytes (SOURCE_DATE_EPOCH %d)" % (path, len(data), env["epoch"]), file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main(sys.argv)
