"""Writer of apk-tools v3 "ADB" files (packages and indexes), Python stdlib only.

Written from apk-tools' documentation (apk-v3(5), apk-package(5)) and the
schema numbers of its src/apk_adb.h; no apk-tools code is used. The reader the
tests use (tests/packaging/apkread.py) is a separate implementation.

Wire format, in short:
  file      = "ADBd" + raw-deflate( "ADB." + schema(u32 LE) + blocks )   (or uncompressed "ADB." ...)
  block     = u32 LE (type << 30 | 4 + len(payload)), payload, zero padding to 8 bytes
              type 0 ADB (the metadata tree), 1 SIG, 2 DATA (file contents)
  ADB block = u8 compat_ver 0, u8 ver 0, u16 0, u32 root value, then the values
  value     = u32 LE: 4-bit type + 28-bit immediate or offset into the ADB block
              0x0 special (0 null), 0x1 int (direct), 0x2 int32 / 0x3 int64 (offset),
              0x8/0x9/0xa blob with u8/u16/u32 length prefix (offset),
              0xd array / 0xe object (offset of u32 slots; slot 0 = number of slots)
"""

import hashlib
import struct

T_SPECIAL, T_INT, T_INT32, T_INT64 = 0x0, 0x1, 0x2, 0x3
T_BLOB8, T_BLOB16, T_BLOB32, T_ARRAY, T_OBJECT = 0x8, 0x9, 0xA, 0xD, 0xE
NULL = 0

BLOCK_ADB, BLOCK_SIG, BLOCK_DATA = 0, 1, 2
SCHEMA_PACKAGE = 0x676B6370  # "pckg"
SCHEMA_INDEX = 0x78646E69  # "indx"

# Slot numbers (apk_adb.h).
PI = dict(name=1, version=2, hashes=3, description=4, arch=5, license=6, origin=7,
          maintainer=8, url=9, repo_commit=10, build_time=11, installed_size=12,
          file_size=13, provider_priority=14, depends=15, provides=16, replaces=17,
          install_if=18, recommends=19, layer=20, tags=21)
DEP = dict(name=1, version=2, match=3)
ACL = dict(mode=1, user=2, group=3, xattrs=4)
FI = dict(name=1, acl=2, size=3, mtime=4, hash=5, target=6)
DI = dict(name=1, acl=2, files=3)
SCRIPT = {"trigger": 1, "pre-install": 2, "post-install": 3, "pre-deinstall": 4,
          "post-deinstall": 5, "pre-upgrade": 6, "post-upgrade": 7}
PKG = dict(info=1, paths=2, scripts=3, triggers=4, replaces_priority=5)
NDX = dict(description=1, packages=2, pkgname_spec=3)

DIGEST_SHA512 = 4  # apk's hash_alg number in a v0 signature


class Writer:
    """Builds the ADB block payload the way apk-tools lays it out: values
    appended in the order they are written, with their natural alignment,
    identical values shared. Callers write children before parents."""

    def __init__(self):
        self.buf = bytearray(8)  # adb_hdr: compat 0, ver 0, reserved 0, root (patched)
        self.seen = {}

    def _data(self, data, align, share=True):
        # As apk's adb_w_data: an identical earlier value is reused when its
        # offset suits the alignment; otherwise the new copy replaces it.
        if share:
            off = self.seen.get(data)
            if off is not None and off % align == 0:
                return off
        self.buf += b"\0" * ((-len(self.buf)) % align)
        off = len(self.buf)
        self.buf += data
        if share:
            self.seen[data] = off
        return off

    @staticmethod
    def _val(t, v):
        if v >= 0x10000000:
            raise ValueError("ADB block larger than 256 MiB")
        return (t << 28) | v

    def int(self, n):
        if n < 0:
            raise ValueError("negative integer")
        if n < 0x10000000:
            return self._val(T_INT, n)
        if n < 1 << 32:
            return self._val(T_INT32, self._data(struct.pack("<I", n), 4))
        return self._val(T_INT64, self._data(struct.pack("<Q", n), 4))

    def blob(self, b, share=True):
        if isinstance(b, str):
            b = b.encode()
        n = len(b)
        if n == 0:
            return NULL
        if n <= 0xFF:
            return self._val(T_BLOB8, self._data(struct.pack("<B", n) + b, 1, share))
        if n <= 0xFFFF:
            return self._val(T_BLOB16, self._data(struct.pack("<H", n) + b, 2, share))
        return self._val(T_BLOB32, self._data(struct.pack("<I", n) + b, 4, share))

    def blob_raw(self, data):
        """A blob never shared; returns (value, offset of its bytes) for patching."""
        v = self.blob(data, share=False)
        return v, (v & 0x0FFFFFFF) + 1

    def slots(self, vals, t=T_OBJECT):
        """Write an object (or array) from its slot values 1..n, trailing nulls
        dropped; an empty one is NULL, as apk writes it."""
        vals = list(vals)
        while vals and vals[-1] == NULL:
            vals.pop()
        if not vals:
            return NULL
        words = [len(vals) + 1] + vals
        return self._val(t, self._data(struct.pack("<%dI" % len(words), *words), 4))

    def fields(self, d):
        """slots() from a {slot number: value} dict."""
        return self.slots([d.get(i, NULL) for i in range(1, max(d, default=0) + 1)])

    def finish(self, root_val):
        struct.pack_into("<I", self.buf, 4, root_val)
        return self.buf


