"""Global options, set once by the root callback and read by every command."""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer


class LogFormat(enum.StrEnum):
    color = "color"
    text = "text"
    json = "json"


class LogLevel(enum.StrEnum):
    info = "info"
    warn = "warn"
    debug = "debug"
    trace = "trace"


def default_config_path() -> Path:
    """``/etc/falcoctl/falcoctl.yaml`` for root, a user-writable file otherwise."""
    if os.geteuid() == 0:
        return Path("/etc/falcoctl/falcoctl.yaml")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "falcoctl" / "falcoctl.yaml"


def styling_enabled(fmt: LogFormat, *, disable_styling: bool = False) -> bool:
    """Colors, bars and boxes only for people: off for json, when asked, with ``NO_COLOR``, or
    when stdout or stderr is not a terminal (as falcoctl does)."""
    if fmt is LogFormat.json or disable_styling or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty() and sys.stderr.isatty()


@dataclass(slots=True)
class GlobalOptions:
    config: Path
    config_given: bool
    log_format: LogFormat
    log_level: LogLevel
    debug: bool
    disable_styling: bool = False


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The global options of this invocation (defaults when a command runs without the root)."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, GlobalOptions):
        return obj
    return GlobalOptions(
        config=default_config_path(),
        config_given=False,
        log_format=LogFormat.text,
        log_level=LogLevel.info,
        debug=False,
    )
