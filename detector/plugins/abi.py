"""The plugin API's C side for native plugins: the ctypes layouts of plugin API 3.x
(``plugin_api.h``: event, event input, extract field and inputs, parse input, init input), the
scap event header, the API version check and a prepared extraction request."""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

from detector.plugins.base import (
    FTYPE_ABSTIME,
    FTYPE_BOOL,
    FTYPE_RELTIME,
    FTYPE_STRING,
    FTYPE_UINT64,
    FTYPES,
    PLUGIN_API_VERSION,
    PLUGIN_EVENT_TYPE,
    PluginField,
    Scalar,
)
from detector.plugins.tables import (
    LOG_FN,
    InitTablesInput,
    ReaderVtable,
    ThreadsTable,
    WriterVtable,
)
from falcoctl_py.bounded import is_digits
from falcoctl_py.errors import DetectorError

REQUIRED = ("plugin_get_required_api_version", "plugin_get_version", "plugin_get_name",
             "plugin_get_description", "plugin_get_contact", "plugin_init", "plugin_destroy",
             "plugin_get_last_error")
TS_NOW = 0xFFFFFFFFFFFFFFFF  # an event timestamp of (uint64_t)-1 means "now"
EVT_HEADER = struct.Struct("<QQIHI")  # ts, tid, len, type, nparams: 26 bytes, packed


class SsPluginEvent(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("ts", ctypes.c_uint64), ("tid", ctypes.c_uint64), ("len", ctypes.c_uint32),
                ("type", ctypes.c_uint16), ("nparams", ctypes.c_uint32)]


class SsPluginEventInput(ctypes.Structure):
    # ``evt`` is a ``const ss_plugin_event*``; typed as char* so it is set from bytes directly.
    _fields_ = [("evt", ctypes.c_char_p), ("evtnum", ctypes.c_uint64),
                ("evtsrc", ctypes.c_char_p)]


class SsPluginExtractField(ctypes.Structure):
    _fields_ = [("res", ctypes.c_void_p), ("res_len", ctypes.c_uint64),
                ("field_id", ctypes.c_uint32), ("field", ctypes.c_char_p),
                ("arg_key", ctypes.c_char_p), ("arg_index", ctypes.c_uint64),
                ("arg_present", ctypes.c_uint32), ("ftype", ctypes.c_uint32),
                ("flist", ctypes.c_uint32)]


_GET_LAST_ERROR = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)


class SsPluginFieldExtractInput(ctypes.Structure):
    """``ss_plugin_field_extract_input``: the deprecated inline ``table_reader`` comes before
    ``table_reader_ext``."""

    _fields_ = [("owner", ctypes.c_void_p), ("get_owner_last_error", _GET_LAST_ERROR),
                ("num_fields", ctypes.c_uint32),
                ("fields", ctypes.POINTER(SsPluginExtractField)),
                ("table_reader", ReaderVtable), ("table_reader_ext", ctypes.c_void_p),
                ("value_offsets", ctypes.c_void_p)]


class SsPluginEventParseInput(ctypes.Structure):
    """``ss_plugin_event_parse_input``: deprecated inline reader and writer, then the ``_ext``
    pointers."""

    _fields_ = [("owner", ctypes.c_void_p), ("get_owner_last_error", _GET_LAST_ERROR),
                ("table_reader", ReaderVtable), ("table_writer", WriterVtable),
                ("table_reader_ext", ctypes.c_void_p), ("table_writer_ext", ctypes.c_void_p)]


class SsPluginInitInput(ctypes.Structure):
    """``ss_plugin_init_input``: ``tables`` is set for plugins that parse or extract."""

    _fields_ = [("config", ctypes.c_char_p), ("owner", ctypes.c_void_p),
                ("get_owner_last_error", _GET_LAST_ERROR),
                ("tables", ctypes.POINTER(InitTablesInput)), ("log_fn", LOG_FN)]


def _no_owner_error(owner: int | None) -> bytes:
    return b""


