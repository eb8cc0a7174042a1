"""``falcoctl-py artifact search`` and ``artifact list``: registered on the artifact group."""

from __future__ import annotations

from falcoctl_py.cli.artifact import app

__all__ = ["app"]
