"""The fd each event uses, checked against libscap's event table (``EF_USES_FD``).

libsinsp binds ``fd.*`` to the descriptor a syscall *takes* (the enter event's first fd
parameter): ``dup2(3, 0)`` has ``fd.num=3`` and ``evt.rawres=0``. For every syscall the kernel
source captures, the test feeds an event with that fd and a decoy fd in the other fd
parameters, and checks ``docs/state-fds.md`` lists the same table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from detector.events import FdInfo
from detector.sources.syscalls import SPECS
from detector.state.fds import USED_FD
from tests.detector.state.test_threads import ev, offline, seed
from tests.realparts import need

ROOT = Path(__file__).resolve().parents[3]
TABLE = Path(os.environ.get("FALCOCTL_PY_CONFORMANCE",
                            ROOT.parent / "shared" / "conformance")) / "event_table.json"
DOC = ROOT / "docs" / "state-fds.md"
# the tests beyond this file that exercise an event's fd on the real kernel
REAL = {"dup2": "test_redirect.py"}


def used_fds() -> dict[str, str | None]:
    """Captured syscall -> the parameter (exit event's name) holding the fd it uses."""
    need(TABLE.is_file(), f"libscap's event table at {TABLE} (set FALCOCTL_PY_CONFORMANCE)")
    rows = [e for e in json.loads(TABLE.read_text()) if "EF_OLD_VERSION" not in e["flags"]]
    enter = {e["name"]: e for e in rows if e["dir"] == "enter"}
    exit_ = {e["name"]: e for e in rows if e["dir"] == "exit"}
    out: dict[str, str | None] = {}
    for name in sorted(SPECS):
        en, ex = enter.get(name, {}), exit_.get(name, {})
        if "EF_USES_FD" not in set(en.get("flags", [])) | set(ex.get("flags", [])):
            continue
        fds = [p["name"] for p in ex.get("params", []) if p["type"] == "PT_FD"
               and p["name"] != "res"]
        first = en.get("params", [{}])[0] if en.get("params") else {}
        if first.get("type") == "PT_FD" and first["name"] in fds:
            out[name] = first["name"]
        else:  # the exit event names it differently (dup: enter "fd", exit "oldfd")
            out[name] = fds[0] if fds else None
    return out


def render(table: dict[str, str | None]) -> str:
    """The docs table: event type, the parameter holding the fd it uses, where tested."""
    lines = ["| event type | fd it uses (parameter) | tested |", "| --- | --- | --- |"]
    for name, param in table.items():
        where = "test_fd_usage.py" + (f", {REAL[name]} (real kernel)" if name in REAL else "")
        lines.append(f"| `{name}` | `{param}` | {where} |")
    return "\n".join(lines) + "\n"


def test_used_fd_names_agree_with_libscap() -> None:
    for name, param in used_fds().items():
        assert USED_FD.get(name, "fd") == param, name


def test_docs_table_is_current() -> None:
    text = DOC.read_text()
    assert render(used_fds()) in text, "docs/state-fds.md is stale: regenerate its table"


def _args(name: str, used: str) -> dict[str, Any]:
    args: dict[str, Any] = {used: 7}
    for other in ("fd", "dirfd", "oldfd", "newfd", "out_fd", "in_fd", "fd_in", "fd_out",
                  "fdin", "fdout", "linkdirfd"):
        args.setdefault(other, 8)
    if name in ("dup2", "dup3"):
        args["newfd"] = 1
    if name == "fcntl":
        args["cmd"] = 1  # F_GETFD
    return args


@pytest.mark.parametrize("name", [*sorted(USED_FD), "read", "write", "sendto", "recvfrom",
                                  "fchmod", "fcntl", "close", "shutdown"])
def test_each_event_gets_the_fd_it_uses(name: str) -> None:
    t = offline()
    th = seed(t, 50, 50, "sh")
    th.fds[7] = FdInfo(num=7, type="ipv4", name="10.0.0.1:4000->10.0.0.2:80", sockfamily="ip",
                       l4proto="tcp")
    th.fds[8] = FdInfo(num=8, type="file", name="/decoy")
    used = USED_FD.get(name, "fd")
    res = 1 if name in ("dup", "dup2", "dup3") else 0
    e = t.process(ev(name, 50, res=res, **_args(name, used)))
    assert e.fd is not None and e.fd.num == 7 and e.fd.name == "10.0.0.1:4000->10.0.0.2:80"
    if name.startswith("dup"):
        assert th.fds[1].type == "ipv4" and th.fds[1].name == e.fd.name  # the copy


def test_a_child_met_before_its_parents_clone_event_inherits_its_fds() -> None:
    """The child's own clone return can come first (it runs on another CPU): its fds are the
    caller's, so a dup in the child still names the socket."""
    t = offline()
    th = seed(t, 70, 70, "python3")
    th.fds[5] = FdInfo(num=5, type="ipv4", name="127.0.0.1:80->127.0.0.1:4000")
    t.process(ev("clone", 71, res=0, ctx={"pid": 71, "ppid": 70, "comm": "python3",
                                          "clone_flags": 17, "vpid": 12}))
    d = t.process(ev("dup2", 71, res=0, oldfd=5, newfd=0))
    assert d.fd is not None and d.fd.type == "ipv4" and d.thread is not None
    assert d.thread.vpid == 12 and d.thread.fds is not th.fds
    t.process(ev("clone", 70, res=71, flags=17))  # the parent's, later: nothing changes
    assert t.threads.threads[71].fds[0].type == "ipv4"


def test_fds_are_inherited_across_fork_clone_and_vfork() -> None:
    t = offline()
    th = seed(t, 60, 60, "sh")
    th.fds[3] = FdInfo(num=3, type="ipv4", name="1.2.3.4:1->5.6.7.8:2")
    for i, (etype, flags) in enumerate((("fork", 0), ("vfork", 0x4100), ("clone", 17),
                                        ("clone3", 17))):
        t.process(ev(etype, 60, res=61 + i, flags=flags))
        child = t.threads.threads[61 + i]
        assert child.fds[3].name == "1.2.3.4:1->5.6.7.8:2" and child.fds is not th.fds
        d = t.process(ev("dup2", 61 + i, res=0, oldfd=3, newfd=0))
        assert d.fd is not None and d.fd.type == "ipv4" and 0 not in th.fds
