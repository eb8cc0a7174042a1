"""Native Falco plugins (shared libraries, plugin API 3.x) loaded through ctypes."""

from __future__ import annotations

import ctypes
import json
import threading
import time
from pathlib import Path
from typing import Any

from detector.plugins.abi import (
    EVT_HEADER,
    REQUIRED,
    TS_NOW,
    Request,
    SsPluginEvent,
    SsPluginEventInput,
    SsPluginEventParseInput,
    SsPluginFieldExtractInput,
    SsPluginInitInput,
    check_api_version,
    owner_last_error,
    plugin_event_bytes,
)
from detector.plugins.base import (
    PLUGIN_EVENT_TYPE,
    FieldValue,
    PluginEventRef,
    PluginField,
    PluginInfo,
    parse_fields,
)
from detector.plugins.scapevt import plan, scap_record
from detector.plugins.tables import ThreadsTable
from detector.plugins.threadview import ThreadView
from falcoctl_py.errors import DetectorError


class NativePlugin:
    """A shared-library plugin: init on construction, destroy when done."""

    def __init__(self, name: str, library: Path, init_config: str = "",
                 threads: ThreadView | None = None) -> None:
        self._lib = self._open_library(name, library)
        self._lock = threading.Lock()
        self._requests: dict[tuple[tuple[str, str | None], ...], Request] = {}
        self._sources: dict[str, bytes] = {}
        self._state: int | None = None
        self.info = self._read_info(name)
        self._field_ids = {f.name: (i, f) for i, f in enumerate(self.info.fields)}
        # As Falco 0.42+: a logger always, the tables for plugins that parse or extract.
        self._tables = ThreadsTable(name, threads)
        self._init(name, init_config)
        self._declare()

    @staticmethod
    def _open_library(name: str, library: Path) -> ctypes.CDLL:
        try:
            lib = ctypes.CDLL(str(library))
        except OSError as err:
            raise DetectorError(f"plugin {name!r}: cannot load {library}: {err}",
                                hint="check plugins[].library_path in falco.yaml") from err
        missing = [s for s in REQUIRED if not hasattr(lib, s)]
        if missing:
            raise DetectorError(f"plugin {name!r} ({library}) lacks required symbols: "
                                + ", ".join(missing), hint="is it a Falco plugin?")
        return lib

    def _read_info(self, name: str) -> PluginInfo:
        """Identity and capabilities, from the symbols the library exports."""
        lib = self._lib
        required = self._str("plugin_get_required_api_version")
        check_api_version(required, name)
        info = PluginInfo(
            name=self._str("plugin_get_name"), version=self._str("plugin_get_version"),
            required_api_version=required, description=self._str("plugin_get_description"),
            contact=self._str("plugin_get_contact"))
        info.sourcing = all(hasattr(lib, s) for s in
                            ("plugin_open", "plugin_close", "plugin_next_batch"))
        info.extraction = hasattr(lib, "plugin_get_fields") and \
            hasattr(lib, "plugin_extract_fields")
        info.parsing = hasattr(lib, "plugin_parse_event")
        if info.sourcing and hasattr(lib, "plugin_get_id"):
            lib.plugin_get_id.restype = ctypes.c_uint32
            info.id = int(lib.plugin_get_id())
            info.event_source = self._str("plugin_get_event_source")
        if info.extraction:
            info.fields = parse_fields(json.loads(self._str("plugin_get_fields") or "[]"))
            if hasattr(lib, "plugin_get_extract_event_sources"):
                info.extract_sources = json.loads(
                    self._str("plugin_get_extract_event_sources") or "[]")
        return info

    def _init(self, name: str, init_config: str) -> None:
        """``plugin_init`` with the config, the tables (parsing or extracting) and a logger."""
        lib = self._lib
        lib.plugin_init.restype = ctypes.c_void_p
        lib.plugin_init.argtypes = [ctypes.POINTER(SsPluginInitInput),
                                    ctypes.POINTER(ctypes.c_int32)]
        lib.plugin_get_last_error.restype = ctypes.c_char_p
        lib.plugin_get_last_error.argtypes = [ctypes.c_void_p]
        lib.plugin_destroy.argtypes = [ctypes.c_void_p]
        with_tables = self.info.parsing or self.info.extraction
        self._init_input = SsPluginInitInput(
            config=init_config.encode(), owner=None, getowner_last_error=owner_last_error,
            tables=ctypes.pointer(self._tables.tables) if with_tables else None,
            log_fn=self._tables.log_fn)
        rc = ctypes.c_int32(0)
        self._state = lib.plugin_init(ctypes.byref(self._init_input), ctypes.byref(rc))
        if rc.value != 0:
            reason = self.last_error()
            if self._state:
                lib.plugin_destroy(self._state)
            self._state = None
            raise DetectorError(f"plugin {name!r}: init failed: "
                                f"{reason or 'rc ' + str(rc.value)}",
                                hint="check plugins[].init_config in falco.yaml")

    def _declare(self) -> None:
        """Argument types of the capability functions the plugin has."""
        lib = self._lib
        if self.info.sourcing:
            lib.plugin_open.restype = ctypes.c_void_p
            lib.plugin_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                        ctypes.POINTER(ctypes.c_int32)]
            lib.plugin_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            lib.plugin_next_batch.restype = ctypes.c_int32
            lib.plugin_next_batch.argtypes = [
                ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                ctypes.POINTER(ctypes.POINTER(ctypes.POINTER(SsPluginEvent)))]
        if self.info.parsing:
            self._setup_parsing()
        if self.info.extraction:
            if hasattr(lib, "plugin_get_extract_event_types"):
                self.info.extract_types = self._event_types(lib.plugin_get_extract_event_types)
            lib.plugin_extract_fields.restype = ctypes.c_int32
            lib.plugin_extract_fields.argtypes = [
                ctypes.c_void_p, ctypes.POINTER(SsPluginEventInput),
                ctypes.POINTER(SsPluginFieldExtractInput)]

    def _setup_parsing(self) -> None:
        """Declare ``plugin_parse_event``, read the sources and event types it parses, and
        build its input once (the tables' vtables)."""
        lib, tables = self._lib, self._tables
        if hasattr(lib, "plugin_get_parse_event_sources"):
            self.info.parse_sources = [str(s) for s in json.loads(
                self._str("plugin_get_parse_event_sources") or "[]")]
        if hasattr(lib, "plugin_get_parse_event_types"):
            self.info.parse_types = self._event_types(lib.plugin_get_parse_event_types)
        lib.plugin_parse_event.restype = ctypes.c_int32
        lib.plugin_parse_event.argtypes = [ctypes.c_void_p, ctypes.POINTER(SsPluginEventInput),
                                           ctypes.POINTER(SsPluginEventParseInput)]
        self._parse_input = SsPluginEventParseInput(
            owner=None, getowner_last_error=owner_last_error, table_reader=tables.reader,
            table_writer=tables.writer, table_reader_ext=ctypes.addressof(tables.reader_ext),
            table_writer_ext=ctypes.addressof(tables.writer_ext))
        self._parse_event = SsPluginEventInput()

    def _event_types(self, fn: Any) -> frozenset[int]:
        """A ``uint16_t* (*)(uint32_t* n, ss_plugin_t* s)`` list of event codes (at most 1024)."""
        fn.restype = ctypes.POINTER(ctypes.c_uint16)
        fn.argtypes = [ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]
        n = ctypes.c_uint32(0)
        codes = fn(ctypes.byref(n), self._state)
        if not codes:
            return frozenset()
        return frozenset(int(codes[i]) for i in range(min(n.value, 1024)))

    def parse(self, evt: PluginEventRef) -> bool:
        """Give one event to the plugin's parsing capability; False when it failed."""
        if not hasattr(self, "_parse_input"):
            return False
        raw = self._raw(evt)
        with self._lock:
            self._parse_event.evt = raw
            self._parse_event.evtnum = evt.num
            self._parse_event.evtsrc = evt.source.encode()
            rc = self._lib.plugin_parse_event(self._state, ctypes.byref(self._parse_event),
                                              ctypes.byref(self._parse_input))
        return int(rc) == 0

    def _raw(self, evt: PluginEventRef) -> bytes:
        """The scap bytes of an event: a syscall event's libscap record (encoded once for all
        plugins), a plugin event's PPME_PLUGINEVENT_E."""
        if evt.source == "syscall" and not evt.data:
            if evt.event is not None:
                return scap_record(evt.event)
            return EVT_HEADER.pack(evt.ts, evt.tid & 0xFFFFFFFFFFFFFFFF, EVT_HEADER.size, 0, 0)
        return plugin_event_bytes(evt.ts, evt.plugin_id or self.info.id, evt.data)

    def _str(self, symbol: str) -> str:
        fn = getattr(self._lib, symbol)
        fn.restype = ctypes.c_char_p
        fn.argtypes = []
        value = fn()
        return value.decode("utf-8", "replace") if value else ""

    def last_error(self) -> str:
        if not getattr(self, "_state", None):
            return ""
        value = self._lib.plugin_get_last_error(self._state)
        return value.decode("utf-8", "replace") if value else ""

    def open(self, params: str) -> object:
        rc = ctypes.c_int32(0)
        handle = self._lib.plugin_open(self._state, params.encode(), ctypes.byref(rc))
        if rc.value != 0:
            raise DetectorError(f"plugin {self.info.name!r}: open failed: {self.last_error()}",
                                hint="check plugins[].open_params in falco.yaml")
        return handle

    def next_batch(self, handle: object) -> tuple[int, list[tuple[int, bytes]]]:
        nevts = ctypes.c_uint32(0)
        evts = ctypes.POINTER(ctypes.POINTER(SsPluginEvent))()
        rc = int(self._lib.plugin_next_batch(self._state, handle, ctypes.byref(nevts),
                                             ctypes.byref(evts)))
        if rc not in (0, -1, 2):
            raise DetectorError(f"plugin {self.info.name!r}: next_batch failed: "
                                f"{self.last_error() or 'rc ' + str(rc)}",
                                hint="check plugins[].open_params in falco.yaml")
        out = []
        for i in range(nevts.value if rc in (0, 2) else 0):
            ptr = evts[i]
            hdr = ptr.contents
            raw = ctypes.string_at(ctypes.addressof(hdr), hdr.len)
            ts = hdr.ts if hdr.ts != TS_NOW else time.time_ns()
            # PPME_PLUGINEVENT_E: payload after the u32 lengths and the u32 plugin id.
            payload = raw[38:] if hdr.type == PLUGIN_EVENT_TYPE else raw[26:]
            out.append((ts, payload))
        return rc, out

    def close(self, handle: object) -> None:
        self._lib.plugin_close(self._state, handle)

    def extract(self, evt: PluginEventRef, field: str, arg: str | None) -> FieldValue:
        """Extract one field for one event; ``None`` when the plugin has no value."""
        return self.extract_many(evt, [(field, arg)])[0]

    def extract_many(self, evt: PluginEventRef,
                     wanted: list[tuple[str, str | None]]) -> list[FieldValue]:
        """Extract several fields of one event in one ``plugin_extract_fields`` call."""
        key = tuple(wanted)
        req = self._requests.get(key)
        if req is None:
            if len(self._requests) >= 64:  # rule sets come and go with reloads
                self._requests.clear()
            req = self._requests[key] = Request(self._field_ids, wanted, self._tables)
        out: list[FieldValue] = [None] * len(wanted)
        if not req.known or not self.info.extracts(_code(evt)):
            return out
        raw = self._raw(evt)
        src = self._sources.get(evt.source)
        if src is None:
            src = self._sources[evt.source] = evt.source.encode()
        with self._lock:
            einput = req.einput
            einput.evt = raw  # points into ``raw``, which outlives the call
            einput.evtnum = evt.num
            einput.evtsrc = src
            rc = self._lib.plugin_extract_fields(self._state, req.einput_ref, req.xinput_ref)
            if rc != 0:
                return out
            for ef, (i, is_list, read) in zip(req.efs, req.known, strict=True):
                res, n = ef.res, ef.res_len
                values = [read(res, j) for j in range(n)] if res and n else []
                out[i] = values if is_list else (values[0] if values else None)
        return out

    def destroy(self) -> None:
        if self._state:
            self._lib.plugin_destroy(self._state)
            self._state = None


def _code(evt: PluginEventRef) -> int:
    """The libscap event code of what :meth:`NativePlugin._raw` gives the plugin."""
    if evt.source == "syscall" and not evt.data:
        return plan(evt.event.type)[0] if evt.event is not None else 0
    return PLUGIN_EVENT_TYPE


__all__ = ["NativePlugin", "PluginField", "SsPluginEvent", "SsPluginEventInput",
           "SsPluginEventParseInput", "SsPluginFieldExtractInput", "SsPluginInitInput",
           "check_api_version", "plugin_event_bytes"]
