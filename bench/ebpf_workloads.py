"""Issue 14's workloads, bare and watched by ``falcoctl-py run`` with the stable rules.

Each workload runs under ``sh -c`` pinned to CPU 1; its CPU time (user + system of it and its
children, where the kernel charges BPF programs) is compared bare vs watched, in alternating
rounds (best of each), because the machine is shared. The detector is a real
``falcoctl-py run`` process: its CPU time (all threads and children, in ns from a ``cpuacct``
group of its own: ``bench/cpumeter.py``) and resident memory
are read around each workload, the kernel's counters (offered, dropped) from its /metrics.
"Offered" here is what the kernel handed to the ring buffer; the workload's own syscall count
(what would be offered with no kernel filter at all) comes from one untimed ``strace -c -f``.
The detector sees the whole machine: other developers' processes add events to its CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from bench.cpumeter import CpuMeter

T = TypeVar("T")

ROUNDS = int(os.environ.get("EBPF_ROUNDS", "2"))  # workload rounds, best of each
TCP_C = r"""
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    int srv = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(srv, (void *)&a, sizeof a) || listen(srv, 128) || getsockname(srv, (void *)&a, &al))
        return 1;
    pid_t child = fork();
    if (child == 0) {  /* the server: accept and close */
        for (int i = 0; i < n; i++) close(accept(srv, 0, 0));
        _exit(0);
    }
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (void *)&a, sizeof a)) return 1;
        close(c);
    }
    waitpid(child, 0, 0);
    return 0;
}
"""
SMALL_C = """#include <stdio.h>
#include <string.h>
static int f{i}(const char *s) {{ int h = {i}; while (*s) h = h * 31 + *s++; return h; }}
int main(int argc, char **argv) {{
    char buf[64];
    snprintf(buf, sizeof buf, "%s-%d", argc > 1 ? argv[1] : "x", argc);
    for (int k = 0; k < 100; k++) if (f{i}(buf) == k) puts(buf);
    return (int)strlen(buf) & 1;
}}
"""


def workloads(tmp: Path) -> list[tuple[str, str]]:
    """(label, shell command) of the four workloads, their files made in ``tmp``."""
    src = tmp / "src"
    src.mkdir()
    for i in range(24):
        (src / f"p{i}.c").write_text(SMALL_C.format(i=i))
    (tmp / "tcp.c").write_text(TCP_C)
    subprocess.run(["gcc", "-O2", "-o", str(tmp / "tcp"), str(tmp / "tcp.c")], check=True)
    return [
        ("24 gcc -O1 builds", f"cd {src} && for f in *.c; do gcc -O1 -o ${{f%.c}} $f; done"),
        ("1,500 fork+exec of /bin/true",
         "i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done"),
        ("cat of every file under /usr/include",
         "find /usr/include -type f -exec cat {} + > /dev/null"),
        ("3,000 TCP connects to a local server", f"{tmp / 'tcp'} 3000"),
    ]  # fmt: skip


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_time(cmd: str) -> float:
    """CPU time (user + system) of ``cmd`` and its children, pinned to CPU 1."""
    proc = subprocess.Popen(["sh", "-c", cmd], preexec_fn=lambda: os.sched_setaffinity(0, {1}),
                            stdout=subprocess.DEVNULL)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"workload failed: {cmd}")
    return float(usage.ru_utime + usage.ru_stime)


def syscall_counts(cmd: str) -> dict[str, int]:
    """Syscalls the workload makes, by name (one untimed ``strace -c -f`` run)."""
    if shutil.which("strace") is None:
        return {}
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        argv = ["strace", "-f", "-c", "-o", out.name, "sh", "-c", cmd]
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        counts: dict[str, int] = {}
        for line in out.read().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[-1].isidentifier() and parts[-2].isdigit():
                counts[parts[-1]] = int(parts[-2])
            elif len(parts) >= 5 and parts[-1].isidentifier() and parts[-3].isdigit():
                counts[parts[-1]] = int(parts[-3])  # a column of errors before the name
        counts.pop("total", None)
        return counts


@dataclass
class Detector:
    """A ``falcoctl-py run`` child: its pid, CPU time, RSS and kernel counters."""

    rules: Path
    port: int
    options: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    meter: CpuMeter | None = None
    errors: IO[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("falcoctl-py")
        argv = [
            str(exe),
            "run",
            "-r",
            str(self.rules),
            "-o",
            f"webserver.listen_port={self.port}",
            "-o",
            "webserver.listen_address=127.0.0.1",
            "-o",
            "watch_config_files=false",
        ]
        for opt in self.options:
            argv += ["-o", opt]
        # its log, for the error if it exits; closed by ``stop``
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.errors,
                                     preexec_fn=lambda: os.sched_setaffinity(0, {0}))  # fmt: skip
        self.meter = CpuMeter.attach(self.proc.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.errors.seek(0)
                tail = self.errors.read().decode(errors="replace").strip()[-400:]
                self.stop()  # its cpuacct group goes too
                raise RuntimeError(f"falcoctl-py run exited ({code}): {tail}")
            try:
                self.counters()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("falcoctl-py run did not serve /metrics within 120 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None
        if self.meter is not None:
            self.meter.detach()
            self.meter = None
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def cpu(self) -> float:
        """CPU seconds of every thread and child so far."""
        assert self.meter is not None
        return self.meter.seconds()

    def rss_mib(self) -> float:
        assert self.proc is not None
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        m = re.search(r"VmRSS:\s+(\d+) kB", text)
        return int(m.group(1)) / 1024 if m else 0.0

    def counters(self) -> tuple[int, int]:
        """(offered, dropped) as the kernel counted them, from /metrics."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()

        def get(name: str) -> int:
            m = re.search(rf"^falcosecurity_scap_{name}_total\S* (\S+)$", text, re.M)
            if m is None:
                raise OSError(f"no {name} in /metrics")
            return int(float(m.group(1)))

        return get("n_evts"), get("n_drops")


