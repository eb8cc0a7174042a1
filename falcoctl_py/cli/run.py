"""``falcoctl-py run``: start the detector."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, status


# Over 60 lines only by its parameter list (one a flag); the docstring is the --help text.
def run(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("-c", "--falco-config", help="falco.yaml to use (default: the embedded "
                     "one).", show_default=False),
    ] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option("-r", "--rules", help="Rules file or directory (repeatable); replaces "
                     "rules_files.", show_default=False),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("-o", "--option", help="Override a falco.yaml key: key=value (dotted "
                     "path, list[1], list[] to append).", show_default=False),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Load config, plugins and rules, then exit.")
    ] = False,
    list_fields: Annotated[
        bool, typer.Option("--list", help="List the fields rules can use, then exit.")
    ] = False,
    list_source: Annotated[
        str | None,
        typer.Option("--list-source", help="With --list: only this source (syscall or a "
                     "plugin's).", show_default=False),
    ] = None,
    capture: Annotated[
        Path | None,
        typer.Option("--capture", help="Also record the events to this capture file.",
                     show_default=False),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output-format", help="How --list and --dry-run print: "
                                   "human, json or yaml.")
    ] = OutputFormat.human,
) -> None:
    """Run the detector: falco.yaml, rules, plugins, outputs, hot reload, web endpoints."""
    from detector import launch

    if list_fields:
        fields = launch.list_fields(config_path=config, overrides=option or [],
                                    source=list_source)
        if output is OutputFormat.human:
            print_table(["FIELD", "TYPE", "SOURCE", "PROVIDER", "DESCRIPTION"],
                        [[f.name, f.type, f.source, f.provider, f.description] for f in fields])
        else:
            print_structured(fields, output)
        return
    result = launch.run_detector(config_path=config, rules_files=rules or None,
                                 overrides=option or [], dry_run=dry_run, capture=capture)
    if output is not OutputFormat.human:
        print_structured(result, output)
    elif result.dry_run:
        for warning in result.warnings:  # once each: the CLI's logging drops repeats
            logging.getLogger("detector").warning("%s", warning)
        status(f"dry run ok: {result.rule_count} rules from {len(result.rules_files)} files, "
               f"plugins: {', '.join(f'{k} {v}' for k, v in result.plugins.items()) or 'none'}")
    else:
        status(f"detector stopped: {result.events} events, {result.processed} processed, "
               f"{result.alerts} alerts, {result.drops} dropped, {result.reloads} reloads")
