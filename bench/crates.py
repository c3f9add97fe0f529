#!/usr/bin/env python3
"""Attribute an unstripped binary's code and data to crates, from `nm -S --demangle=rust`.

    nm --size-sort -S --demangle=rust BINARY | bench/crates.py [TOP]

A symbol counts for the first crate named in it (`<ureq::x as std::io::Read>`
counts for ureq; `core::ptr::drop_in_place<rustls::..>` for rustls, since a
generic instance belongs to the crate it is instantiated for). C symbols of
ring go to ring, the rest of C (musl/glibc) to "libc (C)".
"""
import re, sys
from collections import Counter

GENERIC = {"core", "alloc", "std", "_"}
STD = "std/core/alloc"
tot, n = Counter(), 0
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    size, kind, name = int(parts[1], 16), parts[2], parts[3].strip()
    n += size
    if name.startswith("ring_core_") or name.startswith("GFp_") or "ring_core" in name:
        tot["ring"] += size; continue
    # The first segment of each path (not std::sys's "sys").
    crates = re.findall(r"(?<![A-Za-z0-9_:])([a-z_][a-z0-9_]*)::", name)
    crates = [c.replace("dma_agent", "dma_agent (own code)") for c in crates]
    pick = next((c for c in crates if c not in GENERIC), STD if crates else None)
    tot[pick or ("libc (C)" if kind.lower() in "tw" else "data/other")] += size
top = int(sys.argv[1]) if len(sys.argv) > 1 else 25
print("| crate | bytes | share |\n|---|---:|---:|")
for c, s in tot.most_common(top):
    print(f"| {c} | {s:,} | {100*s/n:.1f} % |")
print(f"| all symbols | {n:,} | |")