@dataclass
class Figures:
    """Per workload: bare and watched CPU, detector CPU, kernel counters, syscalls made."""

    bare: list[float] = field(default_factory=list)
    watched: list[float] = field(default_factory=list)
    detector: list[float] = field(default_factory=list)
    offered: int = 0
    dropped: int = 0
    syscalls: int = 0
    resolution: str = ""  # how finely the detector's CPU was counted


def measure(rules: Path, port: int, options: list[str]) -> tuple[list[str], list[Figures], float]:
    """Labels, figures per workload, and the detector's RSS (MiB) after the workloads."""
    rss = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        jobs = workloads(Path(tmp))
        figs = [Figures(syscalls=sum(syscall_counts(cmd).values())) for _, cmd in jobs]
        for _, cmd in jobs:
            cpu_time(cmd)  # warm the page cache
        for _ in range(ROUNDS):
            for fig, (_, cmd) in zip(figs, jobs, strict=True):
                fig.bare.append(cpu_time(cmd))
            det = Detector(rules, port, options)
            det.start()
            try:
                time.sleep(1.0)  # the start-up scan of /proc is over
                for fig, (_, cmd) in zip(figs, jobs, strict=True):
                    c0, (n0, d0) = det.cpu(), det.counters()
                    fig.watched.append(cpu_time(cmd))
                    time.sleep(0.3)  # the detector catches up with what is in the ring buffer
                    fig.detector.append(det.cpu() - c0)
                    n1, d1 = det.counters()
                    fig.offered, fig.dropped = fig.offered + n1 - n0, fig.dropped + d1 - d0
                rss = det.rss_mib()
                for fig in figs:
                    fig.resolution = det.meter.resolution if det.meter else ""
            finally:
                det.stop()
    return [label for label, _ in jobs], figs, rss


