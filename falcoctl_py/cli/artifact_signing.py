"""``falcoctl-py artifact sign`` and ``artifact verify``: registered on the artifact group."""

from __future__ import annotations

from falcoctl_py.cli.artifact import app

__all__ = ["app"]