def block(btype, payload):
    raw = 4 + len(payload)
    if raw > 0x3FFFFFFF:
        raise ValueError("block too large")
    return struct.pack("<I", (btype << 30) | raw) + bytes(payload) + b"\0" * ((-raw) % 8)


def file_header(schema):
    return b"ADB." + struct.pack("<I", schema)


def deflate(data, level=9):
    """Raw deflate (no zlib/gzip header) as apk writes after "ADBd": level 9,
    window 15, memLevel 8, default strategy: deterministic for a given zlib."""
    import zlib
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return b"ADBd" + c.compress(data) + c.flush()


def sign_v0_payload(schema, key_id, adb_payload):
    """The bytes a v0 signature covers (apk signs them with SHA-512): the schema,
    the signature header (version 0, hash alg SHA-512, 16-byte key id) and the
    SHA-512 of the ADB block payload."""
    hdr = struct.pack("<BB", 0, DIGEST_SHA512) + key_id
    return hdr, struct.pack("<I", schema) + hdr + hashlib.sha512(bytes(adb_payload)).digest()


def der_items(data, pos, end):
    """Top-level (tag, content start, content end) items of DER data[pos:end]."""
    out = []
    while pos < end:
        tag, n = data[pos], data[pos + 1]
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[pos:pos + k], "big")
            pos += k
        out.append((tag, pos, pos + n))
        pos += n
    return out


def key_id(key_path):
    """apk's key id: the first 16 bytes of SHA-512 over the raw public key (the
    BIT STRING of the SubjectPublicKeyInfo: the EC point, or the RSA key)."""
    import subprocess
    spki = subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                          capture_output=True, check=True).stdout
    (tag, s, e), = der_items(spki, 0, len(spki))
    items = der_items(spki, s, e)
    if tag != 0x30 or len(items) != 2 or items[1][0] != 0x03:
        raise ValueError("unexpected public key encoding")
    _, bs, be = items[1]
    return hashlib.sha512(spki[bs + 1:be]).digest()[:16]  # skip the unused-bits byte


def signature_block(schema, adb_payload, key_path):
    """A SIG block over the ADB block, signed with the private key at key_path
    by the openssl CLI (ECDSA or RSA; SHA-512). Returns (block bytes, key id)."""
    import subprocess
    import tempfile
    kid = key_id(key_path)
    hdr, signed = sign_v0_payload(schema, kid, adb_payload)
    with tempfile.TemporaryDirectory() as tmp:
        msg = tmp + "/msg"
        with open(msg, "wb") as f:
            f.write(signed)
        sig = subprocess.run(["openssl", "dgst", "-sha512", "-sign", key_path, "-binary", msg],
                             capture_output=True, check=True).stdout
    return block(BLOCK_SIG, hdr + sig), kid


def parse_dependency(text):
    """'name', 'name>=1.2-r1', '!name' ... -> (name, version or None, match or None)."""
    # apk_version.h: EQUAL 1, LESS 2, GREATER 4, FUZZY 8, CONFLICT 16
    ops = [(">=", 4 | 1), ("<=", 2 | 1), ("~", 8 | 1), ("=", 1), (">", 4), ("<", 2)]
    conflict = text.startswith("!")
    if conflict:
        text = text[1:]
    for op, mask in ops:
        if op in text:
            name, ver = text.split(op, 1)
            match = mask | (16 if conflict else 0)
            return name, ver, (match if match != 1 else None)
    return text, None, (16 if conflict else None)


