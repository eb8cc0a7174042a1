"""``falcoctl-py run``: start the detector."""

from __future__ import annotations

import typer


def run(ctx: typer.Context) -> None:
    """Run the detector (not built yet)."""
    typer.echo("the detector is not built yet", err=True)
    raise typer.Exit(1)
