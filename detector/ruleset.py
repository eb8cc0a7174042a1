"""A compiled rule set as the runtime swaps it: the engine plus what was loaded to make it.

``compile_rules`` is the one place the runtime meets the rules package (detector.rules): it
loads every file in order, applies ``priority``, ``rules:`` selectors and ``rule_matching``,
binds plugin sources and fields, checks ``required_plugin_versions`` and returns a
:class:`RuleSet`, or raises with the first error (``path:line: message``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from detector.config import PRIORITIES, FalcoConfig
from detector.metrics import sha256_file
from detector.outputs.format import hostname
from detector.plugins import LoadedPlugins


class EngineLike(Protocol):
    """What the event loop calls for every event."""

    def process(self, event: Any) -> list[Any]: ...


@dataclass(slots=True)
class RuleSet:
    """One complete, compiled rule set."""

    engine: EngineLike
    files: list[Path]
    digests: dict[str, str] = field(default_factory=dict)
    event_types: frozenset[str] | None = None  # syscalls the rules need (None: unknown)
    sources: frozenset[str] = frozenset({"syscall"})
    rule_count: int = 0
    warnings: list[str] = field(default_factory=list)
    loaded_ns: int = field(default_factory=time.time_ns)


def compile_rules(*, files: list[Path], config: FalcoConfig,
                  plugins: LoadedPlugins | None = None) -> RuleSet:
    """Load and compile ``files`` into a RuleSet; raise on any error, keeping nothing half-made."""
    from detector.plugins.rules import compile_plugin_rules
    from detector.rules.engine import RuleSelector as EngineSelector
    from detector.rules.engine import RulesEngine
    from detector.rules.loader import PROVIDED_PLUGINS, load_rules_files

    plugins = plugins or LoadedPlugins()
    provided = {**PROVIDED_PLUGINS, **plugins.versions()}
    plugin_sources = sorted(plugins.sources())
    ruleset = load_rules_files([str(p) for p in files], plugins=provided)
    selectors = [EngineSelector(s.action == "enable", s.rule, s.tag)
                 for s in config.rule_selectors]
    min_priority = PRIORITIES.index(config.priority)
    matching = str(config.get("rule_matching", "first"))
    iso = config.flag("time_format_iso_8601")
    engine = RulesEngine(ruleset, min_priority=min_priority, rule_matching=matching,
                         selectors=selectors, time_format_iso_8601=iso,
                         hostname=hostname())
    event_types: set[str] | None = set()
    for rule in engine.rules:
        if rule.evttypes is None:
            event_types = None
            break
        assert event_types is not None
        event_types |= rule.evttypes
    engines: dict[str, EngineLike] = {"syscall": engine}
    used: set[str] = set()
    if plugin_sources:
        plugin_engines, used = compile_plugin_rules(
            files, {src: plugins.extractors(src) for src in plugin_sources},
            min_priority=min_priority, selectors=config.rule_selectors,
            rule_matching=matching, iso=iso)
        engines.update(plugin_engines)
    handled = set(plugin_sources)

    def relevant(m: Any) -> bool:  # drop what only the syscall loader's view makes a warning
        if m.code == "LOAD_UNKNOWN_SOURCE":
            return not any(f"source {s}" in m.message for s in handled)
        if m.code in ("LOAD_UNUSED_MACRO", "LOAD_UNUSED_LIST"):
            return not any(loc.item_name in used for loc in m.locations)
        return True

    warnings = [f"{m.where}: {m.message}" if m.where else m.message
                for result in ruleset.results for m in result.warnings if relevant(m)]
    rule_count = len(engine.rules) + sum(len(getattr(e, "rules", ())) for src, e in
                                         engines.items() if src != "syscall")
    return RuleSet(
        engine=engine if len(engines) == 1 else SourceDispatch(engines),
        files=list(files), digests={str(p): sha256_file(p) for p in files},
        event_types=None if event_types is None else frozenset(event_types),
        sources=frozenset(engines), rule_count=rule_count, warnings=warnings,
    )


class SourceDispatch:
    """Several sources: each event goes to the engine of its ``source``."""

    def __init__(self, engines: dict[str, EngineLike]) -> None:
        self.engines = engines
        self._none: list[Any] = []

    def process(self, event: Any) -> list[Any]:
        engine = self.engines.get(event.source)
        return engine.process(event) if engine is not None else self._none
