"""Directories whose opens the kernel drops, on the running kernel: it keeps their paths
(kfilter.h ``kf_dirs``), judges the names opened relative to them (through dups, ``..``
and in a forked child too), and gives the path to the records it keeps, from which the tracker
resolves ``fd.name`` and the cwd of ``fchdir``. The kernel's choice equals the replay's
model of it (``kfilter/replay.py`` ``Dirs``) on the same workload recorded whole."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.events import Event
from detector.kfilter.build import build
from detector.kfilter.replay import filtered
from detector.sources.ebpf import EbpfSource
from tests.detector.kfilter.kf_parts import rules_engine
from tests.realparts import need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
TYPES = frozenset({"openat", "close", "fcntl", "fchdir", "clone", "clone3", "fork", "vfork",
                   "execve", "procexit"})  # fmt: skip
WORKLOAD = r"""
import fcntl, json, os, sys
root = sys.argv[1]
os.close(os.open(root + "/start", os.O_RDONLY))
d = os.open(root + "/a", os.O_RDONLY | os.O_DIRECTORY)  # dropped: its path stays in the kernel
os.close(os.open("drop.txt", os.O_RDONLY, dir_fd=d))
os.close(os.open("keep.txt", os.O_RDONLY, dir_fd=d))
e = fcntl.fcntl(d, fcntl.F_DUPFD_CLOEXEC, 20)  # the same file: dropped, its fd marked
os.close(os.open("keep.txt", os.O_RDONLY, dir_fd=e))
os.close(os.open("drop.txt", os.O_RDONLY, dir_fd=e))
fcntl.fcntl(d, fcntl.F_GETFL)
sub = os.open("b", os.O_RDONLY | os.O_DIRECTORY, dir_fd=d)  # judged as root/a/b: dropped
os.close(os.open("keep2.txt", os.O_RDONLY, dir_fd=sub))
up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=sub)  # root/a again, as fts walks up
os.close(os.open("keep.txt", os.O_RDONLY, dir_fd=up))
os.close(os.open("drop.txt", os.O_RDONLY, dir_fd=up))
r = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
os.close(os.open(root[1:] + "/a/keep.txt", os.O_RDONLY, dir_fd=r))
os.close(os.open("../a/keep.txt", os.O_RDONLY, dir_fd=d))  # not normal: kept, with the path
try:  # joined, longer than the kernel judges: kept, with the path
    os.open("n" * 250, os.O_RDONLY, dir_fd=d)
except FileNotFoundError:
    pass
if os.fork() == 0:
    os.close(os.open("keep.txt", os.O_RDONLY, dir_fd=d))
    os.close(os.open("drop.txt", os.O_RDONLY, dir_fd=d))
    os._exit(0)
os.wait()
os.fchdir(e)
os.close(os.open("keep.txt", os.O_RDONLY))
os.close(os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=r))  # "/" has no other parent
for fd in (e, sub, r, d, up):
    os.close(fd)
os.close(os.open(root + "/end", os.O_RDONLY))
print(json.dumps({"d": d, "e": e, "sub": sub, "r": r, "up": up}))
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("dirs")
    (root / "a" / "b").mkdir(parents=True)
    for name in ("start", "end", "a/keep.txt", "a/drop.txt", "a/b/keep2.txt"):
        (root / name).write_text("x")
    rules = root / "rules.yaml"
    names = ", ".join(str(root / n) for n in ("start", "end", "a/keep.txt", "a/b/keep2.txt"))
    rules.write_text(f"- rule: Kept opens (test)\n  desc: d\n  condition: evt.type = openat and "
                     f"fd.name in ({names})\n  output: opened %fd.name\n  priority: WARNING\n")
    return root, [rules]


@pytest.fixture(scope="module")
def source() -> Iterator[EbpfSource]:
    need_bpf()
    with EbpfSource(syscalls=TYPES) as src:
        yield src


