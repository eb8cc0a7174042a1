"""What every plugin offers the runtime, native (ctypes) or Python (entry points)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from detector.events import Event

PLUGIN_API_VERSION = "3.12.0"  # the plugin API version the framework reports (/versions)
PLUGIN_EVENT_TYPE = 322  # PPME_PLUGINEVENT_E
Scalar = str | int | bool | None
FieldValue = Scalar | list[Scalar]  # what a plugin extracts for one field (lists: isList)

# ss_plugin_field_type
FTYPE_UINT64, FTYPE_STRING, FTYPE_RELTIME, FTYPE_ABSTIME, FTYPE_BOOL = 8, 9, 20, 21, 25
FTYPE_IPADDR, FTYPE_IPNET = 40, 41
FTYPES = {"uint64": FTYPE_UINT64, "string": FTYPE_STRING, "reltime": FTYPE_RELTIME,
          "abstime": FTYPE_ABSTIME, "bool": FTYPE_BOOL, "ipaddr": FTYPE_IPADDR,
          "ipnet": FTYPE_IPNET}


@dataclass(frozen=True, slots=True)
class PluginField:
    """One field a plugin extracts (from ``plugin_get_fields``)."""

    name: str
    type: str  # uint64, string, reltime, abstime, bool, ipaddr, ipnet
    desc: str = ""
    is_list: bool = False
    arg_required: bool = False
    arg_index: bool = False
    arg_key: bool = False
    display: str = ""
    add_output: bool = False  # ``addOutput``: Falco suggests it as an output field


@dataclass(slots=True)
class PluginInfo:
    """Identity and capabilities of a loaded plugin."""

    name: str
    version: str
    required_api_version: str
    description: str = ""
    contact: str = ""
    id: int = 0
    event_source: str = ""
    sourcing: bool = False
    extraction: bool = False
    extract_sources: list[str] = field(default_factory=list)
    fields: list[PluginField] = field(default_factory=list)
    parsing: bool = False
    parse_sources: list[str] = field(default_factory=list)
    parse_types: frozenset[int] = frozenset()  # event codes (empty: Falco's default)
    extract_types: frozenset[int] = frozenset()  # get_extract_event_types (empty: all)

    def parses(self, source: str, plugin_event: bool, code: int | None = None) -> bool:
        """Whether events of ``source`` go to ``plugin_parse_event``, by the plugin API's rules.

        Sources: ``get_parse_event_sources``; without it (or empty), a plugin sourcing its own
        events parses that source only, any other plugin every source. Event types: without
        ``get_parse_event_types``, every event of those sources; with it, plugin events when it
        lists code 322, a syscall event when it lists the event's libscap ``code`` (without a
        code: when it lists any other code).
        """
        if not self.parsing:
            return False
        own = [self.event_source] if self.sourcing and self.id and self.event_source else []
        sources = self.parse_sources or own
        if sources and source not in sources:
            return False
        if not self.parse_types:
            return True
        if plugin_event:
            return PLUGIN_EVENT_TYPE in self.parse_types
        if code is not None:
            return code in self.parse_types
        return any(c != PLUGIN_EVENT_TYPE for c in self.parse_types)


    def extracts(self, code: int) -> bool:
        """Whether ``plugin_extract_fields`` is called for an event of libscap ``code``
        (322 for a plugin event): every code unless ``get_extract_event_types`` lists some."""
        return not self.extract_types or code in self.extract_types


class Plugin(Protocol):
    """A loaded plugin instance (after init)."""

    info: PluginInfo

    def open(self, params: str) -> object:
        """An opaque handle of the opened event stream."""
        ...

    def next_batch(self, handle: object) -> tuple[int, list[tuple[int, bytes]]]:
        """(rc, [(ts_ns, payload)]); rc is 0 success, -1 timeout, 2 EOF."""
        ...

    def close(self, handle: object) -> None: ...

    def extract(self, evt: PluginEventRef, field: str, arg: str | None) -> FieldValue: ...

    def extract_many(self, evt: PluginEventRef,
                     wanted: list[tuple[str, str | None]]) -> list[FieldValue]:
        """Several fields of one event (one plugin call where the API allows)."""
        ...

    def parse(self, evt: PluginEventRef) -> bool:
        """Give one event to the parsing capability; False when it failed (or there is none)."""
        ...

    def destroy(self) -> None: ...


@dataclass(slots=True)
class PluginEventRef:
    """An event as handed to extractors: number, time, payload and source.

    For a ``syscall`` event (plugins whose extraction is compatible with ``syscall``), ``data``
    is empty, ``plugin_id`` 0, and ``event`` is the detector's Event (Python plugins read it;
    native plugins get its libscap record, :func:`detector.plugins.scapevt.scap_record`).
    """

    num: int
    ts: int
    data: bytes
    source: str
    plugin_id: int = 0
    tid: int = 0
    event: Event | None = None


def parse_fields(items: list[dict[str, Any]]) -> list[PluginField]:
    """The JSON of ``plugin_get_fields`` as PluginField objects."""
    out = []
    for item in items:
        arg = item.get("arg") or {}
        out.append(PluginField(
            name=str(item["name"]), type=str(item.get("type", "string")),
            desc=str(item.get("desc", "")), is_list=bool(item.get("isList", False)),
            arg_required=bool(arg.get("isRequired", False)),
            arg_index=bool(arg.get("isIndex", False)), arg_key=bool(arg.get("isKey", False)),
            display=str(item.get("display", "")),
            add_output=bool(item.get("addOutput", False)),
        ))
    return out


_FIELD_ARG = re.compile(r"^(?P<name>[^\[]+)(?:\[(?P<arg>.*)\])?$")


def split_field(text: str) -> tuple[str, str | None]:
    """``foo.bar[arg]`` -> (``foo.bar``, ``arg``)."""
    m = _FIELD_ARG.match(text)
    if m is None:
        return text, None
    return m.group("name"), m.group("arg")


class LazyPluginFields(dict[str, Any]):
    """``Event.plugin_fields``: values are extracted from the plugin(s) on first access."""

    def __init__(self, extractors: dict[str, Plugin], evt: PluginEventRef) -> None:
        super().__init__()
        self._extractors = extractors
        self._evt = evt

    def __missing__(self, key: str) -> Any:
        name, arg = split_field(key)
        plugin = self._extractors.get(name)
        if plugin is None:
            if name.startswith("evt."):
                ev = self._evt
                value = {"evt.num": ev.num, "evt.time": ev.ts, "evt.source": ev.source,
                         "evt.type": "pluginevent",
                         "evt.plugininfo": ev.data.decode("utf-8", "replace")}.get(name)
                if value is not None:
                    return value
            raise KeyError(key)
        value = plugin.extract(self._evt, name, arg)
        self[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __bool__(self) -> bool:  # values exist before the first access extracts them
        return True

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and split_field(key)[0] in self._extractors


def events_from(plugin: Plugin, params: str,
                stop: threading.Event | None = None) -> Iterator[PluginEventRef]:
    """Drain a sourcing plugin: open, next_batch until EOF (or ``stop.is_set()``), close."""
    handle = plugin.open(params)
    num = 0
    try:
        while stop is None or not stop.is_set():
            rc, batch = plugin.next_batch(handle)
            for ts, data in batch:
                num += 1
                yield PluginEventRef(num=num, ts=ts, data=data, source=plugin.info.event_source,
                                     plugin_id=plugin.info.id)
            if rc == 2:  # SS_PLUGIN_EOF
                return
            if rc == -1 and not batch and stop is not None:  # timeout: nothing yet
                stop.wait(0.01)
    finally:
        plugin.close(handle)
