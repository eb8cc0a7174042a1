"""Socket atoms on the running kernel: with the stable rules minus the one rule that reads TCP
sockets later (the dup redirect rule), a TCP connect to 127.0.0.1, a private address or a port
no rule names goes in the kernel with its socket, accept and closes; a connect to a public
address on a port the SSH rule names reaches userspace, and so does its socket's close."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.events import Event
from detector.kfilter.build import build
from detector.rules.load.loader import load_rules_files
from detector.sources.ebpf import EbpfSource
from detector.state.tracker import StateTracker
from tests.detector.bpf.test_kfilter_atoms import _mine_until
from tests.eventually import eventually
from tests.realparts import need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
STABLE = Path("/work/shared/falco-rules/falco_rules.yaml")
REDIRECT = "Redirect STDOUT/STDIN to Network Connection in Container"
TYPES = {"socket", "connect", "accept", "accept4", "bind", "listen", "close", "openat"}


@pytest.fixture(scope="module")
def source() -> Iterator[EbpfSource]:
    need_bpf()
    with EbpfSource(syscalls=TYPES, skip_self=False) as src:
        yield src


def test_connects_are_decided_on_the_kernel_socket(source: EbpfSource, tmp_path: Path) -> None:
    rules = [r for r in load_rules_files([STABLE]).rules if r.name != REDIRECT]
    b = build(rules, TYPES)
    assert not b.sock_readers and not b.plan.filter_of("connect").keep_all
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    source.set_filters(b.plan)
    _mine_until(source, f"{tmp_path}/.")  # the events of before
    results = {}
    fds = {}
    for name, addr in (("loopback", ("127.0.0.1", port)), ("private", ("10.1.2.3", 443)),
                       ("odd port", ("8.8.8.8", 9)), ("outbound", ("8.8.8.8", 443))):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        results[name] = s.connect_ex(addr)
        fds[name] = s.detach()
    conn, _ = server.accept()
    accepted = conn.detach()
    for fd in (*fds.values(), accepted):
        os.close(fd)
    got = _mine_until(source, f"{tmp_path}/.")
    server.close()
    source.set_filters(None)
    assert results["outbound"] == errno.EINPROGRESS
    connects = [(e.ctx or {}).get("rip") for e in got if e.type == "connect"]
    assert connects == ["8.8.8.8"]
    assert [e.args.get("fd") for e in got if e.type == "connect"] == [fds["outbound"]]
    assert not [e for e in got if e.type in ("socket", "accept", "accept4")]
    after = got[next(i for i, e in enumerate(got) if e.type == "connect"):]
    closed = [e.args.get("fd") for e in after if e.type == "close"]
    assert closed == [fds["outbound"]]  # its connect was kept: the tracker has its entry
    stats = source.filter_stats()
    assert stats["connect"][1] >= 3 and stats["socket"][1] >= 4 and stats["close"][1] >= 4


DUP2_CHILD = r"""
import os, socket
l = socket.create_server(("127.0.0.1", 0))
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
b = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
def ends(s, server):
    me, peer = s.getsockname()[:2], s.getpeername()[:2]
    name = "%s:%d->%s:%d" % ((peer + me) if server else (me + peer))
    return "%s %d %d %d" % (name, me[1], peer[1], server)
print(c.fileno(), ends(c, 0))
print(a.fileno(), ends(a, 1))
os.dup2(c.fileno(), 0)
os.dup2(a.fileno(), 0)
os.dup2(b.fileno(), 0)
pid = os.fork()
if pid == 0:
    os.dup2(c.fileno(), 0)
    os._exit(0)
