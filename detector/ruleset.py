"""A compiled rule set as the runtime swaps it: the engine plus what was loaded to make it.

``compile_rules`` is the one place the runtime meets the rules package (detector.rules): it
loads every file in order (every source through the one loader: each rule compiled against the
fields of its source, built-in and plugins'), applies ``priority``, ``rules:`` selectors and
``rule_matching``, checks ``required_plugin_versions`` and returns a :class:`RuleSet` with one
engine per source that has rules, or raises with the first error (``path:line: message``).
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
    from detector.plugins.fields import source_providers
    from detector.rules.engine import RuleSelector as EngineSelector
    from detector.rules.engine import RulesEngine
    from detector.rules.load.loader import PROVIDED_PLUGINS, load_rules_files

    plugins = plugins or LoadedPlugins()
    provided = {**PROVIDED_PLUGINS, **plugins.versions()}
    # Every source: syscall plus the plugins' (rules of other sources: LOAD_UNKNOWN_SOURCE).
    providers = source_providers(plugins)
    ruleset = load_rules_files([str(p) for p in files], plugins=provided,
                               sources={"syscall", *plugins.sources()}, providers=providers)
    selectors = [EngineSelector(s.action == "enable", s.rule, s.tag)
                 for s in config.rule_selectors]
    host = hostname()
    engines: dict[str, RulesEngine] = {}
    for source in ["syscall", *sorted(plugins.sources())]:
        engine = RulesEngine(ruleset, min_priority=PRIORITIES.index(config.priority),
                             rule_matching=str(config.get("rule_matching", "first")),
                             selectors=selectors,
                             time_format_iso_8601=config.flag("time_format_iso_8601"),
                             hostname=host, source=source)
        if source == "syscall" or engine.rules:
            engines[source] = engine
    event_types: set[str] | None = set()
    for rule in engines["syscall"].rules:
        if rule.evttypes is None:
            event_types = None
            break
        assert event_types is not None
        event_types |= rule.evttypes
    warnings = [f"{m.where}: {m.message}" if m.where else m.message
                for result in ruleset.results for m in result.warnings]
    return RuleSet(
        engine=engines["syscall"] if len(engines) == 1 else SourceDispatch(dict(engines)),
        files=list(files), digests={str(p): sha256_file(p) for p in files},
        event_types=None if event_types is None else frozenset(event_types),
        sources=frozenset(engines), rule_count=sum(len(e.rules) for e in engines.values()),
        warnings=warnings,
    )


class SourceDispatch:
    """Several sources: each event goes to the engine of its ``source``."""

    def __init__(self, engines: dict[str, EngineLike]) -> None:
        self.engines = engines
        self._none: list[Any] = []

    def process(self, event: Any) -> list[Any]:
        engine = self.engines.get(event.source)
        return engine.process(event) if engine is not None else self._none
