"""``falcoctl-py driver``: commands to be filled in."""

from __future__ import annotations

import typer

app = typer.Typer(help="driver commands.", no_args_is_help=True)
