"""Entry points for ``falcoctl-py run``: run the detector, dry-run it, or list its fields."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from detector.config import EBPF_STAND_INS, FalcoConfig, load_config
from detector.runtime import RunResult, Runtime

log = logging.getLogger("detector")


def run_detector(
    *,
    config_path: Path | None = None,
    rules_files: list[str] | None = None,
    overrides: list[str] | None = None,
    dry_run: bool = False,
    capture: Path | None = None,
) -> RunResult:
    """Load falco.yaml (or the embedded default), the plugins and the rules; run until stopped.

    Relative ``config_path`` and ``rules_files`` are taken from the current directory, as
    Falco's ``-c`` and ``-r``. Each configuration warning is logged once, reloads included.
    """
    seen: set[str] = set()

    def warn_once(text: str) -> None:
        if text not in seen:
            seen.add(text)
            log.warning("%s", text)

    def reload_config() -> FalcoConfig:
        return load_config(path=config_path, overrides=overrides, rules_files=rules_files,
                           warn=warn_once)

    config = reload_config()
    if config.engine.kind in EBPF_STAND_INS and config.engine.kind != "ebpf":
        log.info("engine.kind %s: running the detector's eBPF engine (BCC) in its place",
                 config.engine.kind)
    runtime = Runtime(config, capture=capture, reload_config=reload_config)
    if dry_run:
        return runtime.dry_run()
    for warning in runtime.ruleset.warnings:
        log.warning("%s", warning)
    log.info("detector starting: engine %s, %d rules from %d files", config.engine_kind,
             runtime.ruleset.rule_count, len(runtime.ruleset.files))
    return runtime.run()


@dataclass(frozen=True, slots=True)
class FieldDescription:
    """One field rules can use."""

    name: str
    type: str
    source: str  # "syscall" or a plugin's event source
    provider: str  # "builtin" or the plugin's name
    description: str


def list_fields(
    *,
    config_path: Path | None = None,
    overrides: list[str] | None = None,
    source: str | None = None,
) -> list[FieldDescription]:
    """The built-in fields and those of the plugins in ``load_plugins`` (``--list``)."""
    from detector.plugins import load_plugins

    config = load_config(path=config_path, overrides=overrides)
    out: list[FieldDescription] = []
    if source in (None, "syscall"):
        from detector.rules.fields.table import FIELD_TABLE

        for name, ftype, flags, desc in FIELD_TABLE:
            if "DEPRECATED" in flags.split():
                continue
            out.append(FieldDescription(name, ftype.lower(), "syscall", "builtin", desc))
    plugins = load_plugins(config)
    try:
        for _, p in plugins.plugins:
            # The sources its extraction suits: listed ones, else its own (else every source).
            src = ",".join(p.info.extract_sources) or p.info.event_source or "syscall"
            if source is not None and source not in src.split(","):
                continue
            for f in p.info.fields:
                out.append(FieldDescription(f.name, f.type, src, p.info.name, f.desc))
    finally:
        plugins.destroy()
    return out
