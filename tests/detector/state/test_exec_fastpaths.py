"""The exec path's shortcuts (issue 14) give what the plain code gave: path normalisation,
the environment split, and the ids/creds/exe facts an exec event sets on its thread."""

from __future__ import annotations

import posixpath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import Event, ThreadInfo
from detector.state import execs, procfs
from detector.state.args import arg, as_int
from detector.state.execs import (
    NO_ID,
    apply_ctx,
    apply_ctx_py,
    set_exe_facts,
    set_exe_facts_py,
    split_env,
)
from detector.state.exefacts import resolve_path

KEYS = ("tty", "sid", "vpgid", "cap_effective", "cap_permitted", "cap_inheritable", "uid",
        "gid", "euid", "egid", "loginuid", "exe_from_memfd", "exe_upper_layer", "exe_writable",
        "exe_ino", "exe_ino_ctime", "exe_ino_mtime")  # fmt: skip
VALUES = st.none() | st.booleans() | st.integers(-2, 2**32) | st.just(NO_ID) | st.just("7")
MAPS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=len(KEYS))


def _normpath(base: str, path: str) -> str:
    if not path:
        return base
    full = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
    norm = posixpath.normpath(full)
    return "/" + norm.lstrip("/") if norm.startswith("//") else norm


def _int(v: Any) -> int | None:
    return v if type(v) is int else as_int(v)


def _apply_ctx_plain(th: ThreadInfo, ev: Event) -> None:
    """apply_ctx as written before its shortcuts."""
    a, ctx = ev.args, ev.ctx or {}
    for key in ("tty", "sid", "vpgid", "cap_effective", "cap_permitted", "cap_inheritable"):
        v = a.get(key)
        v = _int(ctx.get(key) if v is None else v)
        if v is not None:
            setattr(th, key, v)
    for eff, real in (("euid", "uid"), ("egid", "gid")):
        v = _int(ctx.get(eff))
        if v is None:
            v = a.get(real)
            v = _int(ctx.get(real) if v is None else v)
        if v is not None:
            setattr(th, real, v)
    th.euid, th.egid = th.uid, th.gid
    login = a.get("loginuid")
    login = _int(ctx.get("loginuid") if login is None else login)
    if login is not None:
        th.loginuid = -1 if login in (NO_ID, -1) else login


def _set_exe_facts_plain(ev: Event, th: ThreadInfo) -> None:
    memfd = arg(ev, "exe_from_memfd")
    th.exe_from_memfd = bool(memfd) if memfd is not None else th.exepath.startswith("/memfd:")
    up = arg(ev, "exe_upper_layer")
    th.exe_upper_layer = bool(up) if up is not None else False
    writable = arg(ev, "exe_writable")
    th.exe_writable = bool(writable) if writable is not None else False
    for key in ("exe_ino", "exe_ino_ctime", "exe_ino_mtime"):
        v = as_int(arg(ev, key))
        if v is not None:
            setattr(th, key, v)


@settings(max_examples=3000)
@given(path=st.text(alphabet="/.ab", max_size=14), base=st.text(alphabet="/.ab", max_size=8))
def test_resolve_path_shortcut_normalises_as_normpath(path: str, base: str) -> None:
    assert resolve_path(base or "/", path) == _normpath(base or "/", path)


@settings(max_examples=300)
@given(args=MAPS, ctx=MAPS | st.none(), exepath=st.sampled_from(["/bin/sh", "/memfd:x"]))
def test_exec_ids_and_exe_facts_as_before(args: dict[str, Any], ctx: dict[str, Any] | None,
                                          exepath: str) -> None:
    ev = Event(num=1, ts=2, type="execve", tid=5, res=0, args=args, ctx=ctx)
    fast, plain = (ThreadInfo(tid=5, pid=5, exepath=exepath) for _ in range(2))
    apply_ctx(fast, ev)
    set_exe_facts(ev, fast, lambda th: False)
    _apply_ctx_plain(plain, ev)
    _set_exe_facts_plain(ev, plain)
    assert fast == plain


@settings(max_examples=1000)
@given(args=MAPS, ctx=MAPS | st.none(), th=st.builds(ThreadInfo, tid=st.just(5), pid=st.just(5),
                                                     uid=st.integers(0, 9), loginuid=st.just(3)))
def test_the_compiled_apply_ctx_sets_what_the_python_one_sets(
        args: dict[str, Any], ctx: dict[str, Any] | None, th: ThreadInfo) -> None:  # fmt: skip
    """Both implementations, from the same thread and event: the same thread after."""
    from tests.detector.sources.decoders import need_compiled

    need_compiled()
    assert execs._lean_apply_ctx is not None and apply_ctx is not apply_ctx_py
    ev = Event(num=1, ts=2, type="execve", tid=5, res=0, args=args, ctx=ctx)
    compiled, python = ThreadInfo(**vars_of(th)), ThreadInfo(**vars_of(th))
    apply_ctx(compiled, ev)
    apply_ctx_py(python, ev)
    assert compiled == python
    assert [type(getattr(compiled, k)) for k in KEYS[:11]] == [
        type(getattr(python, k)) for k in KEYS[:11]]  # fmt: skip


@settings(max_examples=1000)
@given(args=MAPS, ctx=MAPS | st.none(), exepath=st.sampled_from(["/bin/sh", "/memfd:x", ""]),
       up=st.booleans())  # fmt: skip
def test_the_compiled_exe_facts_set_what_the_python_ones_set(
        args: dict[str, Any], ctx: dict[str, Any] | None, exepath: str,
        up: bool) -> None:  # fmt: skip
    """Both implementations: the same thread after, the upper-layer check asked alike."""
    from tests.detector.sources.decoders import need_compiled

    need_compiled()
    assert execs._lean_exe_facts is not None and set_exe_facts is not set_exe_facts_py
    ev = Event(num=1, ts=2, type="execve", tid=5, res=0, args=args, ctx=ctx)
    compiled, python = (ThreadInfo(tid=5, pid=5, exepath=exepath) for _ in range(2))
    asked: list[str] = []

    def upper(th: ThreadInfo) -> bool:
        asked.append("c" if th is compiled else "py")
        return up

    set_exe_facts(ev, compiled, upper)
    set_exe_facts_py(ev, python, upper)
    assert compiled == python
    assert asked in ([], ["c", "py"])


def vars_of(th: ThreadInfo) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(th, f.name) for f in fields(ThreadInfo)}


def test_the_environment_split_is_a_fresh_list_each_time() -> None:
    raw = b"HOME=/root\0PATH=/bin\0"
    first = split_env(raw)
    assert first == procfs.split_argv(raw) == ["HOME=/root", "PATH=/bin"]
    first.append("X=1")  # one process's list is its own
    assert split_env(raw) == ["HOME=/root", "PATH=/bin"]
    assert split_env("A=\xe9\0") == ["A=\xe9"]
