"""The layered configuration for a command: the ``--config`` file, ``FALCOCTL_*`` and flags."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from falcoctl_py.cli._context import global_options

if TYPE_CHECKING:
    from falcoctl_py.config import Config


def load(ctx: typer.Context) -> Config:
    """The config of this invocation (defaults when the file is missing; nothing is created)."""
    from falcoctl_py.config import load_config

    return load_config(global_options(ctx).config)


def given(ctx: typer.Context, param: str) -> bool:
    """Whether the user typed the flag ``param`` (its Python name) on the command line."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"
