"""``falcoctl-py rules eval``: evaluate conditions against field values (on the rules group)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from falcoctl_py.cli.rules import condition_or_batch, echo_json_lines
from falcoctl_py.errors import UsageError


def rules_eval(
    condition: Annotated[str | None, typer.Argument(
        help="A condition to evaluate (without --batch).", show_default=False)] = None,
    fields: Annotated[str, typer.Option(
        "--fields", help='Field values as a JSON object, e.g. \'{"proc.name": "bash"}\'.')] = "{}",
    batch: Annotated[bool, typer.Option(
        "--batch", help='Read JSON lines {"condition": str, "fields": {...}} on stdin; write '
        '{"ok", "result", "error"} per line.')] = False,
) -> None:
    """Evaluate a condition against field values; fields not given are unavailable."""
    from detector.rules.eval.mapping import eval_condition, eval_lines

    condition_or_batch(condition, batch, stdin_holds="JSON lines")
    if batch:
        echo_json_lines(eval_lines(sys.stdin))
        return
    assert condition is not None
    try:
        values = json.loads(fields)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--fields is not valid JSON: {exc}",
                         hint='write a JSON object, e.g. \'{"proc.name": "bash"}\'') from None
    if not isinstance(values, dict):
        raise UsageError("--fields must be a JSON object of field -> value",
                         hint='e.g. --fields \'{"proc.name": "bash"}\'')
    res = eval_condition(condition=condition, fields=values)
    typer.echo(json.dumps(res.as_dict()))
    if not res.ok:
        raise typer.Exit(1)