def report(title: str, labels: list[str], figs: list[Figures], rss: float) -> None:
    """Print the ratios of one configuration."""
    print(f"(w) {title}")
    for label, f in zip(labels, figs, strict=True):
        b, w, d = min(f.bare), min(f.watched), min(f.detector)
        delivered = f.offered / ROUNDS
        per_sys = f"{d / f.syscalls * 1e6:.2f} us" if f.syscalls else "n/a (no strace)"
        print(f"    {label}: slowdown {w / b:.3f} x (CPU {b:.2f}s bare, {w:.2f}s watched, "
              f"spread {max(f.bare) / b:.2f}/{max(f.watched) / w:.2f}); detector CPU {d:.2f}s "
              f"= {d / w:.3f} x the workload's; per syscall the workload made "
              f"({f.syscalls:,}): {per_sys}; per event delivered ({delivered:,.0f}/run): "
              f"{d / max(delivered, 1) * 1e6:.1f} us; dropped {f.dropped:,}")  # fmt: skip
    print(f"    detector RSS after the workloads: {rss:.0f} MiB (target <= 120 MiB); its CPU "
          f"counted in {figs[0].resolution if figs else '?'}")


def capture_each(open_source: Callable[[], Any], capture: Callable[[Any, str], list[T]],
                 unit: str) -> tuple[dict[str, list[T]], Any]:
    """Per workload, what ``capture(source, cmd)`` took while it ran (the page cache warmed
    before the source opens, what was already in it drained), and the closed source."""
    got: dict[str, list[T]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = workloads(Path(tmp))
        for _, cmd in jobs:
            cpu_time(cmd)  # warm the page cache
        src = open_source()
        try:
            while src.read(timeout=0):
                pass
            for label, cmd in jobs:
                got[label] = capture(src, cmd)
                print(f"{label}: {len(got[label]):,} {unit}", file=sys.stderr)
        finally:
            src.close()
    return got, src


def rules_plan(rules: Path) -> tuple[frozenset[str], Any]:
    """The syscalls ``rules`` select (module loads removed: no tracepoint of their own here)
    and the kernel filter plan built from them."""
    from detector.kfilter.build import build
    from detector.rules.load.loader import load_rules_files
    from detector.sources.syscalls import select_syscalls

    loaded = load_rules_files([str(rules)])
    events: set[str] = set()
    for r in loaded.rules:
        if r.enabled and r.source == "syscall" and r.evttypes:
            events |= set(r.evttypes)
    selected = select_syscalls(events, custom_set=["!init_module", "!finit_module"])
    return selected, build(loaded.rules, selected).plan


def filter_shares(rules: Path) -> None:
    """(k) The share of offered events the kernel filter of the rules keeps, per workload and
    per event type: the kernel's own per-syscall counters (events seen, dropped), read around
    each workload (other processes' events of that time included)."""
    from detector.sources.ebpf import EbpfSource

    selected, plan = rules_plan(rules)
    with tempfile.TemporaryDirectory() as tmp, EbpfSource(syscalls=selected) as src:
        src.set_filters(plan)
        for label, cmd in workloads(Path(tmp)):
            while src.read(timeout=0):
                pass
            before = src.filter_stats()
            proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL)
            while proc.poll() is None or src.reader_pending():
                src.read(timeout=0.05)
            after = src.filter_stats()
            seen = {t: after[t][0] - before.get(t, (0, 0))[0] for t in after}
            kept = {t: seen[t] - (after[t][1] - before.get(t, (0, 0))[1]) for t in after}
            total, k = sum(seen.values()), sum(kept.values())
            types = ", ".join(f"{t} {kept[t] / n:.0%} of {n:,}"
                              for t, n in sorted(seen.items(), key=lambda x: -x[1])[:8] if n)
            print(f"(k) {label}: the kernel kept {k / max(total, 1):.1%} of {total:,} events "
                  f"offered; by type: {types}")  # fmt: skip
