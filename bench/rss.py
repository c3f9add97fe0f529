#!/usr/bin/env python3
"""Where a running agent's anonymous memory is: each thread's stack, exactly,
and the rest (heap, .data/.bss).

    bench/rss.py PID          (needs read access to /proc/PID/pagemap: root or the same user)

A thread's stack is found from its stack pointer (/proc/PID/task/TID/syscall)
and the guard page under it in /proc/PID/maps; its resident pages are counted
one by one from /proc/PID/pagemap, so a heap chunk the kernel merged into the
same mapping is not counted as stack (the older "RSS of the mapping holding
the stack pointer" figure counted it). The stack sizes come from the
agent's table of threads, `STACKS` in src/stack.rs.
"""
import os
import re
import struct
import sys

KIB = 1024
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "stack.rs")


def stack_table():
    """Thread name (or prefix ending in "-") -> stack size in KiB, read from
    the agent's own table (`STACKS` in src/stack.rs), so it cannot drift."""
    text = open(SRC).read()
    body = text[text.index("pub const STACKS"):]
    body = body[:body.index("];")]
    table = {name: int(kib) for name, kib in re.findall(r'\("([a-z-]+)",\s*(\d+)\s*\*\s*KIB\)', body)}
    if not table:
        sys.exit(f"no thread stacks found in {SRC}")
    return table


STACK_KIB = stack_table()


def stack_kib(name):
    for k, v in STACK_KIB.items():
        if name == k or (k.endswith("-") and name.startswith(k)):
            return v
    return None


def main():
    pid = int(sys.argv[1])
    maps = []
    for line in open(f"/proc/{pid}/maps"):
        p = line.split()
        a, b = (int(x, 16) for x in p[0].split("-"))
        maps.append((a, b, p[1], p[5] if len(p) > 5 else ""))
    pagemap = open(f"/proc/{pid}/pagemap", "rb")
    page = os.sysconf("SC_PAGESIZE")

    def resident(a, b):
        n = 0
        for pg in range(a // page, b // page):
            pagemap.seek(pg * 8)
            n += struct.unpack("<Q", pagemap.read(8))[0] >> 63
        return n * page // KIB

    rows, total = [], 0
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        fields = open(f"/proc/{pid}/task/{tid}/syscall").read().split()
        if len(fields) < 9:
            rows.append((name, "?", "running")); continue
        sp = int(fields[7], 16)
        i = next((i for i, m in enumerate(maps) if m[0] <= sp < m[1]), None)
        if i is None:
            rows.append((name, "?", "no mapping")); continue
        a, b, _, path = maps[i]
        if path == "[stack]":
            kib = resident(a, b)
            rows.append((name, kib, "main thread"))
            total += kib; continue
        size = stack_kib(name)
        guard = i > 0 and maps[i - 1][2] == "---p" and maps[i - 1][1] == a
        if size is None or not guard:
            rows.append((name, "?", "unknown stack size" if size is None else "no guard page under it")); continue
        # musl: [guard][stack][TLS, thread struct]; one more page for the latter.
        top = min(b, a + size * KIB + page)
        kib = resident(a, top)
        rows.append((name, kib, f"{size} KiB stack, {(top - sp) // KIB} KiB deep now"))
        total += kib
    anon = 0
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Anonymous:"):
            anon = int(line.split()[1])
    print("| thread | stack RSS (KiB) | |")
    print("|---|---:|---|")
    for name, kib, what in rows:
        print(f"| {name} | {kib} | {what} |")
    print()
    print(f"anonymous {anon} KiB = thread stacks {total} KiB + heap and .data/.bss {anon - total} KiB")


if __name__ == "__main__":
    main()
