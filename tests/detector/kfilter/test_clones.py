"""Clones with the kernel filter: the caller's side of a clone goes (the child's own return
builds the child), and so does a vfork child's own return (its first kept event, which the
kernel gives the process context until it execs, builds it from its waiting caller), on the
running kernel and in a replay that must raise the same alerts.

The workload forks from a thread renamed by ``prctl`` (the child's comm is the thread's, not
its leader's) and reads ``/etc/shadow`` in the child without an exec, so the alert's
``proc.exepath``/``proc.cmdline``/``proc.pname`` come from the copy of the caller; it also
uses vfork (``subprocess``, ``sh``), clone3 (``posix_spawn``), fork (clone) and threads
(``CLONE_THREAD``, whose caller's side stays)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from detector.events import Event
from detector.kfilter.build import CLONES, build
from detector.kfilter.replay import filtered
from tests.detector.kfilter.kf_parts import alerts, rules_engine
from tests.realparts import need, need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
RULES_DIR = Path("/work/shared/falco-rules")
FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x4000, 0x8000, 0x10000
WORKLOAD = r"""
import ctypes, os, subprocess, threading
libc = ctypes.CDLL(None)

def shadow_child():
    pid = os.fork()
    if pid == 0:
        os.close(os.open("/etc/shadow", os.O_RDONLY))
        os._exit(0)
    os.waitpid(pid, 0)

def named():
    libc.prctl(15, b"worker", 0, 0, 0)
    shadow_child()
    subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)

t = threading.Thread(target=named)
t.start()
t.join()
shadow_child()
null = os.open("/dev/null", os.O_WRONLY)
pid = os.posix_spawn("/bin/cat", ["cat", "/etc/shadow"], dict(os.environ),
                     file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
os.waitpid(pid, 0)
subprocess.run(["sh", "-c", "cat /etc/shadow > /dev/null; /bin/true; /bin/true"], check=True)
"""


def _record(plan: object = None, attempts: int = 3) -> list[Event]:
    """The workload's events (its process tree, followed by parent pid) on the real kernel,
    with ``plan`` (None: no filter) in the kernel. A recording with drops proves nothing (other
    tests on the machine can flood the ring buffer): it is made again, up to ``attempts``."""
    from detector.sources.ebpf import EbpfSource
    from detector.sources.syscalls import SUPPORTED

    for _ in range(attempts):
        events: list[Event] = []
        with EbpfSource(syscalls=SUPPORTED) as src:
            if plan is not None:
                src.set_filters(plan)
            proc = subprocess.Popen([sys.executable, "-c", WORKLOAD])
            while proc.poll() is None or src.reader_pending():
                events += src.read(timeout=0.05)
            assert proc.returncode == 0
            drops = src.counters().n_drops
        if drops == 0:
            break
    assert drops == 0, f"{drops} drops in each of {attempts} recordings"
    tree, out = {proc.pid}, []
    for e in events:
        ctx = e.ctx or {}
        if ctx.get("pid") in tree or ctx.get("ppid") in tree:
            tree.add(int(ctx["pid"]))  # type: ignore[call-overload]
            out.append(e)
    return out


def _flags(e: Event) -> int:
    got = e.args.get("flags")
    return got if isinstance(got, int) else 0


def _vfork_children(events: Iterable[Event]) -> list[Event]:
    """The children's own returns of vfork clones (what the filter drops too)."""
    return [e for e in events if e.type in CLONES and e.res == 0
            and (e.type == "vfork" or _flags(e) & CLONE_VFORK)]  # fmt: skip


def _callers(events: Iterable[Event]) -> list[Event]:
    """The callers' sides of clones that make a process (what the filter drops)."""
    return [e for e in events if e.type in CLONES and (e.res or 0) > 0
            and not _flags(e) & (CLONE_PARENT | CLONE_THREAD)]  # fmt: skip


@pytest.fixture(scope="module")
def recording() -> list[Event]:
    need_bpf()
    need(all((RULES_DIR / f).exists() for f in FILES), f"the upstream rules in {RULES_DIR}")
    need(shutil.which("sh") is not None and os.path.exists("/bin/cat"), "sh and /bin/cat")
    return _record()


@pytest.mark.parametrize("name", FILES)
def test_without_the_callers_side_the_alerts_are_the_same(recording: list[Event],
                                                          name: str) -> None:  # fmt: skip
    files = [RULES_DIR / FILES[0]] + ([RULES_DIR / name] if name != FILES[0] else [])
    engine = rules_engine(files)
    plan = build(engine.rules, {e.type for e in recording}, chosen=True).plan  # type: ignore[attr-defined]
    callers = _callers(recording)
    assert {e.type for e in callers} >= {"vfork", "clone", "clone3"}, "the workload's clones"
    whole = alerts(engine, copy.deepcopy(recording))
    kept = list(filtered(plan, copy.deepcopy(recording)))
    vforked = _vfork_children(recording)
    assert {e.type for e in vforked} >= {"vfork", "clone3"}  # subprocess's, posix_spawn's
    assert not _callers(kept) and not _vfork_children(kept)
    assert len([e for e in kept if e.type in CLONES]) == len(
        [e for e in recording if e.type in CLONES]) - len(callers) - len(vforked)  # fmt: skip
    assert alerts(rules_engine(files), kept) == whole
    forked = [m for r, _, m in whole if "process=worker " in m and r.startswith("Read sensitive")]
    assert forked and "parent=python" in forked[0], whole  # the renamed thread's fork, no exec
    assert "proc_exepath=/" in forked[0] and "command=worker -c" in forked[0], forked[0]


def test_the_kernel_drops_the_callers_side_and_keeps_the_childs(recording: list[Event]) -> None:
    engine = rules_engine([RULES_DIR / FILES[0]])
    plan = build(engine.rules, {e.type for e in recording}, chosen=True).plan  # type: ignore[attr-defined]
    got = _record(plan)
    clones = [e for e in got if e.type in CLONES]
    assert not _callers(got), [(e.type, e.res, e.args.get("flags")) for e in _callers(got)]
    assert not _vfork_children(got)
    children = {e.tid for e in clones if e.res == 0}
    first: dict[int, Event] = {}
    for e in sorted(got, key=lambda e: e.ts):
        first.setdefault(e.tid, e)
    made = {e.tid for e in got if e.type in ("execve", "procexit")}
    vforked = {t for t in made - children  # marked until the exec (which the kernel unmarks)
               if (first[t].ctx or {}).get("vforked") or first[t].type == "execve"}
    assert vforked and made <= children | vforked  # the others returned from their clone
    for t in vforked:  # each vfork child's first event tells what its clone return did
        ctx = first[t].ctx or {}
        assert "cap_effective" in ctx and isinstance(ctx.get("start_age"), int), first[t]
        assert 0 <= ctx["start_age"] < 10**9, first[t]  # type: ignore[operator]
    redirected = [first[t] for t in vforked if first[t].type not in ("execve", "procexit")]
    assert redirected, "posix_spawn's dup2 before its exec"  # a kept event not an exec
    threads = [e for e in clones if (e.res or 0) > 0 and _flags(e)
               & CLONE_THREAD]  # fmt: skip
    assert threads  # a new thread's caller's side stays (its own return cannot vouch for it)
    assert {e.type for e in clones if e.res == 0} >= {"clone", "clone3"}  # fork's, threads'
    assert all(not _flags(e) & CLONE_VFORK for e in clones if e.res == 0)
