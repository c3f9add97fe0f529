#!/usr/bin/env python3
"""Attribute an unstripped binary's code and data to crates, from `nm -S --demangle=rust`.

    nm --size-sort -S --demangle=rust BINARY | bench/crates.py [TOP] [--ring-lib LIB.a]

Each address is counted once: aliases (musl's `qsort`/`__qsort`, weak and
strong names of one function, a symbol and its versioned name) share an
address and a size, and the most telling of their names decides.

A Rust symbol counts for the first crate named in it (`<ureq::x as
std::io::Read>` counts for ureq; `core::ptr::drop_in_place<rustls::..>` for
rustls, since a generic instance belongs to the crate it is instantiated
for). C and assembly symbols: ring's are prefixed `ring_core_…` when they
are global, but its assembly's local functions (`_vpaes_encrypt_core`,
`__ecp_nistz256_mul_montq`, `_aesni_ctr32_ghash_6x`, `ChaCha20_ctr32_ssse3`,
…) and its C files' static tables (the P-256 `ecp_nistz256_precomputed`,
`k25519Precomp`, fiat tables) are not. They are recognised by the names
ring's own static library defines (`--ring-lib`, default: the newest
`target/**/build/ring-*/out/libring_core_*.a` for any target, read with
`nm`), and by name patterns when no library is found. compiler-builtins'
unmangled helpers (`__aeabi_*`, `__udivdi3`, `memcpy` on some targets)
count as "compiler_builtins"; the rest of C is musl.
"""
import glob, os, re, subprocess, sys
from collections import Counter

GENERIC = {"core", "alloc", "std", "_"}
STD = "std/core/alloc"
# ring's unprefixed names, when its library cannot be read.
RING_PATTERNS = re.compile(
    r"^_*(aesni|aes_hw|aes_nohw|vpaes|x86_64_AES|AES_|gcm_|gcm_init|gcm_gmult|gcm_ghash|ghash|ecp_nistz256|"
    r"nistz256|ChaCha20|chacha20|Poly1305|poly1305|x25519|fiat_|bn_|bsaes|sha256_block|sha512_block|"
    r"k25519|kPrecomp|p256_|p384_|nistp|ecp_|LIMBS?_|limbs_|little_endian|OPENSSL_|CRYPTO_|GFp|"
    r"ge_|sc_|fe_|x25519_|ecp_nistz256_precomputed|Lpoly|Lone|LOne|Lord|Lrcon|Lbswap|Linc|Lsigma|Lrot|"
    r"K256|K512|Lk_|Lmasks?|Lshuffle|Lzero)"
)
BUILTINS = re.compile(
    r"^__(aeabi_\w+|(u?(div|mod)|mul|ash[lr]|lshr|clz|ctz|popcount|fix(uns)?|float(un)?|add|sub|cmp|eq|ne|lt|le|gt|ge|"
    r"unord|extend|trunc|neg|powi)\w*[0-9]\w*|sync_\w+|atomic_\w+|rust_probestack|chkstk\w*)$"
)


def ring_names(path):
    if not path:
        libs = glob.glob("target/**/build/ring-*/out/libring_core*.a", recursive=True)
        libs = [l for l in libs if os.path.getsize(l) > 0 and not l.endswith("_test.a")]
        if not libs:
            return None
        path = max(libs, key=os.path.getmtime)
    try:
        out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    names = set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3:
            names.add(p[2])
    return names


def classify(name, kind, ring):
    if name.startswith("ring_core_") or name.startswith("GFp_") or "ring_core" in name:
        return "ring"
    if ring is not None and name in ring:
        return "ring"
    # The first segment of each path (not std::sys's "sys").
    crates = re.findall(r"(?<![A-Za-z0-9_:])([a-z_][a-z0-9_]*)::", name)
    crates = [c.replace("dma_agent", "dma_agent (own code)") for c in crates]
    if crates:
        return next((c for c in crates if c not in GENERIC), STD)
    if ring is None and RING_PATTERNS.match(name):
        return "ring"
    if BUILTINS.match(name):
        return "compiler_builtins"
    return "musl (C)" if kind.lower() in "tw" else "musl data / other"


def main():
    args = sys.argv[1:]
    lib = None
    if "--ring-lib" in args:
        i = args.index("--ring-lib")
        lib = args[i + 1] if i + 1 < len(args) else None
        del args[i : i + 2]
    top = int(args[0]) if args else 25
    ring = ring_names(lib)
    # address -> (size, kind, [names]); one entry per address and size.
    seen = {}
    for line in sys.stdin:
        parts = line.split(None, 3)
        if len(parts) < 4:
            continue
        try:
            addr, size = int(parts[0], 16), int(parts[1], 16)
        except ValueError:
            continue
        kind, name = parts[2], parts[3].strip()
        e = seen.setdefault((addr, size), [kind, []])
        e[1].append(name)
    tot, n = Counter(), 0
    for (addr, size), (kind, names) in seen.items():
        n += size
        picks = [classify(nm, kind, ring) for nm in names]
        # The most telling name: a Rust crate or ring before musl/builtins.
        order = lambda c: (c.startswith("musl"), c == "compiler_builtins", c == STD)
        tot[sorted(picks, key=order)[0]] += size
    src = "ring's library" if ring is not None else "name patterns (no ring library found)"
    print(f"<!-- bench/crates.py: {len(seen)} symbols counted once each; ring's local names from {src} -->")
    print("| crate | bytes | share |\n|---|---:|---:|")
    for c, s in tot.most_common(top):
        print(f"| {c} | {s:,} | {100*s/n:.1f} % |")
    print(f"| all symbols | {n:,} | |")


if __name__ == "__main__":
    main()