owner_last_error = _GET_LAST_ERROR(_no_owner_error)


def _semver(text: str) -> tuple[int, int, int]:
    parts = ([*text.strip().split("-")[0].split("."), "0", "0"])[:3]
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError as err:
        raise ValueError(f"not a semantic version: {text!r}") from err


def check_api_version(required: str, name: str) -> None:
    """A plugin's required API must have our major and a minor/patch we provide."""
    have = _semver(PLUGIN_API_VERSION)
    try:
        need = _semver(required)
    except ValueError as err:
        raise DetectorError(f"plugin {name!r}: bad required API version {required!r}",
                            hint="the plugin must report a semver such as 3.0.0") from err
    if need[0] != have[0] or need[1:] > have[1:]:
        raise DetectorError(
            f"plugin {name!r} requires plugin API {required}, the framework provides "
            f"{PLUGIN_API_VERSION}", hint="use a plugin version built for plugin API 3.x")


def plugin_event_bytes(ts: int, plugin_id: int, data: bytes) -> bytes:
    """A PPME_PLUGINEVENT_E event: header, two u32 lengths, plugin id, payload."""
    total = EVT_HEADER.size + 8 + 4 + len(data)
    return (EVT_HEADER.pack(ts, 0xFFFFFFFFFFFFFFFF, total, PLUGIN_EVENT_TYPE, 2)
            + struct.pack("<III", 4, len(data), plugin_id) + data)


def _read_str(res: int, j: int) -> str | None:
    ptr = ctypes.c_void_p.from_address(res + 8 * j).value
    return ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else None


def _read_u64(res: int, j: int) -> int:
    return ctypes.c_uint64.from_address(res + 8 * j).value


def _read_bool(res: int, j: int) -> bool:
    return bool(ctypes.c_uint32.from_address(res + 4 * j).value)


def _read_none(res: int, j: int) -> None:
    return None


_READERS = {FTYPE_STRING: _read_str, FTYPE_UINT64: _read_u64, FTYPE_RELTIME: _read_u64,
            FTYPE_ABSTIME: _read_u64, FTYPE_BOOL: _read_bool}


class Request:
    """One list of fields to extract, prepared once: the ctypes structures, reused per event."""

    def __init__(self, field_ids: dict[str, tuple[int, PluginField]],
                 wanted: list[tuple[str, str | None]], tables: ThreadsTable) -> None:
        chosen = [(i, name, arg, field_ids[name]) for i, (name, arg) in enumerate(wanted)
                  if name in field_ids]
        self.efs = (SsPluginExtractField * max(1, len(chosen)))()
        self.keep: list[bytes] = []  # the strings the plugin reads stay alive
        self.known: list[tuple[int, bool, Callable[[int, int], Scalar]]] = []
        for ef, (i, name, arg, (fid, info)) in zip(self.efs, chosen, strict=False):
            self.keep.append(name.encode())
            ef.field_id, ef.field = fid, self.keep[-1]
            ef.ftype = FTYPES.get(info.type, FTYPE_STRING)
            ef.flist = 1 if info.is_list else 0
            if arg is not None:
                ef.arg_present = 1
                if info.arg_index and is_digits(arg):
                    ef.arg_index = int(arg)
                else:
                    self.keep.append(arg.encode())
                    ef.arg_key = self.keep[-1]
            self.known.append((i, info.is_list, _READERS.get(ef.ftype, _read_none)))
        self.einput = SsPluginEventInput()
        first = ctypes.cast(self.efs, ctypes.POINTER(SsPluginExtractField))
        self.xinput = SsPluginFieldExtractInput(
            owner=None, get_owner_last_error=owner_last_error, num_fields=len(chosen),
            fields=first, table_reader=tables.reader,
            table_reader_ext=ctypes.addressof(tables.reader_ext))
        self.einput_ref = ctypes.byref(self.einput)
        self.xinput_ref = ctypes.byref(self.xinput)
