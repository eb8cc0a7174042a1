"""The running rule set of a detector: which files it reads, validation of staged files, the
swap of a new set (widening the captured syscalls first) and the reloads that build one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.config import FalcoConfig, data_dir, expand_rules_paths
from detector.events import Event
from detector.metrics import Metrics, sha256_file
from detector.plugins import LoadedPlugins
from detector.reload import Reloader, ReloadResult
from detector.ruleset import RuleSet

log = logging.getLogger("detector.runtime")

Compiler = Callable[..., RuleSet]
# falco.yaml keys a hot reload applies; others need a restart (a warning says so).
_HOT_KEYS = frozenset({"rules_files", "rules_file", "rules", "priority", "rule_matching",
                       "time_format_iso_8601", "append_output"})


class RuntimeRules:
    """The rule-set half of :class:`detector.runtime.Runtime` (a mixin: it owns the state)."""

    config: FalcoConfig
    compiler: Compiler
    metrics: Metrics
    plugins: LoadedPlugins
    ruleset: RuleSet
    reloader: Reloader
    sources: list[Any]
    _process: Callable[[Event], list[Any]]
    _extra_rules: list[Path]  # added by the embedded follower, kept across reloads
    _reload_config: Callable[[], FalcoConfig] | None

    def _rules_paths(self, extra: list[Path] | None = None) -> list[Path]:
        base = self.config.path.parent if self.config.path else data_dir()
        paths = expand_rules_paths(self.config.rules_files, base=base)
        for p in [*self._extra_rules, *(extra or [])]:
            if p not in paths:
                paths.append(p)
        return paths

    def validate_with(self, staged: list[Path], *, replaces: Path | None = None) -> RuleSet:
        """Compile the running rule set with ``staged`` files; raise if it does not compile."""
        # A staged file replaces the file of the same name in ``replaces``, else it is added.
        paths = self._rules_paths()
        for f in staged:
            target = replaces / f.name if replaces is not None else None
            if target is not None and target in paths:
                paths[paths.index(target)] = f
            elif f not in paths:
                paths.append(f)
        return self._compile(paths)

    def _compile(self, files: list[Path]) -> RuleSet:
        rs = self.compiler(files=files, config=self.config, plugins=self.plugins)
        if not rs.digests:
            rs.digests = {str(p): sha256_file(p) for p in rs.files}
        return rs

    def _note_ruleset(self, rs: RuleSet) -> None:
        self.metrics.rules_files = dict(rs.digests)
        self.metrics.reload_ns = rs.loaded_ns

    def swap(self, rs: RuleSet) -> None:
        """Make ``rs`` the running rule set: one reference assignment, never a pause."""
        old = self.ruleset
        syscall_sources = [s for s in self.sources if hasattr(s, "set_syscalls")]
        if rs.event_types is not None and old.event_types is not None:
            for s in syscall_sources:  # widen first, so no event the new rules need is missed
                s.set_syscalls(set(old.event_types) | set(rs.event_types))
        self.ruleset = rs
        self._process = rs.engine.process
        if rs.event_types is not None:
            for s in syscall_sources:
                s.set_syscalls(set(rs.event_types))
        self._note_ruleset(rs)

    def _maybe_reload_config(self) -> None:
        path = self.config.path
        if self._reload_config is None or path is None:
            return
        digest = sha256_file(path)
        if digest == self.metrics.config_files.get(str(path)):
            return
        new = self._reload_config()  # raises on a broken file: the running config stays
        changed = sorted(k for k in set(new.raw) | set(self.config.raw)
                         if k not in _HOT_KEYS and new.raw.get(k) != self.config.raw.get(k))
        if changed:
            log.warning("%s changed %s: restart the detector to apply them", path,
                        ", ".join(changed))
        self.config = new
        self.metrics.config_files = {str(path): digest}

    def _rebuild(self, reason: str, extra: list[Path] | None = None) -> list[str]:
        self._maybe_reload_config()
        rs = self._compile(self._rules_paths(extra))
        self.swap(rs)
        self.metrics.reloads_ok += 1
        return [str(p) for p in rs.files]

    def request_reload(self, reason: str) -> None:
        """Debounced reload (file watch, SIGHUP)."""
        self.reloader.trigger(reason)

    def on_artifact_update(self, files: list[Path]) -> ReloadResult:
        """Hook for the embedded follower: validate the rule set including ``files``, then swap.

        Rules files already under ``rules_files`` are re-read from disk; other ``.yaml``/``.yml``
        files are added to the running set. A broken set keeps the running rules, raises the
        Critical internal alert and comes back as a failed result.
        """
        extra = [Path(f) for f in files if Path(f).suffix in (".yaml", ".yml")]

        def rebuild(reason: str) -> list[str]:
            files_ = self._rebuild(reason, extra=extra)
            self._extra_rules.extend(p for p in extra if p not in self._extra_rules)
            return files_

        return self.reloader.reload_now(
            "artifact update: " + (", ".join(map(str, files)) or "(no files)"), rebuild)
