"""Where the programs of events.c attach, per selected syscall, and how that follows the selection.

Two ways to see syscall exits (``HOOKS``):

* ``syscall_tp``: the tracepoint program ``sys_exit_tp`` attached to
  ``syscalls:sys_exit_<name>`` of each selected syscall only: an unselected syscall runs no
  program. A selected syscall without a tracepoint of its own here (``no_tracepoint``:
  init_module/finit_module on a kernel without module support) is taken by the raw hook
  ``sys_exit`` on ``raw_syscalls:sys_exit``, attached only while such a syscall is selected.
* ``tp_btf`` / ``raw_tp``: the raw hook alone, for every syscall (the spec map filters).

``Hooks.apply(selected)`` attaches and detaches to match a selection: no program is reloaded.
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
        return frozenset(n[len("sys_exit_"):] for n in names if n.startswith("sys_exit_"))
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
        self.enabled = False

    def raw_hooked(self, syscall: str) -> bool:
        """Whether the raw sys_exit hook (not a tracepoint of its own) takes ``syscall``."""
        return self.mode in SINGLE_HOOKS or tracepoint_of(syscall, self.available) is None

    @property
    def attached(self) -> dict[str, str]:
        """Syscall -> the tracepoint its program is attached to now."""
        return dict(self._tps)

    @property
    def raw_attached(self) -> bool:
        """Whether a program runs on raw_syscalls:sys_exit (every syscall pays for it)."""
        return "sys_exit" in self._links or "sys_exit" in self._raw

    def apply(self, selected: Iterable[str]) -> None:
        """Attach to what ``selected`` needs and detach from the rest (when enabled)."""
        self._selected = frozenset(selected)
        if not self.enabled:
            return
        syscalls = self._selected - {"procexit"}
        want_tps: dict[str, str] = {}
        if self.mode == "syscall_tp":
            for name in syscalls:
                tp = tracepoint_of(name, self.available)
                if tp is not None:
                    want_tps[name] = tp
        for name in set(self._tps) - set(want_tps):
            self._bpf.detach_tracepoint(tp=self._tps.pop(name).encode())
        for name, tp in want_tps.items():
            if name not in self._tps:
                self._bpf.attach_tracepoint(tp=tp.encode(), fn_name=b"sys_exit_tp")
                self._tps[name] = tp
        self._set_raw("sys_exit", any(self.raw_hooked(n) for n in syscalls))
        self._set_raw("sched_process_exit", True)

    def enable(self) -> None:
        """Attach what the selection needs (``open`` does it)."""
        self.enabled = True
        self.apply(self._selected)

    def disable(self) -> None:
        """Detach everything: no syscall pays for a program; maps and ring buffer stay."""
        for tp in self._tps.values():
            self._bpf.detach_tracepoint(tp=tp.encode())
        self._tps = {}
        self._set_raw("sys_exit", False)
        self._set_raw("sched_process_exit", False)
        self.enabled = False

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
