"""``falcoctl-py index``: add, list, remove and update the indexes artifacts are found in."""

from __future__ import annotations

from typing import Annotated

import typer

from falcoctl_py.cli import _config
from falcoctl_py.cli._context import global_options
from falcoctl_py.cli._options import OutputOpt
from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, status


def index_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the index.")],
    url: Annotated[str, typer.Argument(help="URL of the index.yaml.")],
    backend: Annotated[
        str, typer.Argument(help="Backend: http, https or file (default: from the URL).")
    ] = "",
) -> None:
    """Add an index (an existing name gets the new URL) and cache a copy of it."""
    from falcoctl_py.index.cache import add_index

    info = add_index(config_path=global_options(ctx).config, name=name, url=url,
                     backend=backend)
    if info.previous_url:
        status(f"Index {info.name!r} now points to {info.url} (was {info.previous_url}); "
               f"{info.entries} artifacts.")
    else:
        status(f"Index {info.name!r} added ({info.entries} artifacts).")


def index_list(ctx: typer.Context, output: OutputOpt = OutputFormat.human) -> None:
    """List the configured and cached indexes."""
    from falcoctl_py.index.cache import list_indexes

    infos = list_indexes(config=_config.load(ctx))
    if output is not OutputFormat.human:
        print_structured(infos, output)
        return
    print_table(["NAME", "URL", "ADDED", "UPDATED"],
                [[i.name, i.url, i.added, i.updated] for i in infos])




def index_remove(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Names of the indexes to remove.")],
) -> None:
    """Remove indexes from the config file and the cache."""
    from falcoctl_py.index.cache import remove_indexes

    for name in remove_indexes(config_path=global_options(ctx).config, names=names):
        status(f"Index {name!r} removed.")




def index_update(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Indexes to fetch again (default: all).")
    ] = None,
) -> None:
    """Fetch indexes again and refresh their cached copies."""
    from falcoctl_py.index.cache import update_indexes

    for info in update_indexes(config=_config.load(ctx), names=names or []):
        status(f"Index {info.name!r} updated ({info.entries} artifacts).")
