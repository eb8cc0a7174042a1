"""Loading Falco rules files: the public entry points (``falco -V`` / ``falco -L`` semantics).

Files load in order into one shared collection: later files can append to, override or
redefine anything earlier; after each file everything is recompiled and a per-file
:class:`LoadResult` is produced. ``collect=True`` keeps going after an error so a validator
can report every problem at once; the default stops at the first, as Falco does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.rules.errors import RulesLoadError
from detector.rules.fields.registry import Provider
from detector.rules.lang.ast import Expr, as_string
from detector.rules.load.collector import PRIORITIES, Collector
from detector.rules.load.pipeline import AppendOutput, CompileOutput, Compiler
from detector.rules.load.reader import Reader
from detector.rules.load.result import LoadMessage, LoadResult, Location
from detector.rules.load.rewrite import check_exception
from detector.rules.versions import ENGINE_VERSION, PROVIDED_PLUGINS, parse_semver

DEFAULT_SOURCES = frozenset({"syscall"})

__all__ = [
    "ENGINE_VERSION",
    "PRIORITIES",
    "PROVIDED_PLUGINS",
    "AppendOutput",
    "LoadResult",
    "Rule",
    "RulesLoader",
    "Ruleset",
    "expand_paths",
    "load_rules_files",
    "validate_rules_files",
]


@dataclass(frozen=True, slots=True)
class Rule:
    """A loaded, compiled rule: what the engine runs and ``rules list`` shows."""

    name: str
    desc: str
    condition: str  # as written (after appends)
    compiled_condition: str  # libsinsp canonical form after lists, macros, exceptions
    output: str
    priority: int  # 0 Emergency .. 7 Debug
    source: str
    tags: tuple[str, ...]
    enabled: bool
    path: str
    line: int  # 1-based
    evttypes: frozenset[str] | None  # None: every event type
    exception_fields: frozenset[str] = frozenset()
    capture: bool = False
    capture_duration: int = 0
    tree: Expr | None = field(default=None, compare=False, repr=False)
    compiled: Any = field(default=None, compare=False, repr=False)

    @property
    def priority_name(self) -> str:
        return PRIORITIES[self.priority]


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Everything loaded: rules in evaluation order, macros, lists, one result per file."""

    rules: tuple[Rule, ...]
    macros: Mapping[str, str]  # name -> canonical expanded condition
    lists: Mapping[str, tuple[str, ...]]
    results: tuple[LoadResult, ...]
    required_engine_version: str = "0.0.0"
    # The fields of each source other than the built-in syscall ones (plugins' fields).
    providers: Mapping[str, Provider] = field(default_factory=dict)

    @property
    def successful(self) -> bool:
        return all(r.successful for r in self.results)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def _output_check(output: str, provider: Provider) -> None:
    from detector.rules.output import parse_format

    parse_format(output, provider)


