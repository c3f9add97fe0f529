#!/usr/bin/env python3
"""A reader of apk-tools v3 packages and indexes, for checking what cross/mkapk.py
and cross/mkapk-index.py write without apk-tools (CI cannot fetch it).

Written from the format's documentation (apk-tools doc/apk-v3.5.scd,
doc/apk-package.5.scd; field numbers from src/apk_adb.h); it shares no code
with the writer in cross/apk/adb.py, so a mistake in one shows up here.

    python3 tests/packaging/apkread.py FILE.apk|packages.adb ...

prints the metadata and checks the structure, every file's size and SHA-256
against its DATA block, and the block layout; exit 1 on the first error.
"""
import hashlib
import struct
import sys
import zlib


class AdbError(ValueError):
    pass


SCHEMAS = {b"pckg": "package", b"indx": "index"}
BLOCK_NAMES = {0: "ADB", 1: "SIG", 2: "DATA", 3: "EXT"}

# Object schemas: slot number -> (name, kind). Kinds: "str", "int", "oct",
# "hex", ("obj", schema), ("arr", kind).
DEP = {1: ("name", "str"), 2: ("version", "str"), 3: ("match", "int")}
PKGINFO = {1: ("name", "str"), 2: ("version", "str"), 3: ("hashes", "hex"),
           4: ("description", "str"), 5: ("arch", "str"), 6: ("license", "str"),
           7: ("origin", "str"), 8: ("maintainer", "str"), 9: ("url", "str"),
           10: ("repo-commit", "hex"), 11: ("build-time", "int"),
           12: ("installed-size", "int"), 13: ("file-size", "int"),
           14: ("provider-priority", "int"), 15: ("depends", ("arr", ("obj", DEP))),
           16: ("provides", ("arr", ("obj", DEP))), 17: ("replaces", ("arr", ("obj", DEP))),
           18: ("install-if", ("arr", ("obj", DEP))), 19: ("recommends", ("arr", ("obj", DEP))),
           20: ("layer", "int"), 21: ("tags", ("arr", "str"))}
ACL = {1: ("mode", "oct"), 2: ("user", "str"), 3: ("group", "str"), 4: ("xattrs", ("arr", "hex"))}
FILE = {1: ("name", "str"), 2: ("acl", ("obj", ACL)), 3: ("size", "int"),
        4: ("mtime", "int"), 5: ("hash", "hex"), 6: ("target", "hex")}
DIR = {1: ("name", "str"), 2: ("acl", ("obj", ACL)), 3: ("files", ("arr", ("obj", FILE)))}
SCRIPTS = {1: ("trigger", "str"), 2: ("pre-install", "str"), 3: ("post-install", "str"),
           4: ("pre-deinstall", "str"), 5: ("post-deinstall", "str"),
           6: ("pre-upgrade", "str"), 7: ("post-upgrade", "str")}
PACKAGE = {1: ("info", ("obj", PKGINFO)), 2: ("paths", ("arr", ("obj", DIR))),
           3: ("scripts", ("obj", SCRIPTS)), 4: ("triggers", ("arr", "str")),
           5: ("replaces-priority", "int")}
INDEX = {1: ("description", "str"), 2: ("packages", ("arr", ("obj", PKGINFO))),
         3: ("pkgname-spec", "str")}


def decompress(data):
    """The uncompressed ADB stream: "ADB." as is, "ADBd" raw deflate, "ADBc" + alg/level."""
    magic = data[:4]
    if magic == b"ADB.":
        return data
    if magic == b"ADBd":
        body = data[4:]
    elif magic == b"ADBc":
        if len(data) < 6 or data[4] not in (0, 1):
            raise AdbError("unsupported compression %r" % data[4:6])
        if data[4] == 0:
            return data[6:]
        body = data[6:]
    else:
        raise AdbError("no ADB magic (an .ipk or v2 .apk?)")
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(body) + d.flush()
    except zlib.error as e:
        raise AdbError("deflate stream: %s" % e)
    if not d.eof:
        raise AdbError("deflate stream truncated")
    if d.unused_data:
        raise AdbError("bytes after the deflate stream")
    return out


