"""bench_rss's breakdowns: a process's resident memory by mapping, and the Python heap by module.

``smaps(pid)`` groups /proc/PID/smaps by what is mapped (a library, ``[heap]``, anonymous
mappings, the BPF ring buffer) into anonymous and file-backed kilobytes. Run as
``python -m bench.rss_breakdown OUT SECONDS ARGS...`` it is ``falcoctl-py ARGS...`` with
``tracemalloc`` on, writing the Python heap by module to OUT after SECONDS (tracemalloc itself
roughly doubles the heap, so that run's RSS is not a figure).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_MAP = re.compile(r"^[0-9a-f]+-[0-9a-f]+ \S{4} \S+ \S+ \S+\s*(.*)$")


@dataclass
class Breakdown:
    """Resident KiB by mapping name, and the anonymous part of each."""

    rss: Counter[str] = field(default_factory=Counter)
    anon: Counter[str] = field(default_factory=Counter)
    rollup: dict[str, int] = field(default_factory=dict)


def _name(path: str) -> str:
    if not path:
        return "[anon]"
    if path.startswith("anon_inode:bpf-map"):
        return "bpf maps (ring buffer mapped twice)"
    return path.rsplit("/", 1)[-1]


def smaps(pid: int) -> Breakdown:
    """``/proc/PID/smaps`` grouped by mapping name, plus ``smaps_rollup``'s totals."""
    out = Breakdown()
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        m = _MAP.match(line)
        if m is not None:
            name = _name(m.group(1))
        elif line.startswith("Rss:"):
            out.rss[name] += int(line.split()[1])
        elif line.startswith("Anonymous:"):
            out.anon[name] += int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out.rollup[key] = int(value.split()[0])
    return out


def print_breakdown(b: Breakdown, top: int = 14) -> None:
    """The totals, then the largest mappings."""
    r = {k: v / 1024 for k, v in b.rollup.items()}
    rss, anon = r.get("Rss", 0.0), r.get("Anonymous", 0.0)
    print(f"      total {rss:.1f} MiB: anonymous {anon:.1f}, file-backed {rss - anon:.1f} "
          f"(shared clean {r.get('Shared_Clean', 0.0):.1f}); Pss {r.get('Pss', 0.0):.1f} MiB")
    for name, kib in b.rss.most_common(top):
        print(f"      {kib / 1024:7.1f} MiB (anon {b.anon[name] / 1024:5.1f})  {name}")


def heap_by_module(snapshot_stats: list[tuple[str, int]], top: int = 14) -> list[str]:
    """Lines 'MiB  module' from (filename, bytes) pairs, grouped by package directory."""
    by: Counter[str] = Counter()
    for filename, size in snapshot_stats:
        key = filename.split("site-packages/")[-1]
        key = re.sub(r"^.*?/(detector|falcoctl_py|bench)/", r"\1/", key)
        if key.startswith("/usr/lib/python3"):
            key = "stdlib:" + key.rsplit("/", 1)[-1]
        by["/".join(key.split("/")[:2])] += size
    total = sum(by.values())
    lines = [f"{total / 2**20:7.1f} MiB  (all traced Python allocations)"]
    lines += [f"{size / 2**20:7.1f} MiB  {key}" for key, size in by.most_common(top)]
    return lines


def _dump_later(out: Path, seconds: float) -> None:
    import tracemalloc

    time.sleep(seconds)
    snap = tracemalloc.take_snapshot()
    pairs = [(s.traceback[0].filename, s.size) for s in snap.statistics("filename")]
    out.write_text("\n".join(heap_by_module(pairs)) + "\n")


def traced_main(argv: list[str]) -> None:
    """``falcoctl-py`` with tracemalloc on and the heap written to argv[0] after argv[1] s."""
    import tracemalloc

    tracemalloc.start(1)
    out, seconds = Path(argv[0]), float(argv[1])
    threading.Thread(target=_dump_later, args=(out, seconds), daemon=True).start()
    sys.argv = ["falcoctl-py", *argv[2:]]
    from falcoctl_py.cli.main import main

    main()


if __name__ == "__main__":
    traced_main(sys.argv[1:])
