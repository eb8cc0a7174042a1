"""A compiled rule set as the runtime swaps it: the engine plus what was loaded to make it.

``compile_rules`` is the one place the runtime meets the rules package (detector.rules): it
loads every file in order (every source through the one loader: each rule compiled against the
fields of its source, built-in and plugins'), applies ``priority``, ``rules:`` selectors,
``rule_matching`` and ``append_output``, checks ``required_plugin_versions`` and returns a
:class:`RuleSet` with one engine per source that has rules, or raises with the first error
(``path:line: message``).

``append_output``: ``extra_output`` and the suggested fields are appended to the output of the
rules an entry matches (Falco's order, one space before each), each as ``foo_bar=%foo.bar``.
The suggested fields of a source (:func:`suggested_fields`) are ``static.<name>`` for each
``static_fields`` entry (also readable in conditions), the container plugin's
``container.id``/``container.name`` for ``syscall`` (the detector provides those fields
itself), and every field a loaded plugin extracting on that source marks ``addOutput``; a
suggested field the rule's output already shows is not added twice. ``extra_fields`` go to the
JSON ``output_fields`` only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from detector.config import PRIORITIES, AppendOutput, FalcoConfig
from detector.events import Event
from detector.metrics import sha256_file
from detector.outputs.format import AlertLike, hostname
from detector.plugins import LoadedPlugins

# The container plugin's suggested output fields (Falco appends them to syscall rules).
SUGGESTED_FIELDS = {"syscall": ("container.id", "container.name")}


class EngineLike(Protocol):
    """What the event loop calls for every event."""

    def process(self, event: Event) -> Sequence[AlertLike]: ...


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
    syscall_rules: tuple[object, ...] = ()  # the syscall engine's rules (kernel filters)


def suggested_fields(config: FalcoConfig, plugins: LoadedPlugins, source: str) -> list[str]:
    """The fields Falco suggests for ``source``'s outputs, in its order: the ``static.*``
    fields, then the plugins' (the container fields, which the detector provides itself, then
    every field a loaded plugin extracting on ``source`` marks ``addOutput``)."""
    from detector.rules.fields.registry import FIELDS

    out = [f"static.{k}" for k in config.static_fields]
    out += SUGGESTED_FIELDS.get(source, ())
    for name, (_plugin, pf) in plugins.extractor_fields(source).items():
        if pf.add_output and name not in out and not (source == "syscall" and name in FIELDS):
            out.append(name)
    return out


def _suggested(entry: AppendOutput, source: str,
               fields: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(format, the field it shows) pairs an entry's ``suggested_output`` adds for ``source``:
    ``foo_bar=%foo.bar`` as Falco writes them."""
    if not entry.suggested_output or (entry.source and entry.source != source):
        return []
    return [(f"{name.replace('.', '_')}=%{name}", f"%{name}") for name in fields.get(source, ())]


def output_extras(config: FalcoConfig, sources: Sequence[str],
                  fields: Mapping[str, Sequence[str]]) -> list[Any]:
    """The rules loader's ``AppendOutput`` items for ``config.append_output``."""
    from detector.rules.load.loader import AppendOutput as LoaderAppend

    out: list[Any] = []
    for entry in config.append_output:
        if entry.extra_output:
            out.append(LoaderAppend(entry.extra_output, entry.source, entry.tags, entry.rule))
        for source in sources:
            for fmt, _shown in _suggested(entry, source, fields):
                out.append(LoaderAppend(fmt, source, entry.tags, entry.rule))
    return out


def _dedupe_suggested(output: str, config: FalcoConfig, source: str,
                      fields: Mapping[str, Sequence[str]]) -> str:
    """Drop an appended suggested field when the rule's own output already shows it."""
    for entry in config.append_output:
        for fmt, shown in _suggested(entry, source, fields):
            tail = " " + fmt
            if output.count(shown) > 1 and tail in output:
                idx = output.rindex(tail)
                output = output[:idx] + output[idx + len(tail):]
    return output


class ExtraFields:
    """``extra_fields``: JSON-only fields added to the alerts of the rules an entry matches."""

    def __init__(self, inner: EngineLike, by_rule: dict[str, list[tuple[str, Any, bool]]]):
        self.inner = inner
        self.by_rule = by_rule

    def process(self, event: Event) -> Sequence[AlertLike]:
        alerts = self.inner.process(event)
        for alert in alerts:
            for name, fmt, raw in self.by_rule.get(alert.rule, ()):
                fields = alert.output_fields
                if raw:
                    fields.update(fmt.fields(event))
                else:
                    fields[name] = fmt.render(event)
        return alerts


