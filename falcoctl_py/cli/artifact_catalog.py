"""``falcoctl-py artifact search`` and ``artifact list``: registered on the artifact group."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

from falcoctl_py.cli import _config
from falcoctl_py.cli._options import OutputOpt
from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, to_plain

if TYPE_CHECKING:
    from falcoctl_py.index.model import IndexEntry

HEADERS = ["INDEX", "ARTIFACT", "TYPE", "REGISTRY", "REPOSITORY"]


class ArtifactType(enum.StrEnum):
    rulesfile = "rulesfile"
    plugin = "plugin"
    asset = "asset"


TypeOpt = Annotated[
    ArtifactType | None, typer.Option("--type", help="Only artifacts of this type.")
]


def _rows(entries: list[IndexEntry]) -> list[list[str]]:
    return [[e.index, e.name, e.type, e.registry, e.repository] for e in entries]


def artifact_search(
    ctx: typer.Context,
    keywords: Annotated[list[str], typer.Argument(help="Keywords to look for.")],
    min_score: Annotated[
        float, typer.Option("--min-score", help="Minimum name similarity, in (0, 1].")
    ] = 0.65,
    type: TypeOpt = None,
    index: Annotated[
        str | None, typer.Option("--index", help="Only artifacts of this index.")
    ] = None,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Search the configured indexes for artifacts by name similarity and keywords."""
    from falcoctl_py.index.search import search_artifacts

    hits = search_artifacts(config=_config.load(ctx), keywords=keywords, min_score=min_score,
                            type=type.value if type else None, index=index)
    if output is not OutputFormat.human:
        print_structured([{**to_plain(h.entry), "score": h.score} for h in hits], output)
        return
    print_table(HEADERS, _rows([h.entry for h in hits]))


def artifact_list(
    ctx: typer.Context,
    type: TypeOpt = None,
    index: Annotated[
        str | None, typer.Option("--index", help="Only artifacts of this index.")
    ] = None,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """List the artifacts of the configured indexes."""
    from falcoctl_py.index.search import list_artifacts

    entries = list_artifacts(config=_config.load(ctx), type=type.value if type else None,
                             index=index)
    if output is not OutputFormat.human:
        print_structured(entries, output)
        return
    print_table(HEADERS, _rows(entries))