class Container:
    """The blocks of an ADB file, with the layout rules checked."""

    def __init__(self, raw):
        self.compressed_magic = raw[:4]
        data = decompress(raw)
        if len(data) < 8 or data[:4] != b"ADB.":
            raise AdbError("bad file header")
        self.schema = SCHEMAS.get(data[4:8])
        if self.schema is None:
            raise AdbError("unknown schema %r" % data[4:8])
        self.blocks = []  # (type, payload)
        pos = 8
        while pos < len(data):
            if pos % 8:
                raise AdbError("block at %d not 8-byte aligned" % pos)
            if pos + 4 > len(data):
                raise AdbError("truncated block header at %d" % pos)
            word = struct.unpack_from("<I", data, pos)[0]
            btype, size = word >> 30, word & 0x3FFFFFFF
            if btype == 3:
                raise AdbError("extended block (not written by the packer)")
            if size < 4 or pos + size > len(data):
                raise AdbError("block at %d overruns the file" % pos)
            pad = (8 - size % 8) % 8
            if pos + size + pad > len(data) or any(data[pos + size:pos + size + pad]):
                raise AdbError("block at %d: padding missing or not zero" % pos)
            self.blocks.append((btype, data[pos + 4:pos + size]))
            pos += size + pad
        kinds = [b for b, _ in self.blocks]
        if not kinds or kinds[0] != 0 or 0 in kinds[1:]:
            raise AdbError("must start with exactly one ADB block, got %s" % [BLOCK_NAMES[k] for k in kinds])
        seen_data = False
        for k in kinds[1:]:
            if k == 2:
                seen_data = True
            elif k == 1 and seen_data:
                raise AdbError("SIG block after a DATA block")
        self.adb = self.blocks[0][1]
        self.sigs = [p for b, p in self.blocks if b == 1]
        self.data = [p for b, p in self.blocks if b == 2]
        if len(self.adb) < 8:
            raise AdbError("ADB block too short")
        compat, ver = self.adb[0], self.adb[1]
        if compat != 0:
            raise AdbError("ADB compat version %d" % compat)
        self.adb_version = ver


class Tree:
    """Typed values of one ADB block, every offset bounds-checked."""

    def __init__(self, adb):
        self.adb = adb

    def _at(self, off, n):
        if off + n > len(self.adb):
            raise AdbError("value at %d+%d beyond the ADB block (%d)" % (off, n, len(self.adb)))
        return self.adb[off:off + n]

    def root(self):
        return struct.unpack_from("<I", self.adb, 4)[0]

    def int(self, v):
        t, x = v >> 28, v & 0x0FFFFFFF
        if t == 0x1:
            return x
        if t == 0x2:
            return struct.unpack("<I", self._at(x, 4))[0]
        if t == 0x3:
            return struct.unpack("<Q", self._at(x, 8))[0]
        raise AdbError("expected an integer, got type %x" % t)

    def blob(self, v):
        t, x = v >> 28, v & 0x0FFFFFFF
        if t == 0x8:
            n = self._at(x, 1)[0]
            return self._at(x + 1, n)
        if t == 0x9:
            n = struct.unpack("<H", self._at(x, 2))[0]
            if x % 2:
                raise AdbError("blob16 misaligned")
            return self._at(x + 2, n)
        if t == 0xA:
            n = struct.unpack("<I", self._at(x, 4))[0]
            if x % 4:
                raise AdbError("blob32 misaligned")
            return self._at(x + 4, n)
        raise AdbError("expected a blob, got type %x" % t)

    def slots(self, v, want):
        # Arrays and objects share one encoding (apk-v3(5)); apk reads either
        # tag for either, and writes arrays built from text (depends, the
        # paths of `apk mkpkg`) with the object tag.
        t, x = v >> 28, v & 0x0FFFFFFF
        if t not in (0xD, 0xE):
            raise AdbError("expected %s, got type %x" % ({0xD: "array", 0xE: "object"}[want], t))
        if x % 4:
            raise AdbError("object/array misaligned")
        n = struct.unpack("<I", self._at(x, 4))[0]
        if n < 1 or n > 1 << 20:
            raise AdbError("bad slot count %d" % n)
        return struct.unpack("<%dI" % n, self._at(x, 4 * n))[1:]

    def decode(self, v, kind):
        if v == 0:
            return None
        if kind == "str":
            return self.blob(v).decode("utf-8")
        if kind == "hex":
            return self.blob(v).hex()
        if kind in ("int", "oct"):
            return self.int(v)
        if kind[0] == "obj":
            schema, out = kind[1], {}
            for i, sv in enumerate(self.slots(v, 0xE), start=1):
                if sv == 0:
                    continue
                if i not in schema:
                    raise AdbError("unknown slot %d" % i)
                name, k = schema[i]
                out[name] = self.decode(sv, k)
            return out
        if kind[0] == "arr":
            return [self.decode(sv, kind[1]) for sv in self.slots(v, 0xD) if sv != 0]
        raise AdbError("bad kind %r" % (kind,))