def _extra_fields(config: FalcoConfig, rules: Sequence[Any],
                  providers: Any) -> dict[str, list[tuple[str, Any, bool]]]:
    from detector.rules.output import parse_format

    out: dict[str, list[tuple[str, Any, bool]]] = {}
    for entry in config.append_output:
        for rule in rules:
            if not entry.extra_fields or not entry.applies(rule=rule.name, source=rule.source,
                                                           tags=rule.tags):
                continue
            provider = providers.get(rule.source)
            out.setdefault(rule.name, []).extend(
                (f.name, parse_format(f.format, provider), f.raw) for f in entry.extra_fields)
    return out


def compile_rules(*, files: list[Path], config: FalcoConfig,
                  plugins: LoadedPlugins | None = None) -> RuleSet:
    """Load and compile ``files`` into a RuleSet; raise on any error, keeping nothing half-made."""
    from detector.plugins.fields import source_providers
    from detector.rules.engine import RuleSelector as EngineSelector
    from detector.rules.engine import RulesEngine
    from detector.rules.fields.static import with_static_fields
    from detector.rules.load.loader import PROVIDED_PLUGINS, load_rules_files

    plugins = plugins or LoadedPlugins()
    provided = {**PROVIDED_PLUGINS, **plugins.versions()}
    # Every source: syscall plus the plugins' (rules of other sources: LOAD_UNKNOWN_SOURCE).
    all_sources = ["syscall", *sorted(plugins.sources())]
    providers = with_static_fields(source_providers(plugins), all_sources, config.static_fields)
    suggested = {src: suggested_fields(config, plugins, src) for src in all_sources}
    ruleset = load_rules_files([str(p) for p in files], plugins=provided,
                               sources=set(all_sources), providers=providers,
                               append_output=output_extras(config, all_sources, suggested))
    selectors = [EngineSelector(s.action == "enable", s.rule, s.tag)
                 for s in config.rule_selectors]
    if any(e.suggested_output for e in config.append_output):
        import dataclasses

        ruleset = dataclasses.replace(ruleset, rules=tuple(
            dataclasses.replace(r, output=_dedupe_suggested(r.output, config, r.source,
                                                            suggested))
            for r in ruleset.rules))
    host = hostname()
    engines: dict[str, EngineLike] = {}
    counts: dict[str, int] = {}
    event_types: set[str] | None = set()
    syscall_rules: tuple[object, ...] = ()
    for source in all_sources:
        engine = RulesEngine(ruleset, min_priority=PRIORITIES.index(config.priority),
                             rule_matching=config.rule_matching, selectors=selectors,
                             time_format_iso_8601=config.time_format_iso_8601,
                             hostname=host, source=source)
        if source != "syscall" and not engine.rules:
            continue
        counts[source] = len(engine.rules)
        extra = _extra_fields(config, engine.rules, ruleset.providers)
        engines[source] = ExtraFields(engine, extra) if extra else engine
        if source == "syscall":
            engine.prepare()  # generated and compiled here, not on the loop's first events
            syscall_rules = tuple(engine.rules)
            for rule in engine.rules:
                if rule.evttypes is None or event_types is None:
                    event_types = None
                else:
                    event_types |= rule.evttypes
    warnings = [f"{m.where}: {m.message}" if m.where else m.message
                for result in ruleset.results for m in result.warnings]
    return RuleSet(
        engine=engines["syscall"] if len(engines) == 1 else SourceDispatch(dict(engines)),
        files=list(files), digests={str(p): sha256_file(p) for p in files},
        event_types=None if event_types is None else frozenset(event_types),
        sources=frozenset(engines), rule_count=sum(counts.values()), warnings=warnings,
        syscall_rules=syscall_rules,
    )


class SourceDispatch:
    """Several sources: each event goes to the engine of its ``source``."""

    def __init__(self, engines: dict[str, EngineLike]) -> None:
        self.engines = engines
        self._none: list[AlertLike] = []

    def process(self, event: Event) -> Sequence[AlertLike]:
        engine = self.engines.get(event.source)
        return engine.process(event) if engine is not None else self._none
