"""A shell with stdin/stdout on an accepted TCP socket, in a real podman container, on the kernel.

The upstream rule "Redirect STDOUT/STDIN to Network Connection in Container" fires on the
``dup2`` when the state tracker knows the descriptor the syscall takes is an accepted IPv4
socket: for the process itself, for a forked child doing the dup, and for ``accept`` called
with and without a peer-address buffer. The container runs the host's Python (``/usr``
mounted read-only) so the test program is plain Python.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from detector.events import Event
from detector.state.tracker import StateTracker
from tests.detector.state.stream_parts import read_until
from tests.detector.test_hello_world import UPSTREAM_RULES, _engine
from tests.realparts import PODMAN_BASE, Container, busybox_image, need, podman, start_container

RULE = "Redirect STDOUT/STDIN to Network Connection in Container"
SYSCALLS = ["socket", "bind", "listen", "connect", "accept", "accept4", "dup", "dup2", "dup3",
            "fcntl", "close", "clone", "clone3", "fork", "vfork", "execve", "execveat",
            "procexit"]
PROGRAM = r"""
import ctypes, os, socket, sys
mode = sys.argv[1]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
c = socket.create_connection(s.getsockname())
if mode == "nopeer":  # accept(fd, NULL, NULL): no peer-address buffer
    fd = ctypes.CDLL(None, use_errno=True).accept(s.fileno(), None, None)
else:
    conn, _ = s.accept()  # accept4 with a peer-address buffer
    fd = conn.detach()
def redirect():
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    os.execv("/bin/sh", ["sh", "-c", "exit 0"])
if mode == "child":
    pid = os.fork()
    if pid == 0:
        redirect()
    os.waitpid(pid, 0)
else:
    redirect()
"""


@pytest.fixture(scope="module")
def pycontainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """A busybox container with the host's /usr (for python3) and only a loopback network."""
    image = busybox_image(tmp_path_factory.mktemp("redirect"),
                          tag=f"localhost/fpy-busybox:redirect-{os.getpid()}")
    c = start_container(image, f"fpy-redirect-{os.getpid()}", "--network", "none",
                        "-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro",
                        "-v", "/usr/lib64:/lib64:ro")
    try:
        yield c
    finally:
        c.remove()
        podman("rmi", image, check=False)


@dataclass
class Seen:
    alerts: list[tuple[Any, Event]] = field(default_factory=list)
    accepts: list[Event] = field(default_factory=list)


def _run(c: Container, mode: str) -> Seen:
    need(UPSTREAM_RULES.is_file(), f"the upstream rules at {UPSTREAM_RULES}")
    from detector.errors import DetectorError
    from detector.sources.ebpf import EbpfSource
    from tests.realparts import need_root

    need_root()
    engine = _engine([UPSTREAM_RULES])
    need(engine is not None, "the rules engine")
    assert engine is not None
    try:
        source = EbpfSource(syscalls=SYSCALLS).open()
    except DetectorError as exc:
        need(False, f"a loadable eBPF source ({exc.one_line()})")
    tracker = StateTracker(container_sockets=[])
    seen = Seen()
    import subprocess

    def act() -> None:
        subprocess.run(["podman", *PODMAN_BASE, "exec", c.name, "/usr/bin/python3", "-c",
                        PROGRAM, mode], capture_output=True, timeout=90, check=True)

    def handle(ev: Event) -> None:
        if ev.thread is None or ev.thread.container.full_id != c.id:
            return
        if ev.type in ("accept", "accept4") and (ev.res or -1) >= 0:
            seen.accepts.append(ev)
        for alert in engine.process(ev):
            if alert.rule == RULE:
                seen.alerts.append((alert, ev))

    try:
        tracker.scan()
        worker = threading.Thread(target=act)  # the source records from open(): no race
        worker.start()
        # A deadline, not a timing: 30 s was missed twice while other work loaded the machine.
        read_until(source, tracker, handle, lambda: len(seen.alerts) >= 2, timeout=100,
                   what=f"two alerts of {RULE!r}")
        worker.join(90)
    finally:
        source.close()
        tracker.close()
    return seen


@pytest.mark.parametrize("mode", ["main", "child", "nopeer"])
def test_redirect_stdin_stdout_to_an_accepted_socket(pycontainer: Container, mode: str) -> None:
    seen = _run(pycontainer, mode)
    assert seen.alerts, f"no {RULE!r} alert ({mode}); accepts seen: {len(seen.accepts)}"
    rawres = sorted(ev.res for _, ev in seen.alerts if ev.res is not None)
    assert rawres == [0, 1]
    alert, ev = seen.alerts[0]
    assert ev.type == "dup2" and ev.fd is not None and ev.fd.type == "ipv4"
    assert ev.fd.num not in (0, 1)  # the descriptor dup2 takes: the accepted socket
    assert ev.fd.name.startswith("127.0.0.1:") and "->127.0.0.1:" in ev.fd.name
    assert "connection=127.0.0.1:" in alert.output
    accept = seen.accepts[-1]
    assert accept.type == ("accept" if mode == "nopeer" else "accept4")
    # the peer tuple comes from the kernel socket, with or without a peer-address buffer
    assert accept.fd is not None and accept.fd.cip == "127.0.0.1" and accept.fd.cport
    assert accept.fd.name == ev.fd.name
    if mode == "child":
        assert ev.thread is not None and ev.thread.parent is not None
        assert ev.thread.pid != accept.thread.pid  # type: ignore[union-attr]
