"""Where the programs of events.c attach, per selected syscall, and how that follows the selection.

Two ways to see syscall exits (``HOOKS``):

* ``syscall_tp``: the tracepoint program ``sys_exit_tp`` attached to
  ``syscalls:sys_exit_<name>`` of each selected syscall only: an unselected syscall runs no
  program. A selected syscall without a tracepoint of its own here (``no_tracepoint``:
  init_module/finit_module on a kernel without module support) is taken by the raw hook
  ``sys_exit`` on ``raw_syscalls:sys_exit``, attached only while such a syscall is selected.
* ``tp_btf`` / ``raw_tp``: the raw hook alone, for every syscall (the spec map filters).

When a selected syscall has no tracepoint, the raw hook takes every selected syscall and no
tracepoint program is attached: measured here, a raw hook plus tracepoint programs costs an
unselected syscall more (1.9x a getppid loop) than the raw hook alone (1.5x).
``Hooks.plan`` / ``attach_new`` / ``detach_old`` follow a selection: no program is reloaded.
``procexit`` comes from ``sched:sched_process_exit`` (a raw tracepoint) in every mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from detector.bpf.loader import attach_tp_btf

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# Syscalls whose tracepoint has another name than the syscall (SYSCALL_DEFINE's name).
TRACEPOINT_NAMES = {"umount2": "umount"}
SINGLE_HOOKS = ("tp_btf", "raw_tp")
HOOKS = ("syscall_tp", *SINGLE_HOOKS)


def exit_tracepoints(root: str | None = None) -> frozenset[str]:
    """Names ``X`` of the ``syscalls:sys_exit_X`` tracepoints of the running kernel."""
    for base in (root,) if root else TRACEFS_DIRS:
        try:
            names = os.listdir(os.path.join(base, "events", "syscalls"))
        except OSError:
            continue
        return frozenset(n[len("sys_exit_") :] for n in names if n.startswith("sys_exit_"))
    return frozenset()


def tracepoint_of(syscall: str, available: frozenset[str]) -> str | None:
    """``syscalls:sys_exit_<name>`` of ``syscall``, or None when the kernel has none."""
    name = TRACEPOINT_NAMES.get(syscall, syscall)
    return f"syscalls:sys_exit_{name}" if name in available else None


class Hooks:
    """The attachments of one loaded BCC module, kept in step with the selected syscalls.

    ``raw_fds`` are the tp_btf program fds of (sys_exit, proc_exit) when loaded through bpf(2);
    empty means BCC's plain raw tracepoints.
    """

    def __init__(self, bpf: Any, mode: str, raw_fds: tuple[int, int] | None = None,
                 available: frozenset[str] | None = None) -> None:  # fmt: skip
        self._bpf = bpf
        self.mode = mode
        self._raw_fds = raw_fds
        self.available = exit_tracepoints() if available is None else available
        self._tps: dict[str, str] = {}  # syscall -> attached tracepoint
        self._links: dict[str, int] = {}  # raw tracepoint -> bpf link fd (tp_btf)
        self._raw: set[str] = set()  # raw tracepoints attached through BCC
        self._selected: frozenset[str] = frozenset()
        self.enabled = False  # attached at all (EbpfSource.attach/detach)

    def raw_hooked(self, syscall: str) -> bool:
        """Whether the raw sys_exit hook takes ``syscall`` in the current plan."""
        return self.raw_all or tracepoint_of(syscall, self.available) is None

    @property
    def raw_all(self) -> bool:
        """Whether the raw hook takes every syscall: in a single-hook mode, or when a selected
        syscall has no tracepoint (the raw hook then runs for every syscall anyway, and a
        tracepoint program on top of it would cost each selected syscall twice)."""
        if self.mode in SINGLE_HOOKS:
            return True
        return any(tracepoint_of(n, self.available) is None for n in self._syscalls())

    @property
    def attached(self) -> dict[str, str]:
        """Syscall -> the tracepoint its program is attached to now."""
        return dict(self._tps)

    @property
    def raw_attached(self) -> bool:
        """Whether a program runs on raw_syscalls:sys_exit (every syscall pays for it)."""
        return "sys_exit" in self._links or "sys_exit" in self._raw

    def _syscalls(self) -> frozenset[str]:
        return self._selected - {"procexit"}

    def _wanted(self) -> tuple[dict[str, str], bool]:
        """(syscall -> tracepoint, raw hook) the plan needs attached."""
        if not self.enabled:
            return {}, False
        if self.raw_all:
            return {}, bool(self._syscalls())
        tps = {n: tracepoint_of(n, self.available) for n in self._syscalls()}
        return {n: tp for n, tp in tps.items() if tp is not None}, False

    def plan(self, selected: Iterable[str]) -> None:
        """Take ``selected`` as the plan: then attach_new, write the spec map, detach_old.

        In that order no event is lost or doubled while a syscall moves between a tracepoint
        and the raw hook: both are attached while its spec word (F_RAW_HOOK says which one
        records it) changes in one map write.
        """
        self._selected = frozenset(selected)

    def attach_new(self) -> None:
        """Attach what the plan needs and is not attached yet."""
        tps, raw = self._wanted()
        for name, tp in tps.items():
            if self._tps.get(name) != tp:
                self._bpf.attach_tracepoint(tp=tp.encode(), fn_name=b"sys_exit_tp")
                self._tps[name] = tp
        if raw:
            self._set_raw("sys_exit", True)
        self._set_raw("sched_process_exit", self.enabled)

    def detach_old(self) -> None:
        """Detach what the plan no longer needs."""
        tps, raw = self._wanted()
        for name in [n for n in self._tps if n not in tps]:
            self._bpf.detach_tracepoint(tp=self._tps.pop(name).encode())
        if not raw:
            self._set_raw("sys_exit", False)
        self._set_raw("sched_process_exit", self.enabled)

    def enable(self) -> None:
        """Attach what the plan needs (``open`` does it)."""
        self.enabled = True
        self.attach_new()

    def disable(self) -> None:
        """Detach everything: no syscall pays for a program; maps and ring buffer stay."""
        self.enabled = False
        self.detach_old()

    def close(self) -> None:
        """Drop the links this object made (BCC's cleanup closes the rest)."""
        for fd in self._links.values():
            os.close(fd)
        self._links = {}
        self._tps = {}
        self._raw = set()
        self.enabled = False

    def _set_raw(self, tp: str, on: bool) -> None:
        fn = b"sys_exit" if tp == "sys_exit" else b"proc_exit"
        if self._raw_fds is not None:
            if on and tp not in self._links:
                self._links[tp] = attach_tp_btf(self._raw_fds[0 if tp == "sys_exit" else 1])
            elif not on and tp in self._links:
                os.close(self._links.pop(tp))
        elif on and tp not in self._raw:
            self._bpf.attach_raw_tracepoint(tp=tp.encode(), fn_name=fn)
            self._raw.add(tp)
        elif not on and tp in self._raw:
            self._bpf.detach_raw_tracepoint(tp=tp.encode())
            self._raw.discard(tp)