def write_dependencies(w, texts):
    """A dependency array as apk writes one from a string: each dependency's
    name, version and object in the order given, then the array, sorted by
    name and without duplicates, tagged as an object (apk's fromstring path)."""
    items = []
    for t in texts:
        name, ver, match = parse_dependency(t)
        nv = w.blob(name)
        vv = w.blob(ver) if ver else NULL
        mv = w.int(match) if match else NULL
        items.append(((name.encode(), (ver or "").encode(), match or 0), w.slots([nv, vv, mv])))
    items.sort(key=lambda x: x[0])
    vals = []
    for _, v in items:
        if not vals or vals[-1] != v:
            vals.append(v)
    return w.slots(vals)


def write_strings(w, texts):
    """A string array (tags) as apk writes one from a string."""
    return w.slots([w.blob(t) for t in texts])


# ---- reading back (what the index builder needs: a package's info object) ----

def unpack(data):
    """Decompress an .apk / .adb file: returns (schema, [(block type, payload)])."""
    import zlib
    if data[:4] == b"ADBd":
        d = zlib.decompressobj(-15)
        data = d.decompress(data[4:]) + d.flush()
    elif data[:4] != b"ADB.":
        raise ValueError("not an apk v3 file (no ADB magic)")
    if data[:4] != b"ADB." or len(data) < 8:
        raise ValueError("bad ADB file header")
    schema = struct.unpack_from("<I", data, 4)[0]
    blocks, pos = [], 8
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("truncated block header")
        ts = struct.unpack_from("<I", data, pos)[0]
        btype, raw = ts >> 30, ts & 0x3FFFFFFF
        if btype == 3 or raw < 4 or pos + raw > len(data):
            raise ValueError("bad block at %d" % pos)
        blocks.append((btype, data[pos + 4:pos + raw]))
        pos += raw + ((-raw) % 8)
    return schema, blocks


def copy(w, src, v):
    """Copy value v of ADB payload src into writer w, as apk's adb_w_copy:
    same type tags and byte forms, children before their object."""
    t, off = v >> 28, v & 0x0FFFFFFF
    if t in (T_SPECIAL, T_INT):
        return v
    if t in (T_INT32, T_INT64):
        size = 4 if t == T_INT32 else 8
        if off + size > len(src):
            raise ValueError("integer beyond the ADB block")
        return w._val(t, w._data(bytes(src[off:off + size]), size))
    if t in (T_BLOB8, T_BLOB16, T_BLOB32):
        fmt, size = {T_BLOB8: ("<B", 1), T_BLOB16: ("<H", 2), T_BLOB32: ("<I", 4)}[t]
        n = struct.unpack_from(fmt, src, off)[0]
        if off + size + n > len(src):
            raise ValueError("blob beyond the ADB block")
        return w._val(t, w._data(bytes(src[off:off + size + n]), size))
    if t in (T_ARRAY, T_OBJECT):
        n = struct.unpack_from("<I", src, off)[0]
        if n < 1 or off + 4 * n > len(src):
            raise ValueError("object beyond the ADB block")
        slots = struct.unpack_from("<%dI" % n, src, off)
        vals = [n] + [copy(w, src, s) for s in slots[1:]]
        return w._val(t, w._data(struct.pack("<%dI" % n, *vals), 4))
    raise ValueError("bad value type %x" % t)


def slot(src, v, i):
    """Slot i of object value v in payload src (NULL if absent)."""
    off = v & 0x0FFFFFFF
    n = struct.unpack_from("<I", src, off)[0]
    return struct.unpack_from("<I", src, off + 4 * i)[0] if i < n else NULL


def blob_at(src, v):
    t, off = v >> 28, v & 0x0FFFFFFF
    fmt, size = {T_BLOB8: ("<B", 1), T_BLOB16: ("<H", 2), T_BLOB32: ("<I", 4)}.get(t, (None, 0))
    if fmt is None:
        return b""
    n = struct.unpack_from(fmt, src, off)[0]
    return bytes(src[off + size:off + size + n])
