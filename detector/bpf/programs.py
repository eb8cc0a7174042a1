"""Compiling and loading events.c's programs for a hook design (``EbpfSource.open``).

* ``syscall_tp`` (per-syscall tracepoints) and ``tp_btf`` (one raw hook): compiled with
  BTF-typed loads (``-DTP_BTF``), the raw programs loaded as ``tp_btf``;
* ``raw_tp``: plain raw tracepoints, where the kernel or BCC refuses the BTF design
  (``auto`` falls back to it; a hook asked for by name does not).

Each is tried with the fd marks of dropped opens in task storage first; a kernel that refuses
task storage in tracing programs (before 5.11) gets them all in the ``kf_marks`` hash
(``-DKF_NO_TASK_STORAGE``, see kfilter.h). Every program is loaded here, so a verifier's
refusal shows at open, not at attach.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detector.bpf.hooks import Hooks
from detector.bpf.loader import load_tp_btf
from detector.errors import DetectorError

# (function, raw tracepoint) of the raw hooks in events.c, loaded as tp_btf where possible
RAW_PROGRAMS = ((b"sys_exit", "sys_exit"), (b"proc_exit", "sched_process_exit"))
NO_TASK_STORAGE = "-DKF_NO_TASK_STORAGE"


@dataclass
class Programs:
    """The loaded BCC module, where its programs attach, and how it was built."""

    bpf: Any
    hooks: Hooks
    hook_used: str
    raw_fds: list[int] = field(default_factory=list)  # the tp_btf programs, in RAW_PROGRAMS order
    task_storage: bool = True  # False: every fd mark is in kf_marks


def load_programs(bpf_cls: Any, text: bytes, cflags: list[str], hook: str) -> Programs:
    """The programs of ``text`` for ``hook`` (see the module), or a DetectorError that says
    what the kernel or BCC refused."""
    failure = ""
    if hook != "raw_tp":
        try:
            return _with_fallback(lambda flags: _open_btf(bpf_cls, text, flags, hook), cflags)
        except Exception as exc:  # an older kernel or BCC: plain raw tracepoints
            failure = f"{hook}: {exc}"
            if hook != "auto":
                raise DetectorError(
                    f"loading the BPF programs for hook {hook!r} failed: {exc}",
                    hint="use hook='raw_tp', or run `falcoctl-py driver check`",
                ) from exc
    try:
        return _with_fallback(lambda flags: _open_raw(bpf_cls, text, flags), cflags)
    except Exception as exc:
        raise DetectorError(
            f"loading the BPF programs failed: {exc}" + (f" ({failure})" * bool(failure)),
            hint="run `falcoctl-py driver check` and fix what it reports",
        ) from exc


def _with_fallback(load: Callable[[list[str]], Programs], cflags: list[str]) -> Programs:
    """``load(cflags)``, else ``load`` without task storage; the first error when both fail."""
    try:
        return load(cflags)
    except Exception as first:
        try:
            got = load([*cflags, NO_TASK_STORAGE])
        except Exception:
            raise first from None
        got.task_storage = False
        return got


def _open_raw(bpf_cls: Any, text: bytes, cflags: list[str]) -> Programs:
    bpf = bpf_cls(text=text, cflags=cflags)
    try:
        for fn, _ in RAW_PROGRAMS:
            bpf.load_func(fn, bpf_cls.RAW_TRACEPOINT)
        return Programs(bpf, Hooks(bpf, "raw_tp"), "raw_tp")
    except BaseException:
        bpf.cleanup()
        raise


def _open_btf(bpf_cls: Any, text: bytes, cflags: list[str], hook: str) -> Programs:
    from detector.bpf.btf import load

    ids = [load().tracepoint_id(tp) for _, tp in RAW_PROGRAMS]
    if None in ids:
        raise OSError(0, "no btf_trace_* types in the kernel's BTF")
    bpf = bpf_cls(text=text, cflags=[*cflags, "-DTP_BTF"])
    fds: list[int] = []
    try:
        for (fn, _), btf_id in zip(RAW_PROGRAMS, ids, strict=True):
            fds.append(load_tp_btf(bpf.module, fn, btf_id or 0))
        mode = "tp_btf" if hook == "tp_btf" else "syscall_tp"
        if mode == "syscall_tp":
            bpf.load_func(b"sys_exit_tp", bpf_cls.TRACEPOINT)
        return Programs(bpf, Hooks(bpf, mode, raw_fds=(fds[0], fds[1])), mode, fds)
    except BaseException:
        for fd in fds:
            os.close(fd)
        bpf.cleanup()
        raise
