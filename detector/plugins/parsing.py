"""Falco's parse step: before the rules see an event, every plugin with the parsing capability
whose sources and event types take it gets it (``plugin_parse_event``), on the event loop's
thread, in ``load_plugins`` order. Syscall events included, as Falco does."""

from __future__ import annotations

import logging

from detector.events import Event
from detector.plugins import LoadedPlugins
from detector.plugins.base import Plugin, PluginEventRef
from detector.plugins.scapevt import plan

log = logging.getLogger("detector.plugins")


class EventParsers:
    """Calls the parsing plugins for each event; build it with :func:`event_parsers`."""

    def __init__(self, plugins: LoadedPlugins) -> None:
        self._plugins = plugins
        self._ids = {src: p.info.id for src, (_, p) in plugins.sources().items()}
        self._chosen: dict[tuple[str, bool, str], list[Plugin]] = {}
        self.parsed = 0
        self.failed = 0
        self._warned: set[str] = set()

    def _for(self, source: str, plugin_event: bool, etype: str) -> list[Plugin]:
        """The plugins parsing events of ``source`` (and, for a syscall event, of ``etype``:
        matched by its libscap code)."""
        key = (source, plugin_event, etype)
        chosen = self._chosen.get(key)
        if chosen is None:
            code = None if plugin_event else plan(etype)[0]
            chosen = self._chosen[key] = [p for _, p in self._plugins.plugins
                                          if p.info.parses(source, plugin_event, code)]
        return chosen

    def __call__(self, ev: Event) -> None:
        data = ev.plugin_data
        parsers = self._for(ev.source, data is not None, "" if data is not None else ev.type)
        if not parsers:
            return
        ref = PluginEventRef(num=ev.num, ts=ev.ts, data=data if data is not None else b"",
                             source=ev.source, plugin_id=self._ids.get(ev.source, 0)
                             if data is not None else 0, tid=ev.tid, event=ev)
        for plugin in parsers:
            if plugin.parse(ref):
                self.parsed += 1
                continue
            self.failed += 1
            name = plugin.info.name
            if name not in self._warned:  # once per plugin: a failing parser fails often
                self._warned.add(name)
                log.warning("plugin %r: plugin_parse_event failed (event %d, source %s); "
                            "the event still reaches the rules", name, ev.num, ev.source)


def event_parsers(plugins: LoadedPlugins) -> EventParsers | None:
    """The parse step for ``plugins``; None when no plugin parses (nothing to call per event)."""
    if not any(p.info.parsing for _, p in plugins.plugins):
        return None
    return EventParsers(plugins)
