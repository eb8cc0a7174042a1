"""``falcoctl-py rules eval``: registered on the rules group."""

from __future__ import annotations

from falcoctl_py.cli.rules import app

__all__ = ["app"]
