"""Core of the ``rules`` commands: parse, validate and list, returning plain dataclasses."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from detector.rules.errors import ConditionSyntaxError
from detector.rules.lang.parser import canonical
from detector.rules.load.loader import load_rules_files, validate_rules_files
from detector.rules.load.result import LoadResult


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """One condition's canonical form, or its error (with line, column and a caret)."""

    ok: bool
    canonical: str | None
    error: str | None
    line: int | None = None
    column: int | None = None
    caret: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The ``--batch`` JSON line."""
        return {"ok": self.ok, "canonical": self.canonical, "error": self.error}


def parse_condition(*, condition: str) -> ParseOutcome:
    """Parse a condition into libsinsp's canonical form."""
    try:
        return ParseOutcome(True, canonical(condition), None)
    except ConditionSyntaxError as exc:
        return ParseOutcome(False, None, exc.bare_message, exc.cond_line, exc.cond_col,
                            exc.caret())


def parse_lines(lines: Iterable[str]) -> Iterator[ParseOutcome]:
    """``rules parse --batch``: one outcome per input line (line ending removed)."""
    for line in lines:
        yield parse_condition(condition=line.rstrip("\r\n"))


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """``falco -V``: one load result per file, in load order."""

    results: tuple[LoadResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.successful for r in self.results)

    def as_json(self) -> dict[str, object]:
        return {"falco_load_results": [r.as_json() for r in self.results]}


def validate(*, paths: Sequence[str | os.PathLike[str]], first_error: bool = False,
             ) -> ValidationReport:
    """Load every file in turn into one engine; report all errors (or Falco's first only)."""
    ruleset = validate_rules_files(paths, collect=not first_error)
    return ValidationReport(ruleset.results)


@dataclass(frozen=True, slots=True)
class RuleSummary:
    """A rule as ``rules list`` shows it."""

    name: str
    desc: str
    priority: str
    source: str
    enabled: bool
    tags: tuple[str, ...]
    condition: str
    compiled_condition: str
    output: str
    file: str
    line: int
    evttypes: tuple[str, ...] | None


def list_rules(*, paths: Sequence[str | os.PathLike[str]]) -> list[RuleSummary]:
    """``falco -L``: load the files (stopping at the first error) and describe every rule."""
    ruleset = load_rules_files(paths)
    return [RuleSummary(r.name, r.desc.strip(), r.priority_name, r.source, r.enabled, r.tags,
                        r.condition.strip(), r.compiled_condition, r.output, r.path, r.line,
                        None if r.evttypes is None else tuple(sorted(r.evttypes)))
            for r in ruleset.rules]
