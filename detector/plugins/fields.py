"""The fields of loaded plugins as the rules compiler sees them: one provider per event source.

Falco compiles each rule with the filter factory of its ``source``. Here that is
:func:`source_providers`: for ``syscall``, the built-in fields plus those of plugins whose
extraction is compatible with ``syscall`` (``plugin_get_extract_event_sources``, like the
container and k8smeta plugins); for a plugin source, the fields of the plugins extracting on it
plus the generic event fields libsinsp has for every event (``evt.num``, ``evt.time``...,
``evt.source``, ``evt.pluginname``, ``evt.plugininfo``). A plugin field in a condition or an
output compiles to a reader: on an event's first read of a plugin's field, every field of that
plugin the rule set uses is extracted in one call and kept on the event (``plugin_fields``).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from detector.plugins import LoadedPlugins
from detector.plugins.base import Plugin, PluginEventRef, PluginField
from detector.rules.fields import extract as fields_event
from detector.rules.fields.helpers import HELPERS
from detector.rules.fields.registry import (
    FIELDS,
    LIST,
    SCALAR,
    BoundField,
    FieldDef,
    FieldError,
    Provider,
)
from falcoctl_py.bounded import is_digits

TYPES = {"uint64": "UINT64", "string": "CHARBUF", "bool": "BOOL", "reltime": "RELTIME",
         "abstime": "ABSTIME", "ipaddr": "IPADDR", "ipnet": "IPNET"}
# libsinsp's generic event fields (gen_event and plugininfo checks): those of plugin sources.
GENERIC_FIELDS = ("evt.num", "evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime",
                  "evt.datetime.s", "evt.rawtime", "evt.rawtime.s", "evt.rawtime.ns",
                  "evt.source", "evt.hostname", "evt.is_async", "evt.pluginname",
                  "evt.plugininfo")
_MISSING = object()
_ids = itertools.count()


class _PluginBatch:
    """The fields one plugin extracts for one source's rules, read together per event."""

    def __init__(self, plugin: Plugin, source: str, plugin_id: int) -> None:
        self.plugin = plugin
        self.source = source
        self.plugin_id = plugin_id
        self.keys: list[str] = []
        self.wanted: list[tuple[str, str | None]] = []

    def add(self, key: str, name: str, arg: str | None) -> None:
        if key not in self.keys:
            self.keys.append(key)
            self.wanted.append((name, arg))

    def fill(self, e: Any, cache: dict[str, Any]) -> None:
        data = e.plugin_data
        ref = PluginEventRef(num=e.num, ts=e.ts, data=data if data is not None else b"",
                             source=e.source, plugin_id=self.plugin_id if data is not None
                             else 0, tid=e.tid, event=e)
        values = self.plugin.extract_many(ref, self.wanted)
        for key, value in zip(self.keys, values, strict=True):
            dict.__setitem__(cache, key, value)


class _Reader:
    """``_pxN(e)`` in generated code: one plugin field's value for event ``e`` (or None)."""

    __slots__ = ("batch", "key")

    def __init__(self, batch: _PluginBatch, key: str) -> None:
        self.batch = batch
        self.key = key

    def __call__(self, e: Any) -> Any:
        cache = e.plugin_fields
        if cache is None:
            cache = e.plugin_fields = {}
        value = dict.get(cache, self.key, _MISSING)
        if value is _MISSING:
            self.batch.fill(e, cache)
            value = dict.get(cache, self.key)
        return value


