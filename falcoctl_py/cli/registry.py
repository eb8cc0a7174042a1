"""``falcoctl-py registry``: push, pull and auth."""

from __future__ import annotations

import typer

from falcoctl_py.cli import registry_auth

app = typer.Typer(help="Push and pull artifacts, store registry credentials.", no_args_is_help=True)
app.add_typer(registry_auth.app, name="auth")
