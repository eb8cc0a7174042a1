"""Rendering of core results: human (tables), json and yaml; status messages go to stderr."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer


class OutputFormat(enum.StrEnum):
    """How a command prints its result."""

    human = "human"
    json = "json"
    yaml = "yaml"


def to_plain(value: Any) -> Any:
    """Dataclasses, enums and paths as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_plain(value), indent=2, sort_keys=False))


def print_structured(value: Any, fmt: OutputFormat) -> None:
    """Print a value as json or yaml (yaml through the json-compatible subset)."""
    if fmt is OutputFormat.yaml:
        from falcoctl_py.textio import dump_yaml

        typer.echo(dump_yaml(to_plain(value)), nl=False)
    else:
        print_json(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table for people; cells are untrusted text, printed without markup.

    On a terminal it fits the terminal's width; otherwise (a pipe, a file) every cell is printed
    whole on one line, columns padded with spaces, so ``grep`` and regexes see full values.
    """
    cells = [[_one_line(cell) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        sys.stdout.write(plain_table(headers, cells))
        sys.stdout.flush()
        return
    from rich.console import Console  # rich only when a table is printed: it is slow to import
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    Console(file=sys.stdout, soft_wrap=True, highlight=False).print(table)


def _one_line(cell: Any) -> str:
    """A cell as text on one line (newlines and tabs become spaces)."""
    text = "" if cell is None else str(cell)
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, nothing cut, no trailing spaces."""
    table = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    return "".join(line + "\n" for line in lines)


def status(message: str) -> None:
    """A status line on stderr (never on stdout, which carries results): plain text, or a JSON
    INFO line with ``--log-format json`` so a log collector reads one format."""
    from falcoctl_py.cli._logging import json_status

    if not json_status(message):
        typer.echo(message, err=True)
