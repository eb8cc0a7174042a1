"""Where the live detector's CPU per event goes beyond decode + state + rules (issue 14).

A real ``falcoctl-py run`` (stable rules, kernel filters on, run through
``bench/livegap_child.py``, which counts the state's lookups) watches issue 14's four workloads.
Per workload and tree: events delivered, CPU of every thread of the detector (schedstat, ns)
per event, the event loop thread's voluntary wake-ups, what those wake-ups cost at the price
of one empty epoll wake-up measured in the same run, and the state's /proc and user-database
reads. Also an idle window (other helpers' events land in it: the machine is shared).
LIVEGAP_BASELINE=/path/to/tree (with its own .venv) runs that tree too, alternating; only the
ratios within one run mean something.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import ebpf_workloads as ew

ROUNDS = int(os.environ.get("LIVEGAP_ROUNDS", "2"))
CHILD = Path(__file__).with_name("livegap_child.py")
OPTS = ["base_syscalls.custom_set[]=!init_module", "base_syscalls.custom_set[]=!finit_module"]


def wakeup_cost_us() -> float:
    """CPU (user + system) of one empty epoll wake-up at the reader's shortest delays."""
    ep = select.epoll()
    r, w = os.pipe()
    ep.register(r, select.EPOLLIN)
    t0, n = time.thread_time(), 0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        ep.poll(0.0005)
        ep.poll(0.001)
        n += 2
    cost = (time.thread_time() - t0) / n * 1e6
    for fd in (r, w):
        os.close(fd)
    ep.close()
    return cost


def threads(pid: int) -> dict[int, tuple[int, int, str]]:
    """Per thread: (CPU ns, voluntary context switches, name)."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{t}"
        try:
            ns = int(Path(f"{base}/schedstat").read_text().split()[0])
            status = Path(f"{base}/status").read_text()
        except (OSError, ValueError):
            continue
        vol = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
        out[int(t)] = (ns, vol, Path(f"{base}/comm").read_text().strip())
    return out


class Run:
    """One counting detector of one tree."""

    def __init__(self, python: str, cwd: str, rules: Path, tmp: Path) -> None:
        self.counts = tmp / "counts.json"
        self.det = ew.Detector(rules, ew.free_port())
        argv = [python, str(CHILD), "run", "-r", str(rules),
                "-o", f"webserver.listen_port={self.det.port}",
                "-o", "webserver.listen_address=127.0.0.1",
                "-o", "watch_config_files=false"]  # fmt: skip
        for o in OPTS:
            argv += ["-o", o]
        env = dict(os.environ, LIVEGAP_COUNTS=str(self.counts))
        self.det.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}))
        for _ in range(600):
            try:
                self.det.counters()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.5)

    def snap(self) -> tuple[dict[str, int], dict[int, tuple[int, int, str]], int]:
        time.sleep(0.6)  # the counters are written every 0.5 s
        assert self.det.proc is not None
        return (json.loads(self.counts.read_text()), threads(self.det.proc.pid),
                self.det.counters()[0])

    def stop(self) -> None:
        self.det.stop()


def delta(a: tuple[dict[str, int], dict[int, tuple[int, int, str]], int],
          b: tuple[dict[str, int], dict[int, tuple[int, int, str]], int]) -> dict[str, float]:
    """Figures between two snapshots: events, loop and other threads' CPU, wake-ups, reads."""
    main = min(b[1])  # the main thread (its tid is the pid) runs the event loop
    loop_ns = b[1][main][0] - a[1].get(main, (0, 0, ""))[0]
    wakeups = b[1][main][1] - a[1].get(main, (0, 0, ""))[1]
    other = sum(v[0] - a[1].get(t, (0, 0, ""))[0] for t, v in b[1].items() if t != main)
    d = {k: v - a[0].get(k, 0) for k, v in b[0].items()}
    kinds = ("proc_fd", "proc_socket", "proc_text", "proc_link", "proc_thread", "user_db",
             "cgroup_walk")
    out = {k: float(sum(v for key, v in d.items() if key.startswith(k + ":"))) for k in kinds}
    out.update(events=b[2] - a[2], loop_ms=loop_ns / 1e6, other_ms=other / 1e6,
               wakeups=wakeups)
    return out


