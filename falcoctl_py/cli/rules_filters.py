"""``falcoctl-py rules filters``: the kernel filters the rules allow (declared in cli/main.py)."""

from __future__ import annotations

import typer

from falcoctl_py.cli._output import OutputFormat, print_structured
from falcoctl_py.cli.rules import FilesArg, OutputOpt


def rules_filters(files: FilesArg, output: OutputOpt = OutputFormat.human) -> None:
    """Print, per event type, what a kernel filter derived from the rules keeps, and why."""
    from detector.kfilter.report import filters

    reports = filters(paths=files)
    if output is not OutputFormat.human:
        print_structured(reports, output)
        return
    for r in reports:
        typer.echo(
            f"{r.evttype}: keeps {r.keeps}"
            + (f" (state: {r.state})" * bool(r.state))
        )
        for rule, keeps in r.contributions:
            typer.echo(f"  - {rule}: {keeps}")
        if r.unfiltered_by:
            typer.echo(f"  unfiltered because of: {', '.join(r.unfiltered_by)}")
