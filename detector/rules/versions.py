"""The versions this engine implements and provides, and Falco's semver reading."""

from __future__ import annotations

import re
from collections.abc import Mapping

ENGINE_VERSION = "0.57.0"  # the rules-language version this engine implements (Falco 0.42)
PROVIDED_PLUGINS: Mapping[str, str] = {"container": "0.4.0"}  # container.* fields are built in

_RE_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?")


def parse_semver(text: str) -> tuple[int, int, int] | None:
    """``x.y.z`` (with an optional pre-release or build suffix) -> its numbers, else None."""
    m = _RE_SEMVER.fullmatch(text.strip())
    return (int(m[1]), int(m[2]), int(m[3])) if m else None
