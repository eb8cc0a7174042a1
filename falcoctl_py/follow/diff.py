"""What an update changed: files added, removed, changed; for rules files, rules by name."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from falcoctl_py.artifact.archive import file_sha256

log = logging.getLogger(__name__)

RULES_SUFFIXES = (".yaml", ".yml")


@dataclass(slots=True)
class ChangeSummary:
    """One artifact's switch from a version to another."""

    name: str
    ref: str
    from_version: str = ""
    to_version: str = ""
    from_digest: str = ""
    to_digest: str = ""
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    rules_added: list[str] = field(default_factory=list)
    rules_removed: list[str] = field(default_factory=list)
    rules_changed: list[str] = field(default_factory=list)

    def text(self) -> str:
        """One line for the log."""
        head = f"{self.name} {self.from_version or '(none)'} -> {self.to_version}"
        parts = []
        for label, items in (
            ("files added", self.files_added),
            ("files removed", self.files_removed),
            ("files changed", self.files_changed),
            ("rules added", self.rules_added),
            ("rules removed", self.rules_removed),
            ("rules changed", self.rules_changed),
        ):
            if items:
                shown = ", ".join(repr(i) for i in items[:10])
                more = f" and {len(items) - 10} more" if len(items) > 10 else ""
                parts.append(f"{label}: {shown}{more}")
        return f"{head}: {'; '.join(parts) if parts else 'no file content changed'}"


def rules_by_name(path: Path) -> dict[str, str]:
    """``rule name -> canonical text of its items`` of a rules file ({} if it does not parse).

    Loaded with YAML's string-only loader, so Falco's ``on``, ``[=]`` and ports stay text.
    """
    import yaml

    try:
        docs = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        log.debug("cannot read rules from %s: %s", path, err)
        return {}
    out: dict[str, list[str]] = {}
    for item in docs if isinstance(docs, list) else ():
        if isinstance(item, dict) and isinstance(item.get("rule"), str):
            out.setdefault(item["rule"], []).append(_canonical(item))
    return {name: "\n".join(texts) for name, texts in out.items()}


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        inner = ",".join(f"{k}:{_canonical(v)}" for k, v in sorted(value.items()))
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return " ".join(str(value).split())


def summarize(
    summary: ChangeSummary,
    old: Mapping[str, Path],
    new: Mapping[str, Path],
    *,
    rules: bool,
) -> ChangeSummary:
    """Fill ``summary`` from the old and new file sets (``relative name -> path``)."""
    summary.files_added = sorted(set(new) - set(old))
    summary.files_removed = sorted(set(old) - set(new))
    summary.files_changed = sorted(
        rel for rel in set(old) & set(new) if file_sha256(old[rel]) != file_sha256(new[rel])
    )
    if not rules:
        return summary
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    for rel, path in old.items():
        if rel.endswith(RULES_SUFFIXES):
            before.update(rules_by_name(path))
    for rel, path in new.items():
        if rel.endswith(RULES_SUFFIXES):
            after.update(rules_by_name(path))
    summary.rules_added = sorted(set(after) - set(before))
    summary.rules_removed = sorted(set(before) - set(after))
    summary.rules_changed = sorted(n for n in set(before) & set(after) if before[n] != after[n])
    return summary
