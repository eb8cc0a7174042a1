"""The rows of the plugin API's ``threads`` table: a read-only view of the detector's threads.

Field names and types are those libsinsp's ``sinsp_threadinfo`` exposes to plugins (its static
fields, plugin API 3.x): ``tid``, ``pid``, ``ptid``, ``sid``, ``comm``, ``exe``, ``exe_path``,
``exe_writable``, ``exe_upper_layer``, ``exe_from_memfd``, ``uid``, ``gid``, ``loginuid``,
``exe_ino``, ``vtid``, ``vpid``, ``vpgid``, ``tty``, ``cwd``. The sub-tables (``args``, ``env``,
``cgroups``, ``file_descriptors``) are not offered. The view holds the detector's own
``tid -> ThreadInfo`` mapping (bound once the state tracker exists) and never changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from detector.events import ThreadInfo

ST_INT32, ST_UINT32, ST_INT64, ST_UINT64, ST_STRING, ST_BOOL = 3, 7, 4, 8, 9, 25
_U32 = 0xFFFFFFFF

Value = int | str | bool
_Getter = Callable[[ThreadInfo], Value]


def _opt(value: int | None, missing: int) -> int:
    return missing if value is None else value


# name -> (ss_plugin_state_type, how the value comes from a ThreadInfo); libs' order.
FIELDS: dict[str, tuple[int, _Getter]] = {
    "tid": (ST_INT64, lambda t: t.tid),
    "pid": (ST_INT64, lambda t: t.pid),
    "ptid": (ST_INT64, lambda t: t.ppid),
    "sid": (ST_INT64, lambda t: t.sid),
    "comm": (ST_STRING, lambda t: t.comm),
    "exe": (ST_STRING, lambda t: t.exe),
    "exe_path": (ST_STRING, lambda t: t.exepath),
    "exe_writable": (ST_BOOL, lambda t: t.exe_writable),
    "exe_upper_layer": (ST_BOOL, lambda t: t.exe_upper_layer),
    "exe_from_memfd": (ST_BOOL, lambda t: t.exe_from_memfd),
    "uid": (ST_UINT32, lambda t: t.uid & _U32),
    "gid": (ST_UINT32, lambda t: t.gid & _U32),
    "loginuid": (ST_UINT32, lambda t: t.loginuid & _U32),
    "exe_ino": (ST_UINT64, lambda t: _opt(t.exe_ino, 0)),
    "vtid": (ST_INT64, lambda t: _opt(t.vtid, -1)),
    "vpid": (ST_INT64, lambda t: _opt(t.vpid, -1)),
    "vpgid": (ST_INT64, lambda t: t.vpgid),
    "tty": (ST_UINT32, lambda t: t.tty & _U32),
    "cwd": (ST_STRING, lambda t: t.cwd),
}
FIELD_NAMES = tuple(FIELDS)


class ThreadView:
    """Read-only ``tid -> ThreadInfo`` rows for plugins; empty until :meth:`bind`."""

    def __init__(self, threads: Mapping[int, ThreadInfo] | None = None) -> None:
        self._threads: Mapping[int, ThreadInfo] = threads if threads is not None else {}

    def bind(self, threads: Mapping[int, ThreadInfo]) -> None:
        """Serve the rows of ``threads`` (the state tracker's table) from now on."""
        self._threads = threads

    def __len__(self) -> int:
        return len(self._threads)

    def get(self, tid: int) -> ThreadInfo | None:
        return self._threads.get(tid)

    def tids(self) -> list[int]:
        """The tids now in the table (a copy: the table may change while a plugin iterates)."""
        return list(self._threads)

    @staticmethod
    def value(th: ThreadInfo, index: int) -> Value:
        """Field number ``index`` (in :data:`FIELD_NAMES` order) of one thread."""
        return FIELDS[FIELD_NAMES[index]][1](th)
