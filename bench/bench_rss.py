"""The detector's resident memory with the stable rules (issue 14: <= 120 MiB; Falco 291 MB).

A real ``falcoctl-py run -r falco_rules.yaml`` (bench/ebpf_workloads.py's Detector): RSS after
start (/metrics answering, plus 2 s), after RSS_IDLE seconds idle (default 60), and after each
of issue 14's workloads, with its peak (VmHWM) and a breakdown by mapping (anonymous vs
file-backed, which libraries). Baselines in the same run: a bare Python interpreter and a bare
BCC program (a tracepoint and an 8 MiB ring buffer, as the detector's default) after load,
and after detector/bpf/memory.py's release_compiler.
Then the Python heap by module, from a second detector run under tracemalloc
(bench/rss_breakdown.py), and with RSS_BASELINE=<git revision>, the same phases for that
revision and this tree, alternated (the cuts measured in one run). RSS counts the ring
buffer's data pages twice (BCC and libbpf map them twice so records can wrap), as for Falco.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ebpf_workloads as ew
from bench.baseline import export_tree
from bench.rss_breakdown import print_breakdown, smaps

RULES = Path(os.environ.get("FALCO_RULES", Path(__file__).resolve().parents[2]
                            / "shared/falco-rules/falco_rules.yaml"))  # fmt: skip
IDLE = float(os.environ.get("RSS_IDLE", "60"))
TARGET_MIB = 120
BARE_BCC = r"""
import bcc
b = bcc.BPF(text='''
BPF_RINGBUF_OUTPUT(events, 2048);
BPF_ARRAY(hits, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_exit_getppid) {
    int k = 0; u64 *v = hits.lookup(&k); if (v) __sync_fetch_and_add(v, 1);
    return 0;
}''')
b["events"].open_ring_buffer(lambda ctx, data, size: None)
import os; os.getppid()
print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])
from detector.bpf.memory import release_compiler
print(release_compiler()[1] // 1024)
"""


def _status(pid: int, key: str) -> float:
    m = re.search(rf"{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def baselines() -> tuple[float, float, float]:
    """(bare Python RSS, bare BCC program RSS after load, the same after
    ``release_compiler``) in MiB, each a fresh interpreter."""
    code = "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    py = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    bcc = subprocess.run([sys.executable, "-c", BARE_BCC], capture_output=True, text=True,
                         check=True)  # fmt: skip
    loaded, released = (int(v) / 1024 for v in bcc.stdout.split()[-2:])
    return int(py.stdout.split()[-1]) / 1024, loaded, released


def _run_args(port: int) -> list[str]:
    return ["run", "-r", str(RULES), "-o", f"webserver.listen_port={port}",
            "-o", "webserver.listen_address=127.0.0.1", "-o", "watch_config_files=false"]


def phases(idle: float, show: bool = True) -> list[tuple[str, float]]:
    """(phase, RSS MiB): after start, after ``idle`` s, after each workload, the peak; with
    ``show``, a breakdown after start and at the end."""
    det = ew.Detector(RULES, ew.free_port())
    det.start()
    assert det.proc is not None
    pid = det.proc.pid
    out: list[tuple[str, float]] = []
    try:
        time.sleep(2.0)
        out.append(("after start", det.rss_mib()))
        if show:
            print_breakdown(smaps(pid))
        time.sleep(idle)
        out.append((f"after {idle:.0f} s idle", det.rss_mib()))
        with tempfile.TemporaryDirectory() as tmp:
            for label, cmd in ew.workloads(Path(tmp)):
                ew.cpu_time(cmd)
                time.sleep(0.5)  # the detector catches up with the ring buffer
                out.append((f"after {label}", det.rss_mib()))
        out.append(("peak (VmHWM)", _status(pid, "VmHWM")))
        if show:
            print("      at the end:")
            print_breakdown(smaps(pid))
    finally:
        det.stop()
    return out


def compare(rev: str) -> None:
    """(f) This tree against git revision ``rev``, alternated, 10 s idle, best of 2 each."""
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = export_tree(rev, Path(tmp))
        if base_dir is None:
            raise RuntimeError(f"git archive {rev} failed: RSS_BASELINE names no revision here")
        best: dict[str, list[tuple[str, float]]] = {}
        for _ in range(2):
            for name in (rev, "this tree"):
                if name == rev:
                    os.environ["PYTHONPATH"] = str(base_dir)
                try:
                    figs = phases(10.0, show=False)
                finally:
                    os.environ.pop("PYTHONPATH", None)
                old = best.get(name)
                best[name] = figs if old is None else [(k, min(v, w)) for (k, v), (_, w)
                                                       in zip(old, figs, strict=True)]
    print(f"(f) RSS MiB, {rev} -> this tree (best of 2 runs each, alternated):")
    for (label, before), (_, after) in zip(best[rev], best["this tree"], strict=True):
        print(f"      {label}: {before:.1f} -> {after:.1f} ({after / before:.2f}x)")


def python_heap() -> None:
    """(e) The Python heap by module, 20 s after start, under tracemalloc."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "heap.txt"
        argv = [sys.executable, "-m", "bench.rss_breakdown", str(out), "20",
                *_run_args(ew.free_port())]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(0.5)
            print("(e) Python heap by module, 20 s after start (tracemalloc run):")
            for line in (out.read_text().splitlines() if out.exists() else ["(no snapshot)"]):
                print(f"      {line}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def main() -> None:
    if os.geteuid() != 0:
        print("bench_rss: needs root (BPF); skipped")
        return
    from detector import driver

    driver.ensure_ready()
    bare_py, bare_bcc, released = baselines()
    print(f"baselines: bare Python {bare_py:.1f} MiB; bare BCC program after load "
          f"{bare_bcc:.1f} MiB, {released:.1f} MiB once its compiler is released")
    print(f"(a)-(d) falcoctl-py run with the stable rules (target <= {TARGET_MIB} MiB):")
    for label, mib in phases(IDLE):
        print(f"      {label}: {mib:.1f} MiB = {mib / bare_bcc:.2f}x the bare BCC program, "
              f"{mib / released:.2f}x it released")
    python_heap()
    if os.environ.get("RSS_BASELINE"):
        compare(os.environ["RSS_BASELINE"])


if __name__ == "__main__":
    main()
