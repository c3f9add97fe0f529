#!/usr/bin/env python3
"""Build a signed apk-tools v3 package index (packages.adb) for a dma-agent feed.

    cross/mkapk-index.py --key OPERATOR-KEY.pem --output FEED/packages.adb FEED/*.apk
        [--description TEXT]

The index lists each package's info (as `apk mkndx` does: the package's own
info, its file size and, as `hashes`, the SHA-256 of its metadata block, which
is how apk trusts an unsigned package fetched from a signed index) and carries
one v0 signature block: ECDSA over SHA-512 with the operator's private key
(openssl CLI). Routers that have the matching public key in /etc/apk/keys
install and upgrade from the feed without --allow-untrusted.

A key for a fleet (keep the private half off the routers):
    openssl ecparam -name prime256v1 -genkey -noout -out dma-feed.key.pem
    openssl ec -in dma-feed.key.pem -pubout -out dma-feed.pub.pem

The package files must sit beside packages.adb, named <name>-<version>.apk
(apk's default name spec; cross/mkapk.py writes them so).
"""

import argparse
import hashlib
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "apk"))
import adb  # noqa: E402


def die(msg):
    print("mkapk-index: error: " + msg, file=sys.stderr)
    sys.exit(1)


def version_key(v):
    # Enough of apk's ordering to sort a feed: numbers numerically, -rN last.
    return [int(x) if x.isdigit() else x for x in re.split(r"([0-9]+)", v)]


def index_entry(w, data):
    """(name, version, index entry value) of one package, written into w as
    apk mkndx does: the package's info copied, then its size and, as
    `hashes`, the SHA-256 of its ADB block (how apk trusts it)."""
    schema, blocks = adb.unpack(data)
    if schema != adb.SCHEMA_PACKAGE or not blocks or blocks[0][0] != adb.BLOCK_ADB:
        raise ValueError("no package metadata block")
    payload = blocks[0][1]
    if len(payload) < 8:
        raise ValueError("metadata block too short")
    root = struct.unpack_from("<I", payload, 4)[0]
    info_v = adb.slot(payload, root, adb.PKG["info"])
    n = struct.unpack_from("<I", payload, info_v & 0x0FFFFFFF)[0]
    slots = {i: adb.slot(payload, info_v, i) for i in range(1, n)}
    name = adb.blob_at(payload, slots.get(adb.PI["name"], 0)).decode()
    version = adb.blob_at(payload, slots.get(adb.PI["version"], 0)).decode()
    if not name or not version:
        raise ValueError("no name or version")
    vals = {i: adb.copy(w, payload, v) for i, v in slots.items()}
    vals[adb.PI["file_size"]] = w.int(len(data))
    vals[adb.PI["hashes"]] = w.blob(hashlib.sha256(payload).digest())
    return name, version, w.fields(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key", required=True, help="operator's private key (PEM, ECDSA P-256)")
    ap.add_argument("--output", required=True, help="packages.adb to write")
    ap.add_argument("--description", default="dma-agent feed")
    ap.add_argument("packages", nargs="+")
    a = ap.parse_args()

    w = adb.Writer()
    infos = []
    for path in a.packages:
        try:
            with open(path, "rb") as f:
                data = f.read()
            name, version, v = index_entry(w, data)
        except OSError as e:
            die("%s: %s" % (path, e))
        except (ValueError, struct.error, IndexError, UnicodeDecodeError) as e:
            die("%s: not a valid apk v3 package: %s" % (path, e))
        expect = "%s-%s.apk" % (name, version)
        if os.path.basename(path) != expect:
            die("%s: must be named %s beside the index" % (path, expect))
        infos.append(((name.encode(), version_key(version)), v))
        print("mkapk-index: %s %s (%d bytes)" % (name, version, len(data)), file=sys.stderr)

    # As apk mkndx: the description, then the packages (sorted by name and
    # version), then the index object.
    infos.sort(key=lambda x: x[0])
    desc_v = w.blob(a.description)
    pkgs_v = w.slots([v for _, v in infos])
    payload = bytes(w.finish(w.fields({adb.NDX["description"]: desc_v, adb.NDX["packages"]: pkgs_v})))

    try:
        sig_block, kid = adb.signature_block(adb.SCHEMA_INDEX, payload, a.key)
    except (OSError, subprocess.CalledProcessError, ValueError) as e:
        die("cannot sign with the key %s: %s" % (a.key, e))

    out = adb.file_header(adb.SCHEMA_INDEX) + adb.block(adb.BLOCK_ADB, payload) + sig_block
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output + ".tmp", "wb") as f:
        f.write(adb.deflate(out))
    os.replace(a.output + ".tmp", a.output)
    print("mkapk-index: %s: %d packages, signed by key id %s" % (a.output, len(infos), kid.hex()), file=sys.stderr)
    print(a.output)


if __name__ == "__main__":
    main()
