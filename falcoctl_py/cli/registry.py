"""``falcoctl-py registry``: push, pull and auth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from falcoctl_py.cli._context import global_options
from falcoctl_py.cli._options import (
    CaFileOpt,
    InsecureOpt,
    OutputOpt,
    PlainHttpOpt,
    PlatformOpt,
    tls_options,
)
from falcoctl_py.cli._output import OutputFormat, print_structured, status


# Over 60 lines only by its parameter list (one a flag); the docstring is the --help text.
def registry_push(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Where to push: HOST/REPO[:TAG].")],
    files: Annotated[list[Path], typer.Argument(help="Files (one per platform for plugins).")],
    type: Annotated[str, typer.Option("--type", help="Artifact type: rulesfile, plugin or asset.")],
    version: Annotated[
        str, typer.Option("--version", help="Artifact version, strict semver (e.g. 1.2.3).")
    ],
    tag: Annotated[
        list[str] | None, typer.Option("-t", "--tag", help="Extra tags (repeatable).")
    ] = None,
    add_floating_tags: Annotated[
        bool,
        typer.Option("--add-floating-tags", help="Also tag VERSION, MAJOR and MAJOR.MINOR."),
    ] = False,
    requires: Annotated[
        list[str] | None,
        typer.Option("-r", "--requires", help="Requirement NAME:VERSION (repeatable)."),
    ] = None,
    depends_on: Annotated[
        list[str] | None,
        typer.Option(
            "-d", "--depends-on", help="Dependency NAME:VERSION[|ALT:VERSION...] (repeatable)."
        ),
    ] = None,
    annotation_source: Annotated[
        str | None,
        typer.Option("--annotation-source", help="org.opencontainers.image.source annotation."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Artifact name in the config (default: last part of REF)."),
    ] = None,
    platform: Annotated[
        list[str] | None,
        typer.Option("--platform", help="OS/ARCH of each plugin file, in order (repeatable)."),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign-key", help="Sign the pushed artifact with this cosign.key."),
    ] = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Push files as a Falco artifact, in falcoctl's format."""
    from falcoctl_py.actions import artifact as artifact_actions

    result = artifact_actions.push(
        config_path=global_options(ctx).config,
        ref=ref,
        files=files,
        artifact_type=type,
        version=version,
        tags=tag or [],
        add_floating_tags=add_floating_tags,
        requires=requires or [],
        depends_on=depends_on or [],
        annotation_source=annotation_source,
        name=name,
        platforms=platform or [],
        tls=tls_options(plain_http, ca_file, insecure),
        sign_key=sign_key,
    )
    if output is not OutputFormat.human:
        print_structured(result, output)
        return
    status(f"Pushed {result.ref} ({result.digest}); tags: {', '.join(result.tags)}")


def registry_pull(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="What to pull: HOST/REPO[:TAG|@DIGEST].")],
    dest_dir: Annotated[
        Path, typer.Option("-o", "--dest-dir", help="Directory to write the layer into.")
    ] = Path("."),
    platform: PlatformOpt = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Pull an artifact's layer (the tar.gz) into a directory, without extracting it."""
    from falcoctl_py.actions import artifact as artifact_actions

    result = artifact_actions.pull(
        config_path=global_options(ctx).config,
        ref=ref,
        dest_dir=dest_dir,
        platform=platform,
        tls=tls_options(plain_http, ca_file, insecure),
    )
    status(f"Pulled {result.ref} ({result.digest}) to {result.path}")
