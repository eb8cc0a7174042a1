"""The eBPF source's read loop: the previous one, the pure-Python one, the compiled one.

(c) a crafted ring buffer of a busy node's mix (openat/close/fcntl/dup2 with some execve, vfork,
    procexit and connect): events/s of each loop, and of the previous decoder (``decode.py`` at
    BASELINE, loaded from git; LEAN_BASELINE=<rev> picks another);
(s) the real kernel: a C storm of open/read/close/getppid pinned to CPU 1, EbpfSource with each
    loop on CPU 0: events/s and the kernel's exact drop counts;
(w) issue 14's workloads (bench/ebpf_workloads.py) watched in this process by the source, the
    state tracker and the stable rules: detector CPU (this process, user + system) per
    delivered event with each loop, split into read+decode, state and rules;
(W) with LEAN_FULL=1: the same workloads under a real ``falcoctl-py run`` with the stable rules,
    once per loop (bench/ebpf_workloads.py's figures: slowdown, detector CPU, drops, RSS).
All figures are ratios within one run (best of ROUNDS, loops alternated): the machine is shared.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from detector.bpf.ringbuf import RingReader
from detector.sources import fast
from detector.sources.layout import HDR, PROC, TUPLE
from detector.sources.syscall_nrs import NUMBERS
from detector.sources.syscalls import NR_PROCEXIT

BASELINE = "0007e54"  # main before this work
ROUNDS = 3
RING = 1 << 22  # 4 MiB of records
REPO = Path(__file__).resolve().parents[1]


def _rec(nr: int, ret: int, args: tuple[int, ...], strs: tuple[bytes, ...] = (), *,
         proc: bool = False, tup: bool = False, sa: bytes = b"") -> bytes:  # fmt: skip
    lens = [len(s) for s in strs] + [0] * (3 - len(strs)) + [len(sa)]
    kind = (1 if proc else 0) | (2 if tup else 0)
    hdr = HDR.pack(1_000, 4242 << 32 | 4243, ret, *args, *[0] * (6 - len(args)), 0, nr, 1, *lens,
                   kind, 0, 0, b"make\0", 0, 0, 0)  # fmt: skip
    body = PROC.pack(*([1] * 18), b"cc1\0", b"", b"", b"", b"") if proc else b""
    body += TUPLE.pack(2, 1, 6, 4000, 80, 0, 1, b"\x7f\0\0\x01" + b"\0" * 12,
                       b"\x7f\0\0\x01" + b"\0" * 12) if tup else b""  # fmt: skip
    return hdr + body + b"".join(strs) + sa


def mix() -> list[bytes]:
    """100 records in the proportions the four workloads showed (bench notes in lean.md)."""
    path = b"/usr/include/x86_64-linux-gnu/bits/types.h\0"
    sin = b"\x02\x00\x00\x50\x7f\x00\x00\x01" + b"\0" * 8
    out = [_rec(NUMBERS["openat"], 3, (0xFFFFFF9C, 0, 0o400000, 0), (path,))] * 30
    out += [_rec(NUMBERS["close"], 0, (3,))] * 35
    out += [_rec(NUMBERS["fcntl"], 0, (3, 1, 0))] * 20
    out += [_rec(NUMBERS["dup2"], 1, (3, 1))] * 3
    out += [_rec(NUMBERS["socket"], 4, (2, 1, 0))] * 3
    out += [_rec(NUMBERS["connect"], 0, (4, 0, 16), tup=True, sa=sin)] * 3
    out += [_rec(NUMBERS["vfork"], 77, (), proc=True)] * 2
    out += [_rec(NUMBERS["execve"], 0, (), (b"/usr/bin/cc\0", b"cc\0-c\0x.c\0", b"A=1\0"),
                 proc=True)] * 2  # fmt: skip
    out += [_rec(NR_PROCEXIT, 0, ())] * 2
    return out


def crafted() -> tuple[bytearray, bytearray, int]:
    """(consumer page, producer page + data twice, records) of a full crafted ring buffer."""
    page = 4096
    prod = bytearray(page + 2 * RING)
    pos = n = 0
    recs = mix()
    while True:
        r = recs[n % len(recs)]
        size = 8 + len(r) + (-(8 + len(r)) % 8)
        if pos + size > RING:
            break
        prod[page + pos : page + pos + 8] = (len(r)).to_bytes(4, "little") + bytes(4)
        prod[page + pos + 8 : page + pos + 8 + len(r)] = r
        pos, n = pos + size, n + 1
    prod[page + RING :] = prod[page : page + RING]
    prod[:8] = pos.to_bytes(8, "little")
    return bytearray(8), prod, n


def old_decoder(rev: str) -> Callable[..., Any] | None:
    """``decode`` of ``detector/sources/decode.py`` at ``rev`` (None without git or the rev)."""
    try:
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:detector/sources/decode.py"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "decode_old.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("decode_old", path)
    assert spec is not None and spec.loader is not None
    mod: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shutil.rmtree(path.parent)
    return getattr(mod, "decode", None)


def _crafted_rates() -> None:
    cons, prod, n = crafted()
    page = 4096
    loops: dict[str, fast.Consume] = {"python": fast.consume_python}
    if fast.LEAN is not None:
        loops["compiled"] = fast.consume_compiled
    old = old_decoder(os.environ.get("LEAN_BASELINE", BASELINE))
    if old is not None:
        def consume_old(reader: RingReader, limit: int, first: int, boot: int) -> list[Any]:
            places, cons_pos = reader.take(limit)
            buf = reader.buffer
            out = [old(buf, first + i, boot, pos) for i, (pos, _) in enumerate(places)]
            reader.release(cons_pos)
            return out

        loops = {"previous": consume_old, **loops}
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, run in loops.items():
            cons[:] = bytes(8)
            reader = RingReader(cons, prod, RING, data=page)
            start, got = time.process_time(), 0
            while batch := run(reader, 4096, got + 1, 0):
                got += len(batch)
            rate = got / (time.process_time() - start)
            assert got == n, (name, got, n)
            best[name] = max(best.get(name, 0.0), rate)
    base = best.get("previous") or best["python"]
    for name, rate in best.items():
        print(f"(c) crafted buffer, {n:,} records, loop {name}: {rate:,.0f} ev/s = "
              f"{rate / base:.2f} x {'previous' if 'previous' in best else 'python'}")
    if old is None:
        print("(c) previous decoder: no git history here (set LEAN_BASELINE)")
    if fast.LEAN is None:
        print(f"(c) compiled loop: {fast.WHY_NOT}")


def main() -> None:
    _crafted_rates()
    if os.geteuid() != 0 or shutil.which("gcc") is None:
        print("(s)/(w) skipped: needs root and gcc")
        return
    from bench import lean_kernel

    lean_kernel.storm_rates(ROUNDS)
    lean_kernel.workloads(2)
    if os.environ.get("LEAN_FULL") == "1":
        lean_kernel.full_runs()
    else:
        print("(W) the same under a real `falcoctl-py run`, each loop: set LEAN_FULL=1")


if __name__ == "__main__":
    main()
    sys.exit(0)
