"""Where the embedded default falco.yaml and rules live, and rules paths in load order."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from falcoctl_py.errors import ConfigError

DEFAULT_PLUGINS_DIR = Path("/usr/share/falco/plugins")


def data_dir() -> Path:
    """The folder of the embedded default falco.yaml and the default rules."""
    return Path(str(importlib.resources.files("detector") / "data"))


def default_text() -> str:
    """The embedded default falco.yaml."""
    return (data_dir() / "falco.yaml").read_text("utf-8")


def expand_rules_paths(entries: list[str] | tuple[str, ...], *,
                       base: Path | None = None) -> list[Path]:
    """Rules files in load order: files as listed, directories' .yaml/.yml files sorted."""
    out: list[Path] = []
    for entry in entries:
        p = Path(entry)
        if not p.is_absolute() and base is not None:
            p = base / p
        if p.is_dir():
            out.extend(sorted(c for c in p.iterdir()
                              if c.suffix in (".yaml", ".yml") and c.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise ConfigError(f"rules file or directory {str(p)!r} does not exist",
                              hint="fix rules_files in falco.yaml, or give files with -r")
    return out
