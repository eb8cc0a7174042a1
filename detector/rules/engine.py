"""The rules engine: loaded rules + compiled conditions -> alerts for events.

Rules are indexed by the event types they can match (Falco's inference), so an event meets
only its candidates, through one generated matcher per event type (``dispatch.RuleIndex``).
Which rules run is decided once, when the engine is built: each rule's ``enabled``, then the
falco.yaml ``rules:`` selectors in order (enable/disable by name wildcard or tag), then the
priority threshold. ``rule_matching: first`` (Falco's default) fires only the first matching
rule in load order; ``all`` fires every one.
"""

from __future__ import annotations

import fnmatch
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.errors import DetectorError
from detector.rules.eval.dispatch import RuleIndex
from detector.rules.load.collector import PRIORITIES, parse_priority
from detector.rules.load.loader import Rule, Ruleset
from detector.rules.output import RuleFormatter, json_alert, rule_formatter


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule match, as Falco reports it."""

    time: int  # event time, ns since the epoch
    rule: str
    priority: int  # 0 Emergency .. 7 Debug
    source: str
    tags: tuple[str, ...]
    output: str  # the text line: ``<time>: <Priority> <message>``
    message: str  # the formatted rule output alone
    output_fields: dict[str, Any] = field(hash=False)
    hostname: str = ""

    @property
    def priority_name(self) -> str:
        return PRIORITIES[self.priority]

    def as_json(self, *, include_message: bool = False) -> str:
        """Falco's JSON alert line."""
        return json_alert(hostname=self.hostname, output=self.output, priority=self.priority,
                          rule=self.rule, source=self.source, tags=self.tags,
                          time_ns=self.time, output_fields=self.output_fields,
                          message=self.message if include_message else None)


@dataclass(frozen=True, slots=True)
class RuleSelector:
    """One falco.yaml ``rules:`` entry: enable or disable rules by name wildcard or tag."""

    enable: bool
    rule: str | None = None  # a name, ``*`` wildcards allowed
    tag: str | None = None

    def matches(self, rule: Rule) -> bool:
        if self.rule is not None and fnmatch.fnmatchcase(rule.name, self.rule):
            return True
        return self.tag is not None and self.tag in rule.tags


def selectors_from_config(entries: Iterable[Any]) -> list[RuleSelector]:
    """falco.yaml ``rules: [{disable: {rule: X}}, {enable: {tag: Y}}, ...]`` -> selectors."""
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DetectorError(f"invalid 'rules' entry {entry!r}",
                                hint="use {enable: {rule: NAME}} or {disable: {tag: TAG}}")
        action, what = next(iter(entry.items()))
        if action not in ("enable", "disable") or not isinstance(what, dict):
            raise DetectorError(f"invalid 'rules' entry {entry!r}",
                                hint="the key must be 'enable' or 'disable'")
        out.append(RuleSelector(action == "enable", what.get("rule"), what.get("tag")))
    return out


@dataclass(frozen=True, slots=True)
class _Entry:
    rule: Rule
    formatter: RuleFormatter


def enabled_rules(rules: Sequence[Rule], *, selectors: Sequence[RuleSelector] = (),
                  min_priority: int = 7) -> list[Rule]:
    """The rules that run: own ``enabled``, then selectors in order, then the priority floor."""
    out = []
    for rule in rules:
        on = rule.enabled
        for sel in selectors:
            if sel.matches(rule):
                on = sel.enable
        if on and rule.priority <= min_priority:
            out.append(rule)
    return out


class RulesEngine:
    """Matches events against the enabled rules of one source and formats alerts."""

    def __init__(self, ruleset: Ruleset, *, min_priority: int | str = 7,
                 rule_matching: str = "first", selectors: Sequence[RuleSelector] = (),
                 time_format_iso_8601: bool = False, hostname: str | None = None,
                 extra_output: str = "", source: str = "syscall") -> None:
        if isinstance(min_priority, str):
            prio = parse_priority(min_priority)
            if prio is None:
                raise DetectorError(f"unknown priority '{min_priority}'",
                                    hint="one of: " + ", ".join(p.lower() for p in PRIORITIES))
            min_priority = prio
        if rule_matching not in ("first", "all"):
            raise DetectorError(f"unknown rule_matching '{rule_matching}'",
                                hint="use 'first' or 'all'")
        self.ruleset = ruleset
        self.hostname = hostname if hostname is not None else socket.gethostname()
        chosen = [r for r in enabled_rules(ruleset.rules, selectors=selectors,
                                           min_priority=min_priority)
                  if r.source == source and r.compiled is not None]
        self.rules: tuple[Rule, ...] = tuple(chosen)
        provider = ruleset.providers.get(source)  # None: the built-in fields
        entries = [(_Entry(r, rule_formatter(r.output, iso8601=time_format_iso_8601,
                                             extra=extra_output, provider=provider)),
                    r.compiled) for r in chosen]
        self._index = RuleIndex(entries, first=rule_matching == "first")
        self._by_type = self._index.by_type  # type -> fused matcher, read once per event
        self._build = self._index.matcher

    def prepare(self) -> int:
        """Build now the matcher of every event type a rule names (else built on the type's first
        event, in the event loop); returns how many were built."""
        return self._index.prepare()

    def candidates(self, evttype: str) -> list[Rule]:
        """The rules an event of this type is tested against."""
        return [e.rule for e in self._index.candidates(evttype)]

    def process(self, event: Any) -> list[Alert]:
        """The alerts ``event`` raises (empty for most events)."""
        fn = self._by_type.get(event.type)
        hits = (fn if fn is not None else self._build(event.type))(event)
        if not hits:
            return []
        return [self._alert(e, event) for e in hits]

    def _alert(self, entry: _Entry, event: Any) -> Alert:
        rule = entry.rule
        line, message = entry.formatter.line(event, rule.priority)
        return Alert(time=event.ts, rule=rule.name, priority=rule.priority, source=rule.source,
                     tags=rule.tags, output=line, message=message,
                     output_fields=entry.formatter.output_fields(event), hostname=self.hostname)
