"""Plugins honoured through ``load_plugins``: native (.so, plugin API 3.x) and Python ones."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from detector.config import DEFAULT_PLUGINS_DIR, FalcoConfig, PluginConfig
from detector.plugins.base import (
    PLUGIN_API_VERSION,
    LazyPluginFields,
    Plugin,
    PluginEventRef,
    PluginField,
    PluginInfo,
    events_from,
)
from detector.plugins.threadview import ThreadView
from falcoctl_py.errors import DetectorError

__all__ = [
    "PLUGIN_API_VERSION", "LazyPluginFields", "LoadedPlugins", "Plugin", "PluginEventRef",
    "PluginField", "PluginInfo", "events_from", "load_plugins",
]


@dataclass(slots=True)
class LoadedPlugins:
    """The plugins falco.yaml loads, with what rules can bind to."""

    plugins: list[tuple[PluginConfig, Plugin]] = field(default_factory=list)

    def versions(self) -> dict[str, str]:
        return {p.info.name: p.info.version for _, p in self.plugins}

    def sources(self) -> dict[str, tuple[PluginConfig, Plugin]]:
        """Event source name -> the sourcing plugin (the first one wins)."""
        out: dict[str, tuple[PluginConfig, Plugin]] = {}
        for cfg, p in self.plugins:
            if p.info.sourcing and p.info.id and p.info.event_source:
                out.setdefault(p.info.event_source, (cfg, p))
        return out

    def extractors(self, source: str) -> dict[str, Plugin]:
        """Field name -> plugin, for the plugins that extract on ``source``."""
        return {name: p for name, (p, _) in self.extractor_fields(source).items()}

    def extractor_fields(self, source: str) -> dict[str, tuple[Plugin, PluginField]]:
        """Field name -> (plugin, field) for the plugins whose extraction suits ``source``.

        Falco's compatibility: the sources a plugin lists in ``get_extract_event_sources``;
        without that list, its own event source, or every source for an extraction-only
        plugin. The first plugin (``load_plugins`` order) that has a field wins.
        """
        out: dict[str, tuple[Plugin, PluginField]] = {}
        for _, p in self.plugins:
            if not p.info.extraction:
                continue
            srcs = p.info.extract_sources or ([p.info.event_source] if p.info.event_source
                                              else [])
            if srcs and source not in srcs:
                continue
            for f in p.info.fields:
                out.setdefault(f.name, (p, f))
        return out

    def fields(self) -> dict[str, list[PluginField]]:
        """Plugin name -> its fields (for ``--list``)."""
        return {p.info.name: list(p.info.fields) for _, p in self.plugins}

    def destroy(self) -> None:
        for _, p in self.plugins:
            with contextlib.suppress(Exception):
                p.destroy()
        self.plugins.clear()


def _load_one(cfg: PluginConfig, threads: ThreadView | None = None) -> Plugin:
    if cfg.library_path.startswith("python:"):
        from detector.plugins.python import PythonPlugin

        return PythonPlugin(cfg.name, cfg.library_path.removeprefix("python:"), cfg.init_config)
    from detector.plugins.native import NativePlugin

    path = Path(cfg.library_path)
    if not path.is_absolute():
        path = DEFAULT_PLUGINS_DIR / path
        if DEFAULT_PLUGINS_DIR.resolve() not in path.resolve().parents:
            raise DetectorError(f"plugin {cfg.name!r}: library_path {cfg.library_path!r} "
                                f"leaves {DEFAULT_PLUGINS_DIR}",
                                hint="give an absolute path or one inside the plugins dir")
    if not path.is_file():
        raise DetectorError(f"plugin {cfg.name!r}: library {path} does not exist",
                            hint="install it (falcoctl-py artifact install) or fix library_path")
    return NativePlugin(cfg.name, path, cfg.init_config, threads=threads)


def load_plugins(config: FalcoConfig, threads: ThreadView | None = None) -> LoadedPlugins:
    """Load and init every plugin named in ``load_plugins`` (in that order); ``threads`` gives
    native plugins the rows of the ``threads`` table (the detector's threads, read-only)."""
    by_name = {p.name: p for p in config.plugins}
    loaded = LoadedPlugins()
    try:
        for name in config.load_plugins:
            cfg = by_name.get(name)
            if cfg is None:
                raise DetectorError(f"load_plugins names {name!r} but plugins has no entry "
                                    "for it", hint="add it to plugins: with a library_path")
            loaded.plugins.append((cfg, _load_one(cfg, threads)))
    except BaseException:
        loaded.destroy()
        raise
    return loaded
