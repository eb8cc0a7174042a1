"""The kernel's history of TCP sockets whose socket/connect/accept it dropped (kfilter.h
``kf_hist``), on the running kernel: it is keyed by the kernel socket's address, which the
kernel reuses for new sockets; the inode it holds keeps a new socket at a reused address from
being taken for the old one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from detector.events import Event
from detector.kfilter.build import build
from detector.rules.load.loader import load_rules_files
from detector.sources.ebpf import EbpfSource
from tests.detector.bpf.test_kfilter_atoms import _mine_until
from tests.realparts import need_bpf

pytestmark = [pytest.mark.root, pytest.mark.bpf]
STABLE = Path("/work/shared/falco-rules/falco_rules.yaml")
TYPES = {"socket", "connect", "accept", "accept4", "bind", "listen", "close", "openat", "dup2"}
ROUNDS = 60


def test_a_new_socket_at_a_reused_address_gets_no_old_history(tmp_path: Path) -> None:
    """Each round: a loopback connect the stable rules' filter drops (its socket gets a
    history), closed; then, filters off (nothing recorded, nothing forgotten), a new socket
    connected and dup'd. The kernel gives new sockets the freed sockets' addresses: without
    the inode test the dup would carry the old socket's history. With it, none does, while a
    dup of a socket whose connect was dropped carries its own."""
    need_bpf()
    plan = build(load_rules_files([STABLE]).rules, TYPES).plan
    assert not plan.filter_of("connect").keep_all
    server = socket.create_server(("127.0.0.1", 0))
    addr = server.getsockname()
    got: list[Event] = []
    with EbpfSource(syscalls=TYPES, skip_self=False) as src:
        for i in range(ROUNDS):
            src.set_filters(plan)
            old = socket.create_connection(addr)
            if i == 0:  # a dup of a socket with a history: it carries it
                os.close(os.dup2(old.fileno(), 900))
            old.close()
            server.accept()[0].close()
            src.set_filters(None)
            new = socket.create_connection(addr)
            os.close(os.dup2(new.fileno(), 900))
            new.close()
            server.accept()[0].close()
            if i % 10 == 9:
                got += _mine_until(src, f"{tmp_path}/.")
    server.close()
    dups = [e for e in got if e.type == "dup2" and (e.ctx or {}).get("sock_family")]
    assert len(dups) == ROUNDS + 1
    assert "sock_hist" in (dups[0].ctx or {})  # the first round's socket with its history
    assert [(e.ctx or {}).get("sock_hist") for e in dups[1:]] == [None] * ROUNDS
