"""The running rule set of a detector: which files it reads, validation of staged files, the
swap of a new set (widening the captured syscalls first) and the rebuilds reloads ask for.

A rebuild re-reads falco.yaml (and its config_files) when any of them changed; keys a hot
reload cannot apply are named in a warning. Anything that goes wrong in a rebuild raises; the
reloader turns it into a failed result and the running rules stay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from detector.config import FalcoConfig, data_dir, expand_rules_paths
from detector.metrics import Metrics, sha256_file
from detector.plugins import LoadedPlugins
from detector.runtime.protocols import SyscallSelecting
from detector.runtime.ruleset import EngineLike, RuleSet
from falcoctl_py.bounded import InputLimitError, Limits, check_yaml
from falcoctl_py.errors import ConfigError

log = logging.getLogger("detector.runtime")

Compiler = Callable[..., RuleSet]
ConfigLoader = Callable[[], FalcoConfig]
# falco.yaml keys a hot reload applies; others need a restart (a warning says so).
HOT_KEYS = frozenset({"rules_files", "rules_file", "rules", "priority", "rule_matching",
                      "time_format_iso_8601", "append_output", "static_fields", "config_files"})
RULES_LIMITS = Limits(max_bytes=64 * 1024 * 1024, max_depth=64)
_SOURCE_FIELDS = frozenset(f.name for f in dataclasses.fields(FalcoConfig)
                           if f.metadata.get("source"))


def check_rules_text(path: Path) -> None:
    """Refuse a rules file too large or too deeply nested for the YAML parser (a C parser that
    a file of 50,000 nested ``[`` crashes): the running detector must outlive any file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the rules file: {err.strerror}", path=str(path),
                          hint="make the file readable") from err
    try:
        check_yaml(data, where=str(path), limits=RULES_LIMITS)
    except InputLimitError as err:
        raise ConfigError(err.message, hint="rules files are lists of rules, macros and "
                          "lists; nothing in them nests that deep") from None


def config_digests(config: FalcoConfig) -> dict[str, str]:
    """sha256 of falco.yaml and each file its config_files merged."""
    return {str(p): sha256_file(p) for p in config.files}


class ActiveRules:
    """The rule set the loop runs, and how a new one is built and swapped in."""

    def __init__(self, config: FalcoConfig, *, compiler: Compiler, plugins: LoadedPlugins,
                 metrics: Metrics, reload_config: ConfigLoader | None = None) -> None:
        self.config = config
        self.compiler = compiler
        self.plugins = plugins
        self.metrics = metrics
        self.reload_config = reload_config
        self.extra: list[Path] = []  # added by the embedded follower, kept across reloads
        self.metrics.config_files = config_digests(config)
        self.current: RuleSet = self.compile(self.paths())
        self.engine: EngineLike = self.current.engine
        self.process = self.engine.process  # what the loop calls for every event
        self._note(self.current)

    def paths(self, extra: Sequence[Path] = ()) -> list[Path]:
        """The rules files to load, in order: rules_files, then the follower's files."""
        base = self.config.base_dir or data_dir()
        paths = expand_rules_paths(self.config.rules_files, base=base)
        for p in [*self.extra, *extra]:
            if p not in paths:
                paths.append(p)
        return paths

    def watched(self) -> list[Path]:
        """Rules entries, follower files, and (when it reloads) the config files and folders."""
        base = self.config.base_dir or data_dir()
        out = [Path(e) if Path(e).is_absolute() else base / e for e in self.config.rules_files]
        out.extend(self.extra)
        if self.reload_config is not None:
            out.extend(self.config.files)
            out.extend(self.config.folders)
        return out

    def compile(self, files: list[Path]) -> RuleSet:
        """Compile ``files``; each is first scanned within the bounds of untrusted YAML."""
        for path in files:
            check_rules_text(path)
        rs = self.compiler(files=files, config=self.config, plugins=self.plugins)
        if not rs.digests:
            rs.digests = {str(p): sha256_file(p) for p in rs.files}
        return rs

    def validate_with(self, staged: list[Path], *, replaces: Path | None = None) -> RuleSet:
        """Compile the running rule set with ``staged`` files; raise if it does not compile."""
        # A staged file replaces the file of the same name in ``replaces``, else it is added.
        paths = self.paths()
        for f in staged:
            target = replaces / f.name if replaces is not None else None
            if target is not None and target in paths:
                paths[paths.index(target)] = f
            elif f not in paths:
                paths.append(f)
        return self.compile(paths)

    def _note(self, rs: RuleSet) -> None:
        self.metrics.rules_files = dict(rs.digests)
        self.metrics.reload_ns = rs.loaded_ns

    def swap(self, rs: RuleSet, sources: Sequence[object]) -> None:
        """Make ``rs`` the running rule set: one reference assignment, never a pause."""
        old = self.current
        selecting = [s for s in sources if isinstance(s, SyscallSelecting)]
        if rs.event_types is not None and old.event_types is not None:
            for s in selecting:  # widen first, so no event the new rules need is missed
                getattr(s, "set_rules", lambda _r: None)(None)  # kernel filters: keep all
                s.set_syscalls(set(old.event_types) | set(rs.event_types))
        self.current = rs
        self.engine = rs.engine
        self.process = rs.engine.process
        if rs.event_types is not None:
            for s in selecting:
                s.set_syscalls(set(rs.event_types))
                getattr(s, "set_rules", lambda _r: None)(rs.syscall_rules)
        self._note(rs)

    def _maybe_reload_config(self) -> None:
        if self.reload_config is None or self.config.path is None:
            return
        if config_digests(self.config) == self.metrics.config_files and not self.config.folders:
            return
        new = self.reload_config()  # raises on a broken file: the running config stays
        digests = config_digests(new)
        if digests == self.metrics.config_files:
            return
        changed = sorted(f.name for f in dataclasses.fields(FalcoConfig)
                         if f.name not in HOT_KEYS and f.name not in _SOURCE_FIELDS
                         and getattr(new, f.name) != getattr(self.config, f.name))
        if changed:
            log.warning("%s changed %s: restart the detector to apply them", self.config.path,
                        ", ".join(changed))
        self.config = new
        self.metrics.config_files = digests

    def rebuild(self, sources: Sequence[object], extra: Sequence[Path] = ()) -> list[str]:
        """Re-read what changed, compile, swap; raise (keeping the running set) on any error."""
        old_config, old_digests = self.config, self.metrics.config_files
        try:
            self._maybe_reload_config()
            rs = self.compile(self.paths(extra))
        except BaseException:
            self.config, self.metrics.config_files = old_config, old_digests
            raise
        self.swap(rs, sources)
        self.extra.extend(p for p in extra if p not in self.extra)
        self.metrics.reloads_ok += 1
        return [str(p) for p in rs.files]