def _run(src: EbpfSource, root: Path) -> tuple[list[Event], dict[str, int]]:
    """The workload's events from its start marker to its end marker, and its fds."""
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(root)], stdout=subprocess.PIPE)
    events: list[Event] = []
    while proc.poll() is None or src.reader_pending():
        events += src.read(timeout=0.05)
    out, _ = proc.communicate()
    assert proc.returncode == 0
    pids = {proc.pid} | {e.res for e in events if e.tid == proc.pid and e.type in (
        "clone", "clone3", "fork", "vfork") and (e.res or 0) > 0}  # fmt: skip
    pids |= {e.tid for e in events if e.type in ("clone", "clone3", "fork", "vfork")
             and e.res == 0 and e.args.get("ptid") == proc.pid}  # fmt: skip
    ours = sorted((e for e in events if (e.ctx or {}).get("pid") in pids), key=lambda e: e.ts)
    names = [e.args.get("name") for e in ours]
    first, last = names.index(str(root / "start")), names.index(str(root / "end"))
    return ours[first : last + 1], json.loads(out)


def _seen(events: list[Event]) -> list[tuple[object, ...]]:
    return [(e.type, e.args.get("name"), e.args.get("dirfd", e.args.get("fd")), e.res,
             (e.ctx or {}).get("dirpath")) for e in events if e.type != "procexit"]  # fmt: skip


def test_relative_opens_of_dropped_directories_are_judged_and_resolved(
        source: EbpfSource, tree: tuple[Path, list[Path]]) -> None:  # fmt: skip
    root, files = tree
    engine = rules_engine(files)
    b = build(engine.rules, TYPES, chosen=True)  # type: ignore[attr-defined]
    assert b.plan.syscalls["openat"].dirpaths and b.plan.syscalls["fcntl"].dirfd
    source.set_filters(b.plan)
    try:
        kept, fds = _run(source, root)
    finally:
        source.set_filters(None)
    a = str(root / "a")
    opens = [(e.args["name"], (e.ctx or {}).get("dirpath")) for e in kept if e.type == "openat"]
    assert ("keep.txt", a) in opens and ("keep2.txt", a + "/b") in opens, opens
    assert ("../a/keep.txt", a) in opens and (str(root)[1:] + "/a/keep.txt", "/") in opens
    assert ("keep.txt", None) in opens  # after fchdir: relative to the cwd
    assert ("n" * 250, a) in opens
    assert opens.count(("keep.txt", a)) == 4  # d, its dup e, "b/..", d in the forked child
    assert all(n not in ("drop.txt", a, "b", "/", "..") for n, _ in opens), opens
    dirs = {fds[k] for k in ("d", "e", "sub", "r", "up")}
    assert not [e for e in kept if e.type == "fcntl" and e.args.get("fd") in dirs]
    closes = [e.args.get("fd") for e in kept if e.type == "close"]
    made = sum(e.type == "openat" and (e.res or 0) >= 0 for e in kept)
    assert len(closes) == made - 1 and fds["e"] not in closes  # the kept files' (not end)
    assert [(e.ctx or {}).get("dirpath") for e in kept if e.type == "fchdir"] == [a]
    # the tracker, which never saw the directories' opens, names every kept file
    from detector.state.tracker import StateTracker

    tracker = StateTracker(fetch_containers=False, read_proc=False)
    got = [tracker.process(e) for e in kept]
    named = [e.fd.name for e in got if e.type == "openat" and e.fd is not None]
    assert named.count(str(root / "a/keep.txt")) == 7 and str(root / "a" / ("n" * 250)) in named
    assert str(root / "a/b/keep2.txt") in named
    assert set(named) <= {str(root / n) for n in ("start", "end", "a/keep.txt", "a/b/keep2.txt",
                                                  "a/" + "n" * 250)}
    # the replay's model keeps the same events of the workload recorded whole
    whole, again = _run(source, root)
    assert again == fds
    assert _seen(list(filtered(b.plan, whole))) == _seen(kept)