def read(raw):
    """(Container, decoded root object) of an .apk or packages.adb."""
    c = Container(raw)
    root = Tree(c.adb).decode(Tree(c.adb).root(), ("obj", PACKAGE if c.schema == "package" else INDEX))
    if root is None:
        raise AdbError("empty root")
    return c, root


def package_files(c, pkg):
    """[(path, mode, bytes)] of a package, each checked against its DATA block:
    blocks in path/file order, one per non-empty regular file, sizes and SHA-256 equal."""
    expect = []
    for pi, d in enumerate(pkg.get("paths") or [], start=1):
        d.setdefault("name", "")  # the root directory has no name
        for fi, f in enumerate(d.get("files") or [], start=1):
            expect.append((pi, fi, d, f))
    blocks = list(c.data)
    out = []
    for pi, fi, d, f in expect:
        path = (d["name"] + "/" if d["name"] else "") + f["name"]
        size = f.get("size") or 0
        if f.get("target") is not None:
            out.append((path, f["acl"]["mode"], None))
            continue
        if size == 0:
            content = b""
        else:
            if not blocks:
                raise AdbError("%s: no DATA block" % path)
            blk = blocks.pop(0)
            if len(blk) < 8:
                raise AdbError("%s: DATA block too short" % path)
            bpi, bfi = struct.unpack_from("<II", blk, 0)
            if (bpi, bfi) != (pi, fi):
                raise AdbError("%s: DATA block for %d/%d, expected %d/%d" % (path, bpi, bfi, pi, fi))
            content = blk[8:]
            if len(content) != size:
                raise AdbError("%s: %d bytes, metadata says %d" % (path, len(content), size))
        if hashlib.sha256(content).hexdigest() != f.get("hash"):
            raise AdbError("%s: SHA-256 differs from the metadata" % path)
        out.append((path, f["acl"]["mode"], content))
    if blocks:
        raise AdbError("%d DATA blocks left over" % len(blocks))
    return out


def main(argv):
    rc = 0
    for path in argv[1:]:
        try:
            with open(path, "rb") as f:
                raw = f.read()
            c, root = read(raw)
            if c.schema == "package":
                files = package_files(c, root)
                info = root["info"]
                print("%s: %s %s %s, %d files, scripts: %s, %d signature(s)" % (
                    path, info["name"], info["version"], info["arch"], len(files),
                    ", ".join(sorted(root.get("scripts") or {})), len(c.sigs)))
                for p, mode, content in files:
                    print("  /%s %04o %d" % (p, mode, len(content or b"")))
            else:
                pkgs = root.get("packages") or []
                print("%s: index '%s', %d packages, %d signature(s)" % (
                    path, root.get("description"), len(pkgs), len(c.sigs)))
                for p in pkgs:
                    print("  %s-%s %s %s" % (p["name"], p["version"], p.get("arch"), p.get("hashes")))
        except (OSError, AdbError, UnicodeDecodeError, KeyError, struct.error) as e:
            print("%s: ERROR: %s" % (path, e), file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