def measure(python: str, cwd: str, rules: Path, jobs: list[tuple[str, str]]
            ) -> tuple[dict[str, float], list[dict[str, float]]]:  # fmt: skip
    """An idle window and each workload, under one detector of one tree."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(python, cwd, rules, Path(tmp))
        try:
            s0 = run.snap()
            time.sleep(3.0)
            idle = delta(s0, run.snap())
            figs = []
            for _, cmd in jobs:
                a = run.snap()
                ew.cpu_time(cmd)
                time.sleep(0.3)
                figs.append(delta(a, run.snap()))
        finally:
            run.stop()
    return idle, figs


def show(label: str, f: dict[str, float], cost: float) -> None:
    """One line of figures."""
    n = max(f["events"], 1)
    total = f["loop_ms"] + f["other_ms"]
    wake = f["wakeups"] * cost / 1e3
    print(f"    {label}: {f['events']:,.0f} ev, {total / n * 1e3:.1f} us/ev "
          f"(loop {f['loop_ms']:.0f} ms, other threads {f['other_ms']:.1f} ms); "
          f"{f['wakeups']:,.0f} wake-ups ~{wake:.0f} ms = {wake / n * 1e3:.1f} us/ev; "
          f"/proc fd {f['proc_fd']:.0f} (sockets {f['proc_socket']:.0f}), "
          f"/proc other {f['proc_text'] + f['proc_link']:.0f}, "
          f"threads {f['proc_thread']:.0f}, user db {f['user_db']:.0f}, "
          f"cgroup walks {f['cgroup_walk']:.0f}")  # fmt: skip


def main() -> None:
    """(t) the pace on and off in this process; (g) the trees alternately, each run's figures."""
    if os.geteuid() != 0:
        print("(g) skipped: needs root")
        return
    rules = Path(os.environ.get("FALCO_RULES", Path(__file__).resolve().parents[2]
                                / "shared/falco-rules/falco_rules.yaml"))  # fmt: skip
    if not rules.exists():
        print(f"(g) skipped: no rules file {rules} (set FALCO_RULES)")
        return
    trees = [("this tree", sys.executable, str(Path(__file__).resolve().parents[1]))]
    base = os.environ.get("LIVEGAP_BASELINE")
    if base:
        trees.insert(0, ("baseline " + base, f"{base}/.venv/bin/python", base))
    trickles()
    cost = wakeup_cost_us()
    print(f"(g) one empty epoll wake-up of the reader: {cost:.1f} us of CPU")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = ew.workloads(Path(tmp))
        for r in range(ROUNDS):
            for label, python, cwd in trees:
                idle, figs = measure(python, cwd, rules, jobs)
                print(f"(g) round {r + 1}, {label}:")
                show(f"idle 3 s ({idle['wakeups'] / 3.6:.0f} wake-ups/s)", idle, cost)
                for (name, _), f in zip(jobs, figs, strict=True):
                    show(name, f, cost)


if __name__ == "__main__":
    main()


TRICKLE = """import os, sys, time
for _ in range(int(sys.argv[2])):
    os.close(os.open(sys.argv[1], os.O_RDONLY))
    time.sleep(0.0005)
"""


def trickle(pace: float, n: int = 2000) -> tuple[int, int, float]:
    """(events, reads, reading thread's CPU seconds) for ``n`` opens 0.5 ms apart, read by
    a real SyscallFeed in this process with this ``pace`` (other processes' events count too)."""
    import threading

    from detector.config.load import load_config
    from detector.feeds import SyscallFeed
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import load_rules_files

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp, "trickle")
        target.write_text("x")
        rf = Path(tmp, "r.yaml")
        rf.write_text(f"- rule: r\n  desc: d\n  condition: evt.type = openat and fd.name = "
                      f"{target}\n  output: o\n  priority: INFO\n")  # fmt: skip
        feed = SyscallFeed(load_config(), frozenset({"openat"}),
                           RulesEngine(load_rules_files([rf])).rules)  # fmt: skip
        feed.pace = pace
        read = feed.source.read
        reads = [0, 0, 0.0]  # reads, events, CPU seconds

        def consume() -> None:
            t0 = time.thread_time()
            for ev in feed:
                if ev is not None:
                    reads[1] += 1
                    if ev.type == "openat" and ev.args.get("name") == str(target):
                        reads[0] += 1  # the opens seen; the last one ends the run
                        if reads[0] == n:
                            feed.stop()
            reads[2] = time.thread_time() - t0

        counted = [0]

        def counting_read(*, timeout: float, limit: int) -> list[Any]:
            got = read(timeout=timeout, limit=limit)
            counted[0] += bool(got)
            return got

        feed.source.read = counting_read  # type: ignore[method-assign,assignment]
        th = threading.Thread(target=consume)
        th.start()
        subprocess.run([sys.executable, "-c", TRICKLE, str(target), str(n)], check=True)
        th.join(timeout=60)
        feed.close()
    return int(reads[1]), counted[0], reads[2]


def trickles() -> None:
    """(t): the feed's pace on and off, alternating, best of 3 each."""
    from detector.feeds import PACE

    got: dict[float, list[tuple[int, int, float]]] = {0.0: [], PACE: []}
    for _ in range(3):
        for pace in got:
            got[pace].append(trickle(pace))
    for pace, runs in got.items():
        ev, reads, cpu = min(runs, key=lambda r: r[2])
        print(f"(t) 2,000 opens 0.5 ms apart, pace {pace * 1e3:.0f} ms: {ev:,} events in "
              f"{reads:,} reads, reader CPU {cpu * 1e3:.0f} ms ({cpu / max(ev, 1) * 1e6:.1f} us "
              f"per event; the run with the least CPU of 3)")  # fmt: skip
