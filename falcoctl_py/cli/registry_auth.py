"""``falcoctl-py registry auth basic|oauth``: a sub-group of ``registry``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Store credentials for registries.", no_args_is_help=True)
