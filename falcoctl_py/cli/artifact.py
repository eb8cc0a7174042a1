"""``falcoctl-py artifact``: commands to be filled in."""

from __future__ import annotations

import typer

app = typer.Typer(help="artifact commands.", no_args_is_help=True)