class RulesLoader:
    """One engine's rule collection; load files (or text) into it in order."""

    def __init__(self, *, sources: Iterable[str] = DEFAULT_SOURCES,
                 plugins: Mapping[str, str] = PROVIDED_PLUGINS, collect: bool = False,
                 check_outputs: bool = True, append_output: Iterable[AppendOutput] = (),
                 providers: Mapping[str, Provider] | None = None) -> None:
        # ``providers``: source -> its fields; every source named there is a known source,
        # and ``syscall`` rules use its entry when there is one (plugins extracting on it).
        self.collector = Collector()
        self.providers = dict(providers or {})
        self.sources = frozenset(sources) | frozenset(self.providers)
        self.plugins = dict(plugins)
        self.collect = collect
        self.check_outputs = check_outputs
        self.append_output = tuple(append_output)
        self.results: list[LoadResult] = []
        self.output = CompileOutput()
        self._texts: dict[str, str] = {}

    def _snippet(self, ctx: tuple[Location, ...]) -> str:
        if not ctx:
            return ""
        loc = ctx[-1]
        text = self._texts.get(loc.path, "")
        lines = text.splitlines()[loc.line:loc.line + 6]
        return "\n".join(lines)

    def _check_exception(self, ex: Any, source: str) -> None:
        check_exception(ex, source, self.providers)  # fields as the rule's source knows them

    def load(self, content: str, name: str) -> LoadResult:
        """Load one rules text (named like its file) and recompile everything."""
        self._texts[name] = content
        reader = Reader(self.collector, name, content, self.sources, self._check_exception,
                        collect=self.collect)
        reader.read()
        result = LoadResult(name, list(reader.errors), list(reader.warnings))
        if reader.errors and not self.collect:
            self.results.append(result)
            return result
        comp = Compiler(self.collector, collect=self.collect,
                        output_check=_output_check if self.check_outputs else None,
                        append_output=self.append_output, providers=self.providers,
                        snippet=self._snippet)
        self.output = comp.run()
        result.errors.extend(comp.errors)
        result.warnings.extend(comp.warnings)
        self.results.append(result)
        return result

    def load_file(self, path: str | os.PathLike[str]) -> LoadResult:
        """Load one rules file; an unreadable file is a ``LOAD_ERR_FILE_READ`` result."""
        name = str(path)
        try:
            content = Path(path).read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            loc = (Location("rules content", "", name),)
            result = LoadResult(name, [LoadMessage("LOAD_ERR_FILE_READ",
                                                   f"Could not read file: {exc.strerror}", loc)])
            self.results.append(result)
            return result
        return self.load(content, name)

    def check_plugin_requirements(self) -> list[LoadMessage]:
        """Falco's plugin check: each requirement met by one alternative (same major, >=)."""
        out = []
        for alternatives, ctx in self.collector.plugin_requirements:
            ok = False
            for name, version in alternatives:
                have = parse_semver(self.plugins[name]) if name in self.plugins else None
                need = parse_semver(version)
                if have and need and have[0] == need[0] and have >= need:
                    ok = True
                    break
            if not ok:
                wanted = ", ".join(f"{n} (>= {v})" for n, v in alternatives)
                out.append(LoadMessage("LOAD_ERR_VALIDATE", "Plugin requirement not satisfied, "
                                       f"must load one of: {wanted}", ctx))
        return out

    def ruleset(self) -> Ruleset:
        """The rules as compiled by the last load."""
        rules = []
        for cr in sorted(self.output.rules, key=lambda c: c.info.index):
            info = cr.info
            loc = info.ctx[0] if info.ctx else Location("rule")
            rules.append(Rule(
                name=info.name, desc=info.desc, condition=info.cond,
                compiled_condition=as_string(cr.tree), output=cr.output,
                priority=info.priority, source=info.source, tags=tuple(sorted(info.tags)),
                enabled=info.enabled, path=loc.path, line=loc.line + 1, evttypes=cr.evttypes,
                exception_fields=cr.exception_fields, capture=info.capture,
                capture_duration=info.capture_duration, tree=cr.tree, compiled=cr.compiled))
        version = ".".join(map(str, self.collector.required_engine_version))
        return Ruleset(tuple(rules), {n: as_string(t) for n, t in self.output.macros.items()},
                       {n: tuple(v) for n, v in self.output.lists.items()}, tuple(self.results),
                       version, dict(self.providers))


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Falco's ``rules_files`` expansion: directories give their *.yaml/*.yml files, sorted."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.iterdir())
                       if f.is_file() and f.suffix in (".yaml", ".yml"))
        else:
            out.append(str(path))
    return out


def load_rules_files(paths: Iterable[str | os.PathLike[str]], *,
                     plugins: Mapping[str, str] = PROVIDED_PLUGINS,
                     sources: Iterable[str] = DEFAULT_SOURCES,
                     append_output: Iterable[AppendOutput] = (),
                     providers: Mapping[str, Provider] | None = None) -> Ruleset:
    """Load rules files in order, as Falco's run mode does: stop at the first failing file."""
    loader = RulesLoader(sources=sources, plugins=plugins, append_output=append_output,
                         providers=providers)
    for path in expand_paths(paths):
        result = loader.load_file(path)
        if not result.successful:
            first = result.errors[0]
            raise RulesLoadError(f"{first.message} ({first.code})", result=result,
                                 path=first.locations[-1].path if first.locations else path,
                                 line=first.locations[-1].line + 1 if first.locations else None,
                                 hint=first.hint or "run 'falcoctl-py rules validate' on the "
                                                    "file for details")
    missing = loader.check_plugin_requirements()
    if missing:
        first = missing[0]
        raise RulesLoadError(first.message, path=first.where.rsplit(":", 1)[0] or None,
                             hint="the detector provides: " + ", ".join(
                                 f"{n} {v}" for n, v in plugins.items()))
    return loader.ruleset()


def validate_rules_files(paths: Iterable[str | os.PathLike[str]], *,
                         plugins: Mapping[str, str] = PROVIDED_PLUGINS,
                         sources: Iterable[str] = DEFAULT_SOURCES,
                         collect: bool = True) -> Ruleset:
    """``falco -V``: load every file in turn into one engine, one result per file."""
    loader = RulesLoader(sources=sources, plugins=plugins, collect=collect)
    for path in expand_paths(paths):
        result = loader.load_file(path)
        result.errors.extend(loader.check_plugin_requirements())
    return loader.ruleset()
