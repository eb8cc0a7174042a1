"""Plugins honoured through ``load_plugins``: native (.so, plugin API 3.x) and Python ones."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from falcoctl_py.errors import DetectorError

# Plugins whose fields the detector provides itself (container.* from the state tracker).
BUILTIN_PLUGIN_VERSIONS = {"container": "0.4.0"}

__all__ = [
    "BUILTIN_PLUGIN_VERSIONS", "PLUGIN_API_VERSION", "LazyPluginFields", "LoadedPlugins",
    "Plugin", "PluginEventRef", "PluginField", "PluginInfo", "check_requirements",
    "events_from", "load_plugins",
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
        out: dict[str, Plugin] = {}
        for _, p in self.plugins:
            if not p.info.extraction:
                continue
            srcs = p.info.extract_sources or ([p.info.event_source] if p.info.event_source
                                              else [])
            if srcs and source not in srcs:
                continue
            for f in p.info.fields:
                out.setdefault(f.name, p)
        return out

    def fields(self) -> dict[str, list[PluginField]]:
        """Plugin name -> its fields (for ``--list``)."""
        return {p.info.name: list(p.info.fields) for _, p in self.plugins}

    def destroy(self) -> None:
        for _, p in self.plugins:
            with contextlib.suppress(Exception):
                p.destroy()
        self.plugins.clear()


def _load_one(cfg: PluginConfig) -> Plugin:
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
    return NativePlugin(cfg.name, path, cfg.init_config)


def load_plugins(config: FalcoConfig) -> LoadedPlugins:
    """Load and init every plugin named in ``load_plugins`` (in that order)."""
    by_name = {p.name: p for p in config.plugins}
    loaded = LoadedPlugins()
    try:
        for name in config.load_plugins:
            cfg = by_name.get(name)
            if cfg is None:
                raise DetectorError(f"load_plugins names {name!r} but plugins has no entry "
                                    "for it", hint="add it to plugins: with a library_path")
            loaded.plugins.append((cfg, _load_one(cfg)))
    except BaseException:
        loaded.destroy()
        raise
    return loaded


def _semver(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ([*str(text).split("-")[0].split("."), "0", "0"])[:3])


def _compatible(have: str, need: str) -> bool:
    try:
        h, n = _semver(have), _semver(need)
    except ValueError:
        return False
    return h[0] == n[0] and h[1:] >= n[1:]


def check_requirements(requirements: list[Any], loaded: dict[str, str]) -> None:
    """``required_plugin_versions`` against the loaded plugins: a clear error, never a crash.

    Each requirement is a mapping (or object) with ``name``, ``version`` and optional
    ``alternatives`` of the same shape.
    """
    have = {**BUILTIN_PLUGIN_VERSIONS, **loaded}
    for req in requirements:
        options = [req, *(_get(req, "alternatives") or [])]
        if any(_get(o, "name") in have and _compatible(have[_get(o, "name")],
                                                        str(_get(o, "version")))
               for o in options):
            continue
        wanted = ", ".join(f"{_get(o, 'name')} (>= {_get(o, 'version')})" for o in options)
        loaded_text = ", ".join(f"{k} {v}" for k, v in sorted(loaded.items())) or "none"
        raise DetectorError(
            f"Plugin requirement not satisfied, must load one of: {wanted} "
            f"(loaded: {loaded_text})",
            hint="install the plugin (falcoctl-py artifact install --update-config) and list "
                 "it in load_plugins and plugins of falco.yaml")


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
