"""The plugin API's state tables and logger, as Falco 0.42+ gives them to ``plugin_init``.

Layouts follow ``plugin_api.h`` and ``plugin_types.h`` of plugin API 3.x:
``ss_plugin_init_tables_input`` (``list_tables``, ``get_table``, ``add_table``, the deprecated
inline ``fields`` vtable, then ``fields_ext``, ``reader_ext``, ``writer_ext``), the
``*_vtable_ext`` structs, the 8-byte ``ss_plugin_state_data`` union and ``ss_plugin_log_fn_t``.
The owner offers one table, ``threads`` (key ``int64`` tid), whose rows are the detector's
threads (:class:`~detector.plugins.threadview.ThreadView`, read-only): size, lookup by tid and
iteration; plugins may add fields to it and write them (kept per tid). Every callback catches
its own errors: a plugin sees a failure code, never a Python exception.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any

from detector.plugins.threadview import (
    FIELD_NAMES,
    FIELDS,
    ST_BOOL,
    ST_INT32,
    ST_INT64,
    ST_STRING,
    ST_UINT32,
    ST_UINT64,
    ThreadView,
)

log = logging.getLogger("detector.plugins")

SUCCESS, FAILURE = 0, 1
_LOG_LEVELS = {1: logging.CRITICAL, 2: logging.CRITICAL, 3: logging.ERROR, 4: logging.WARNING,
               5: logging.INFO, 6: logging.INFO, 7: logging.DEBUG, 8: logging.DEBUG}

P = ctypes.c_void_p
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32)
_LIST_FIELDS = ctypes.CFUNCTYPE(P, P, ctypes.POINTER(ctypes.c_uint32))
_GET_FIELD = ctypes.CFUNCTYPE(P, P, ctypes.c_char_p, ctypes.c_uint32)
_TABLE_NAME = ctypes.CFUNCTYPE(P, P)
_TABLE_SIZE = ctypes.CFUNCTYPE(ctypes.c_uint64, P)
_GET_ENTRY = ctypes.CFUNCTYPE(P, P, P)
_READ_FIELD = ctypes.CFUNCTYPE(ctypes.c_int32, P, P, P, P)
_RELEASE = ctypes.CFUNCTYPE(None, P, P)
_ITERATE = ctypes.CFUNCTYPE(ctypes.c_uint32, P, P, P)
_RC_TABLE = ctypes.CFUNCTYPE(ctypes.c_int32, P)
_RC_KEY = ctypes.CFUNCTYPE(ctypes.c_int32, P, P)
_NEW_ENTRY = ctypes.CFUNCTYPE(P, P)
_ADD_ENTRY = ctypes.CFUNCTYPE(P, P, P, P)
_LIST_TABLES = ctypes.CFUNCTYPE(P, P, ctypes.POINTER(ctypes.c_uint32))
_GET_TABLE = ctypes.CFUNCTYPE(P, P, ctypes.c_char_p, ctypes.c_uint32)
_ADD_TABLE = ctypes.CFUNCTYPE(ctypes.c_int32, P, P)


class FieldsVtable(ctypes.Structure):
    """``ss_plugin_table_fields_vtable`` and ``_ext`` (same three members)."""

    _fields_ = [("list_table_fields", _LIST_FIELDS), ("get_table_field", _GET_FIELD),
                ("add_table_field", _GET_FIELD)]


class ReaderVtableExt(ctypes.Structure):
    _fields_ = [("get_table_name", _TABLE_NAME), ("get_table_size", _TABLE_SIZE),
                ("get_table_entry", _GET_ENTRY), ("read_entry_field", _READ_FIELD),
                ("release_table_entry", _RELEASE), ("iterate_entries", _ITERATE)]


class ReaderVtable(ctypes.Structure):
    """The deprecated ``ss_plugin_table_reader_vtable`` (the first four members of ``_ext``),
    still inline in the extract and parse inputs."""

    _fields_ = ReaderVtableExt._fields_[:4]


class WriterVtableExt(ctypes.Structure):
    _fields_ = [("clear_table", _RC_TABLE), ("erase_table_entry", _RC_KEY),
                ("create_table_entry", _NEW_ENTRY), ("destroy_table_entry", _RELEASE),
                ("add_table_entry", _ADD_ENTRY), ("write_entry_field", _READ_FIELD)]


class WriterVtable(ctypes.Structure):
    """The deprecated ``ss_plugin_table_writer_vtable`` (same members as ``_ext``)."""

    _fields_ = WriterVtableExt._fields_


class InitTablesInput(ctypes.Structure):
    """``ss_plugin_init_tables_input`` (plugin API 3.x)."""

    _fields_ = [("list_tables", _LIST_TABLES), ("get_table", _GET_TABLE),
                ("add_table", _ADD_TABLE), ("fields", FieldsVtable),
                ("fields_ext", ctypes.POINTER(FieldsVtable)),
                ("reader_ext", ctypes.POINTER(ReaderVtableExt)),
                ("writer_ext", ctypes.POINTER(WriterVtableExt))]


class TableInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("key_type", ctypes.c_uint32)]


class FieldInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("field_type", ctypes.c_uint32),
                ("read_only", ctypes.c_uint32)]


_ITERATOR = ctypes.CFUNCTYPE(ctypes.c_uint32, P, P)
_N_BUILTIN = len(FIELD_NAMES)
_TABLE = 1  # the opaque pointer of the threads table


def _guard(default: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A callback that returns ``default`` instead of raising into C."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def safe(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as err:  # nothing may cross into the plugin
                log.debug("plugin table callback %s failed: %s", fn.__name__, err)
                return default
        return safe
    return wrap


class ThreadsTable:
    """The owner side of the tables API: the ``threads`` table, vtables and ``log_fn``."""

    def __init__(self, plugin_name: str, view: ThreadView | None = None) -> None:
        self._view = view if view is not None else ThreadView()
        self._logger = logging.getLogger(f"detector.plugins.{plugin_name}")
        self._fields: list[tuple[bytes, int]] = [(n.encode(), FIELDS[n][0]) for n in FIELD_NAMES]
        self._written: dict[int, dict[int, Any]] = {}
        self._entries: dict[int, tuple[int, list[Any]]] = {}  # handle -> tid, kept buffers
        self._next_handle = 1
        self._name = ctypes.create_string_buffer(b"threads")
        self._info = (TableInfo * 1)(TableInfo(b"threads", ST_INT64))
        self._field_infos: Any = None
        self._refresh_field_infos()
        fields = FieldsVtable(_LIST_FIELDS(self._list_fields), _GET_FIELD(self._get_field),
                              _GET_FIELD(self._add_field))
        self._fields_ext = FieldsVtable(fields.list_table_fields, fields.get_table_field,
                                        fields.add_table_field)
        self.reader_ext = ReaderVtableExt(
            _TABLE_NAME(self._table_name), _TABLE_SIZE(self._table_size),
            _GET_ENTRY(self._get_entry), _READ_FIELD(self._read_field),
            _RELEASE(self._release), _ITERATE(self._iterate))
        ext = self.reader_ext
        self.reader = ReaderVtable(ext.get_table_name, ext.get_table_size, ext.get_table_entry,
                                   ext.read_entry_field)
        self.writer_ext = WriterVtableExt(
            _RC_TABLE(_guard(FAILURE)(lambda t: FAILURE)),
            _RC_KEY(_guard(FAILURE)(lambda t, k: FAILURE)),
            _NEW_ENTRY(_guard(None)(lambda t: None)), _RELEASE(_guard(None)(lambda t, e: None)),
            _ADD_ENTRY(_guard(None)(lambda t, k, e: None)), _READ_FIELD(self._write_field))
        wx = self.writer_ext
        self.writer = WriterVtable(wx.clear_table, wx.erase_table_entry, wx.create_table_entry,
                                   wx.destroy_table_entry, wx.add_table_entry,
                                   wx.write_entry_field)
        self.tables = InitTablesInput(
            _LIST_TABLES(self._list_tables), _GET_TABLE(self._get_table),
            _ADD_TABLE(_guard(FAILURE)(lambda o, i: FAILURE)), fields,
            ctypes.pointer(self._fields_ext), ctypes.pointer(self.reader_ext),
            ctypes.pointer(self.writer_ext))
        self.log_fn = LOG_FN(self._log)

    def _refresh_field_infos(self) -> None:
        self._field_infos = (FieldInfo * len(self._fields))(
            *(FieldInfo(n, t, 1 if i < _N_BUILTIN else 0)
              for i, (n, t) in enumerate(self._fields)))

    @_guard(None)
    def _log(self, component: bytes | None, msg: bytes | None, sev: int) -> None:
        text = (msg or b"").decode("utf-8", "replace").rstrip("\n")
        who = f"[{component.decode('utf-8', 'replace')}] " if component else ""
        self._logger.log(_LOG_LEVELS.get(int(sev), logging.INFO), "%s%s", who, text)

    @_guard(None)
    def _list_tables(self, owner: Any, ntables: Any) -> Any:
        ntables[0] = 1
        return ctypes.addressof(self._info)

    @_guard(None)
    def _get_table(self, owner: Any, name: bytes | None, key_type: int) -> Any:
        return _TABLE if name == b"threads" and key_type == ST_INT64 else None

    @_guard(None)
    def _list_fields(self, table: Any, nfields: Any) -> Any:
        nfields[0] = len(self._fields)
        return ctypes.addressof(self._field_infos)

    @_guard(None)
    def _get_field(self, table: Any, name: bytes | None, data_type: int) -> Any:
        for i, (n, t) in enumerate(self._fields):
            if n == name:
                return i + 1 if t == data_type else None
        return None

    @_guard(None)
    def _add_field(self, table: Any, name: bytes | None, data_type: int) -> Any:
        if not name or data_type not in (ST_INT64, ST_UINT64, ST_STRING, ST_BOOL, ST_UINT32,
                                         ST_INT32):
            return None
        found = self._get_field(table, name, data_type)
        if found or any(n == name for n, _ in self._fields):
            return found
        self._fields.append((bytes(name), data_type))
        self._refresh_field_infos()
        return len(self._fields)

    @_guard(None)
    def _table_name(self, table: Any) -> Any:
        return ctypes.addressof(self._name)

    @_guard(0xFFFFFFFFFFFFFFFF)
    def _table_size(self, table: Any) -> int:
        return len(self._view)

    def _new_entry(self, tid: int) -> int:
        handle = self._next_handle
        self._next_handle += 1
        self._entries[handle] = (tid, [])
        return handle

    @_guard(None)
    def _get_entry(self, table: Any, key: Any) -> Any:
        tid = ctypes.c_int64.from_address(key).value
        if self._view.get(tid) is None and tid not in self._written:
            return None
        return self._new_entry(tid)

    @_guard(None)
    def _release(self, table: Any, entry: Any) -> None:
        self._entries.pop(int(entry or 0), None)

    @_guard(0)
    def _iterate(self, table: Any, it: Any, state: Any) -> int:
        """Call the plugin's iterator with each row; 1 when every row was visited."""
        visit = _ITERATOR(it)
        for tid in self._view.tids():
            handle = self._new_entry(tid)
            try:
                if not visit(state, handle):
                    return 0
            finally:
                self._entries.pop(handle, None)
        return 1

    @_guard(FAILURE)
    def _read_field(self, table: Any, entry: Any, field: Any, out: Any) -> int:
        tid, keep = self._entries[int(entry)]
        index = int(field) - 1
        kind = self._fields[index][1]
        value: Any
        if index < _N_BUILTIN:
            th = self._view.get(tid)
            if th is None:
                return FAILURE  # gone from the table since the entry was taken
            value = ThreadView.value(th, index)
        else:
            value = self._written.get(tid, {}).get(index)
        if kind == ST_STRING:
            buf = ctypes.create_string_buffer(str(value or "").encode())
            keep.append(buf)
            ctypes.c_void_p.from_address(out).value = ctypes.addressof(buf)
        elif kind in (ST_INT64, ST_INT32):
            ctypes.c_int64.from_address(out).value = int(value or 0)
        else:
            ctypes.c_uint64.from_address(out).value = int(value or 0)
        return SUCCESS

    @_guard(FAILURE)
    def _write_field(self, table: Any, entry: Any, field: Any, value_in: Any) -> int:
        tid, _ = self._entries[int(entry)]
        index = int(field) - 1
        if index < _N_BUILTIN:
            return FAILURE  # the detector's own fields are read-only
        kind = self._fields[index][1]
        if kind == ST_STRING:
            ptr = ctypes.c_void_p.from_address(value_in).value
            value: Any = ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else ""
        else:
            value = ctypes.c_uint64.from_address(value_in).value
        self._written.setdefault(tid, {})[index] = value
        return SUCCESS


