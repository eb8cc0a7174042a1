"""The fd table: opens, sockets, dup, close from synthetic events; lazy reads of real fds."""

from __future__ import annotations

import os
import socket

from detector.state.fdproc import read_proc_fd
from detector.state.fds import O_DIRECTORY, FdTracker
from detector.state.sockets import parse_tuple
from detector.state.tracker import StateTracker
from tests.detector.state.test_threads import ev, offline, seed


def test_open_resolves_against_cwd_and_dirfd() -> None:
    t = offline()
    seed(t, 10, 10, "cat")
    e = t.process(ev("openat", 10, res=3, dirfd=-100, name="../../etc/./shadow", flags=0))
    assert e.fd is not None
    assert (e.fd.num, e.fd.name, e.fd.nameraw, e.fd.typechar) == (
        3, "/etc/shadow", "../../etc/./shadow", "f")
    d = t.process(ev("openat", 10, res=4, dirfd=-100, name="/var/log", flags=O_DIRECTORY))
    assert d.fd is not None and d.fd.typechar == "d"
    e = t.process(ev("openat", 10, res=5, dirfd=4, name="syslog", flags=0))
    assert e.fd is not None and e.fd.name == "/var/log/syslog"


def test_the_kernel_s_dirpath_stands_for_a_directory_it_dropped() -> None:
    """The kernel filter dropped the open of fd 7 (a directory) and gives its path with the
    events that use it: a relative open and fchdir resolve against that, not the table."""
    t = offline()
    th = seed(t, 13, 13, "find")
    t.process(ev("openat", 13, res=7, dirfd=-100, name="/tmp", flags=O_DIRECTORY))  # stale
    e = t.process(ev("openat", 13, res=8, dirfd=7, name="shadow", flags=0,
                     ctx={"dirpath": "/etc"}))  # fmt: skip
    assert e.fd is not None and (e.fd.name, e.fd.nameraw) == ("/etc/shadow", "shadow")
    up = t.process(ev("openat", 13, res=-2, dirfd=7, name="../x", flags=0, ctx={"dirpath": "/etc"}))
    assert up.fd is not None and up.fd.name == "/x"
    t.process(ev("fchdir", 13, res=0, fd=7, ctx={"dirpath": "/etc/pam.d"}))
    assert th.cwd == "/etc/pam.d"
    c = t.process(ev("openat", 13, res=9, dirfd=-100, name="sshd", flags=0))
    assert c.fd is not None and c.fd.name == "/etc/pam.d/sshd"


def test_failed_open_has_fd_minus_one_and_is_not_kept() -> None:
    t = offline()
    th = seed(t, 11, 11, "cat")
    e = t.process(ev("open", 11, res=-2, name="/nope", flags=0))
    assert e.fd is not None and e.fd.num == -1 and e.fd.name == "/nope"
    assert th.fds == {}


def test_connect_names_the_socket_and_dup_inherits_it() -> None:
    t = offline()
    th = seed(t, 12, 12, "sh")
    t.process(ev("socket", 12, res=3, domain=2, type=1, proto=0))
    c = t.process(ev("connect", 12, res=-115, fd=3, tuple="10.0.0.2:40000->10.0.0.9:4444"))
    assert c.fd is not None and c.fd.name == "10.0.0.2:40000->10.0.0.9:4444"
    assert (c.fd.sip, c.fd.sport, c.fd.l4proto, c.fd.connected) == ("10.0.0.9", 4444, "tcp", True)
    d = t.process(ev("dup2", 12, res=0, oldfd=3, newfd=0))
    # the event's fd is the one dup2 takes (libsinsp: fd.num=3, evt.rawres=0)
    assert d.fd is not None and d.fd.num == 3 and d.fd.type == "ipv4" and d.res == 0
    assert d.fd.name == "10.0.0.2:40000->10.0.0.9:4444"
    assert th.fds[0].type == "ipv4" and th.fds[0].name == d.fd.name and th.fds[0].num == 0
    x = t.process(ev("fcntl", 12, res=9, fd=3, cmd=0))
    assert x.fd is not None and x.fd.num == 3 and th.fds[9].typechar == "4"
    cl = t.process(ev("close", 12, res=0, fd=3))
    assert cl.fd is not None and cl.fd.num == 3 and 3 not in th.fds and 0 in th.fds


def test_accept_is_the_server_end() -> None:
    t = offline()
    seed(t, 13, 13, "nginx")
    t.process(ev("socket", 13, res=3, domain=10, type=1))
    t.process(ev("bind", 13, res=0, fd=3, addr=("::", 8080)))
    a = t.process(ev("accept4", 13, res=5, tuple="::1:5000->::1:8080", listen_fd=3))
    assert a.fd is not None and a.fd.is_server and a.fd.type == "ipv6"
    assert (a.fd.cip, a.fd.cport, a.fd.sip, a.fd.sport) == ("::1", 5000, "::1", 8080)
    assert parse_tuple("1.2.3.4:5->6.7.8.9:10") == (("1.2.3.4", 5), ("6.7.8.9", 10))


def test_pipe_memfd_and_typed_fds() -> None:
    t = offline()
    th = seed(t, 14, 14, "x")
    t.process(ev("pipe2", 14, res=0, fd1=3, fd2=4))
    m = t.process(ev("memfd_create", 14, res=5, name="payload", flags=0))
    t.process(ev("eventfd2", 14, res=6))
    assert th.fds[3].type == "pipe" and th.fds[4].typechar == "p"
    assert m.fd is not None and m.fd.name == "memfd:payload" and m.fd.typechar == "m"
    assert th.fds[6].type == "event"


def test_fork_copies_the_fd_table() -> None:
    t = offline()
    parent = seed(t, 15, 15, "sh")
    t.process(ev("openat", 15, res=3, dirfd=-100, name="/etc/hosts", flags=0))
    t.process(ev("clone", 15, res=16, flags=0))
    child = t.threads.threads[16]
    t.process(ev("close", 16, res=0, fd=3))
    assert 3 in parent.fds and 3 not in child.fds


def test_unknown_fds_are_read_lazily_from_proc() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    fd = os.open("/etc/hostname", os.O_RDONLY)
    try:
        t = StateTracker(fetch_containers=False)
        e = t.process(ev("read", os.getpid(), res=1, fd=client.fileno()))
        assert e.fd is not None and e.fd.type == "ipv4" and e.fd.l4proto == "tcp"
        lport = client.getsockname()[1]
        sport = server.getsockname()[1]
        assert e.fd.name == f"127.0.0.1:{lport}->127.0.0.1:{sport}"
        e = t.process(ev("read", os.getpid(), res=1, fd=fd))
        assert e.fd is not None and e.fd.name == "/etc/hostname" and e.fd.typechar == "f"
        listening = read_proc_fd("/proc", os.getpid(), server.fileno())
        assert listening is not None and listening.is_server and listening.sport == sport
        assert FdTracker().lookup(t.threads.threads[os.getpid()], 987654) is None
    finally:
        os.close(fd)
        for s in (conn, client, server):
            s.close()