os.waitpid(pid, 0)
print(b.fileno(), pid)
"""
DUP_TYPES = TYPES | {"dup2", "clone", "clone3"}


def _dup2_run(plan: object) -> tuple[list[Event], list[str], dict[str, tuple[int, int]]]:
    """DUP2_CHILD's events (and its fork's) under ``plan``, its output, the kernel counters."""
    got: list[Event] = []
    with EbpfSource(syscalls=DUP_TYPES, skip_self=False) as src:
        src.set_filters(plan)
        child = subprocess.Popen([sys.executable, "-c", DUP2_CHILD], stdout=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, text=True)  # fmt: skip
        out, _ = child.communicate(timeout=60)

        def probe() -> bool:
            while batch := src.read(timeout=0.05):
                got.extend(e for e in batch if child.pid in ((e.ctx or {}).get("pid"),
                                                             (e.ctx or {}).get("ppid")))
            return sum(e.type == "dup2" and e.res == 0 for e in got) >= 5  # stdin's, then ours

        eventually(probe, timeout=60, what="the child's five dup2 events onto fd 0")
        stats = src.filter_stats()
    assert child.returncode == 0
    return got, out.splitlines(), stats


def _entries(got: list[Event]) -> list[tuple[object, ...]]:
    """Per dup2, through the state tracker: the old fd and what the redirect rule reads."""
    tracker = StateTracker(fetch_containers=False, read_proc=False)
    out: list[tuple[object, ...]] = []
    for ev in got:
        ev = tracker.process(ev)
        if ev.type == "dup2" and ev.res == 0:  # onto fd 0 (the interpreter dup2s too)
            f = ev.fd
            out.append((ev.args.get("oldfd"), None) if f is None else (
                ev.args.get("oldfd"), f.name, f.type, f.l4proto, f.lport, f.rport, f.sip,
                f.is_server, f.connected, f.num))  # fmt: skip
    return out


def test_dup2_of_tcp_sockets_sees_their_fd_with_the_stable_rules(tmp_path: Path) -> None:
    """The stable redirect rule reads a TCP socket's fd at dup: with the stable rules' filter,
    which drops the sockets' socket/connect/accept in the kernel, the dup2 of a connected, an
    accepted and a bare socket onto fd 0, and in a forked child, gets the fd entry (fd.name
    client first, ports, roles) that the tracker builds from the unfiltered events."""
    need_bpf()
    b = build(load_rules_files([STABLE]).rules, DUP_TYPES)
    assert b.sock_readers == [] and not b.plan.filter_of("connect").keep_all
    got, out, stats = _dup2_run(b.plan)
    assert not [e for e in got if e.type in ("socket", "connect", "accept", "accept4")]
    drops = {k: v[1] for k, v in stats.items()}
    assert drops["socket"] >= 3 and drops["connect"] >= 1
    assert drops.get("accept", 0) + drops.get("accept4", 0) >= 1
    rows = [line.split() for line in out]
    (cfd, cname, clp, crp, _), (afd, aname, alp, arp, _), (bfd, _) = rows
    c = (int(cfd), cname, "ipv4", "tcp", int(clp), int(crp), "127.0.0.1", False, True, int(cfd))
    a = (int(afd), aname, "ipv4", "tcp", int(alp), int(arp), "127.0.0.1", True, True, int(afd))
    bare = (int(bfd), "", "ipv6", "tcp", None, None, None, None, False, int(bfd))
    assert [e for e in _entries(got) if e[0] in (c[0], a[0], bare[0])] == [c, a, bare, c]
    whole, _, _ = _dup2_run(None)  # the same child, nothing dropped: the same entries' shape
    shape = [e[2:4] + e[7:9] for e in _entries(whole) if len(e) > 2]
    assert shape == [e[2:4] + e[7:9] for e in (c, a, bare, c)]


LISTEN_CHILD = r"""
import socket
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(("127.0.0.1", 0))
l.listen()
print(l.fileno(), l.getsockname()[1])
"""


def _listen_entry(plan: object) -> tuple[tuple[object, ...], list[str], set[str]]:
    """LISTEN_CHILD's listening socket as the tracker has it after its listen (no /proc)."""
    got: list[Event] = []
    with EbpfSource(syscalls=TYPES, skip_self=False) as src:
        src.set_filters(plan)
        child = subprocess.run([sys.executable, "-c", LISTEN_CHILD], capture_output=True,
                               text=True, timeout=60, check=True)  # fmt: skip
        ours = child.stdout.split()

        def probe() -> bool:
            while batch := src.read(timeout=0.05):
                got.extend(e for e in batch if e.type in ("socket", "bind", "listen")
                           and str((e.ctx or {}).get("comm", "")).startswith("python"))
            return any(e.type == "listen" and str(e.args.get("fd")) == ours[0] for e in got)

        eventually(probe, timeout=60, what="the child's listen")
    tracker = StateTracker(fetch_containers=False, read_proc=False)
    entry: tuple[object, ...] = ()
    for ev in got:
        ev = tracker.process(ev)
        if ev.type == "listen" and str(ev.args.get("fd")) == ours[0] and ev.fd is not None:
            f = ev.fd
            entry = (f.name, f.type, f.sockfamily, f.l4proto, f.lport, f.is_server)
    return entry, ours, {e.type for e in got}


def test_bind_and_listen_of_a_dropped_socket_build_its_entry_from_the_kernel(
        tmp_path: Path) -> None:
    """With the stable rules' filter the kernel drops a TCP socket(): its bind and listen carry
    the socket's history, so the tracker builds the entry socket() would have made (no /proc
    read, which scans /proc/net/tcp) and it equals the unfiltered run's."""
    need_bpf()
    b = build(load_rules_files([STABLE]).rules, TYPES)
    filtered, _, types = _listen_entry(b.plan)
    assert "socket" not in types and {"bind", "listen"} <= types
    whole, _, types2 = _listen_entry(None)
    assert "socket" in types2
    assert filtered[1:] == ("ipv4", "ip", "tcp", 0, True)  # bind's own address: port 0
    assert filtered == whole