class PluginFieldsProvider(Provider):
    """The fields of one event source: plugins' fields, plus built-in or generic ones."""

    name = "plugins"

    def __init__(self, source: str, fields: Mapping[str, tuple[Plugin, PluginField]], *,
                 builtin: frozenset[str] | None, source_id: int = 0,
                 plugin_name: str = "") -> None:
        # ``builtin``: the built-in fields allowed (None: all of them, the syscall source);
        # ``source_id``/``plugin_name``: the plugin sourcing the events (its plugin id).
        self.source = source
        self.fields = dict(fields)
        self.builtin = builtin
        self.plugin_name = plugin_name
        self.source_id = source_id
        self.helpers: dict[str, object] = dict(HELPERS)
        self._batches: dict[int, _PluginBatch] = {}
        self._readers: dict[str, str] = {}  # field as written -> helper name
        self._extractors: dict[str, Callable[[Any], Any]] = {}

    def names(self) -> list[str]:
        """Every field rules of this source can use."""
        builtin = list(FIELDS) if self.builtin is None else sorted(self.builtin)
        return [*self.fields, *builtin]

    def knows(self, name: str) -> bool:
        return name in self.fields or name in FIELDS

    def bind(self, name: str, arg: str | None, *, pos: object = None) -> BoundField:
        entry = self.fields.get(name)
        if entry is None and (self.builtin is None or name in self.builtin):
            bound = super().bind(name, arg, pos=pos)
            if bound.fdef.name == "evt.pluginname":
                return self._const(bound, self.plugin_name or None)
            if bound.fdef.name == "evt.plugininfo":
                return _with_expr(bound, "(e.plugin_data.decode('utf-8', 'replace') if "
                                         "e.plugin_data is not None else None)", self)
            return bound
        if entry is None:
            near = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
            raise FieldError(f"filter_check called with nonexistent field {name}", pos=pos,
                             hint=(f"did you mean '{near[0]}'? " if near else "")
                             + f"fields of source {self.source}: "
                             + ", ".join(self.names()[:40]))
        plugin, pf = entry
        if arg is None and pf.arg_required:
            raise FieldError(f"filter_check called with nonexistent field {name}: this field "
                             "requires an argument", pos=pos, hint=f"write it as {name}[ARG]")
        if arg is not None and not (pf.arg_required or pf.arg_index or pf.arg_key):
            raise FieldError(f"filter_check called with nonexistent field {name}[{arg}]: "
                             f"field '{name}' does not take an argument", pos=pos)
        if arg is not None and pf.arg_index and not pf.arg_key and not is_digits(arg):
            raise FieldError(f"invalid argument '{arg}' for field {name}: expected a number",
                             pos=pos)
        ftype = TYPES.get(pf.type, "CHARBUF")
        flags = {"ARG_REQUIRED"} if pf.arg_required else {"ARG_ALLOWED"} if arg else set()
        if pf.is_list:
            flags.add("IS_LIST")
        text = name if arg is None else f"{name}[{arg}]"
        helper = self._reader(plugin, name, arg, text)
        return BoundField(FieldDef(name, ftype, frozenset(flags), pf.desc), text, arg, ftype,
                          LIST if pf.is_list else SCALAR, f"{helper}(e)",
                          make=self.make_extractor)

    def _reader(self, plugin: Plugin, name: str, arg: str | None, text: str) -> str:
        helper = self._readers.get(text)
        if helper is None:
            batch = self._batches.get(id(plugin))
            if batch is None:
                batch = self._batches[id(plugin)] = _PluginBatch(plugin, self.source,
                                                                 self.source_id)
            batch.add(text, name, arg)
            helper = self._readers[text] = f"_px{next(_ids)}"
            self.helpers[helper] = _Reader(batch, text)
        return helper

    def _const(self, bound: BoundField, value: str | None) -> BoundField:
        helper = f"_px{next(_ids)}"
        self.helpers[helper] = lambda e: value
        return _with_expr(bound, f"{helper}(e)", self)

    def make_extractor(self, expr: str) -> Callable[[Any], Any]:
        fn = self._extractors.get(expr)
        if fn is None:
            lines = ["def _x(e):", *("    " + fields_event.PRELUDE[n]
                                     for n in fields_event.locals_used(expr)),
                     f"    return {expr}"]
            ns: dict[str, Any] = dict(self.helpers)
            exec(compile("\n".join(lines), f"<field {expr[:40]}>", "exec"), ns)
            fn = self._extractors[expr] = ns["_x"]
        return fn


def _with_expr(bound: BoundField, expr: str, provider: Provider) -> BoundField:
    return BoundField(bound.fdef, bound.text, bound.arg, bound.type, bound.kind, expr,
                      bound.no_transformer, bound.no_rhs, provider.make_extractor)


def source_providers(plugins: LoadedPlugins) -> dict[str, Provider]:
    """The fields of each source the plugins bring: every plugin source, and ``syscall`` when
    a plugin extracts on it (absent: the built-in fields alone, the fast path)."""
    sourcing = plugins.sources()
    out: dict[str, Provider] = {}
    for source in ["syscall", *sorted(sourcing)]:
        fields = plugins.extractor_fields(source)
        if source == "syscall":
            fields = {n: fp for n, fp in fields.items() if n not in FIELDS}  # built-ins win
            if fields:
                out[source] = PluginFieldsProvider(source, fields, builtin=None)
            continue
        generic = frozenset(f for f in GENERIC_FIELDS if f in FIELDS)
        info = sourcing[source][1].info
        out[source] = PluginFieldsProvider(source, fields, builtin=generic, source_id=info.id,
                                           plugin_name=info.name)
    return out
