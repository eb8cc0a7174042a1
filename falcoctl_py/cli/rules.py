"""``falcoctl-py rules``: validate, list and parse Falco rules and conditions."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from falcoctl_py.cli._output import OutputFormat, print_structured, print_table
from falcoctl_py.errors import UsageError

FilesArg = Annotated[list[Path], typer.Argument(
    help="Rules files (or directories of *.yaml files), loaded in order.", show_default=False)]
OutputOpt = Annotated[
    OutputFormat, typer.Option("-o", "--output", help="Output format: human, json or yaml.")
]


def condition_or_batch(condition: str | None, batch: bool, *, stdin_holds: str) -> None:
    """Check that exactly one of a CONDITION argument and --batch was given."""
    if batch and condition is not None:
        raise UsageError("give either a CONDITION or --batch, not both",
                         hint="with --batch, conditions come from stdin")
    if not batch and condition is None:
        raise UsageError("missing CONDITION", hint=f"or use --batch to read {stdin_holds} on stdin")


def echo_json_lines(outcomes: Iterable[Any]) -> None:
    """Print each outcome's ``as_dict()`` as one JSON line, as it comes."""
    for outcome in outcomes:
        typer.echo(json.dumps(outcome.as_dict()))


def rules_validate(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Rules files (or directories of *.yaml files), loaded in order (default with "
        "-c: the config's rules_files).", show_default=False)] = None,
    falco_config: Annotated[Path | None, typer.Option(
        "-c", "--falco-config", help="falco.yaml whose plugins (load_plugins) are loaded "
        "first, so plugin rules files validate with their fields and versions.",
        show_default=False)] = None,
    output: OutputOpt = OutputFormat.human,
    first_error: Annotated[bool, typer.Option(
        "--first-error", help="Stop each file at its first error, as Falco does.")] = False,
) -> None:
    """Load rules files like 'falco -V'; exit 0 only when every file loads."""
    from detector.rules.commands import validate

    if falco_config is not None:
        from detector.runtime.validate import validate_with_config

        report = validate_with_config(config_path=falco_config, paths=files or [],
                                      first_error=first_error)
    elif not files:
        raise UsageError("missing rules files", hint="give FILES, or -c falco.yaml to "
                         "validate its rules_files")
    else:
        report = validate(paths=files, first_error=first_error)
    if output is OutputFormat.human:
        for result in report.results:
            typer.echo(result.as_text())
    else:
        print_structured(report.as_json(), output)
    if not report.ok:
        raise typer.Exit(1)


def rules_list(files: FilesArg, output: OutputOpt = OutputFormat.human) -> None:
    """List the rules of rules files like 'falco -L'."""
    from detector.rules.commands import list_rules

    rules = list_rules(paths=files)
    if output is not OutputFormat.human:
        print_structured(rules, output)
        return
    print_table(["RULE", "PRIORITY", "SOURCE", "ENABLED", "TAGS"],
                [(r.name, r.priority, r.source, "yes" if r.enabled else "no", ", ".join(r.tags))
                 for r in rules])


def rules_parse(
    condition: Annotated[str | None, typer.Argument(
        help="A condition (without --batch).", show_default=False)] = None,
    batch: Annotated[bool, typer.Option(
        "--batch", help='Read one condition per line on stdin; write {"ok", "canonical", '
        '"error"} JSON lines.')] = False,
) -> None:
    """Print a condition's canonical form, or its syntax error with a caret."""
    from detector.rules.commands import parse_condition, parse_lines

    condition_or_batch(condition, batch, stdin_holds="conditions")
    if batch:
        echo_json_lines(parse_lines(sys.stdin))
        return
    assert condition is not None
    outcome = parse_condition(condition=condition)
    if outcome.ok:
        typer.echo(outcome.canonical)
        return
    typer.echo(f"error: {outcome.error} (line {outcome.line}, column {outcome.column})",
               err=True)
    typer.echo(outcome.caret, err=True)
    raise typer.Exit(1)
