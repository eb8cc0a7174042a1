"""``falcoctl-py artifact follow`` and ``artifact rollback``: registered on the artifact group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from falcoctl_py.cli._context import global_options
from falcoctl_py.cli._output import OutputFormat, print_structured, status
from falcoctl_py.cli.artifact import (
    CaFileOpt,
    InsecureOpt,
    OutputOpt,
    PlainHttpOpt,
    PlatformOpt,
    app,
    tls_options,
)

__all__ = ["app"]

StateDirOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where install state is kept (default /var/lib/falcoctl)."),
]


@app.command("follow")
def artifact_follow(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None,
        typer.Argument(help="References to follow (default: artifact.follow.refs)."),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("-e", "--every", help="Check interval, a Go duration (default 6h)."),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option("--cron", help="Check on a 5-field cron schedule instead of --every."),
    ] = None,
    startup_behavior: Annotated[
        str | None,
        typer.Option(
            "--startup-behavior", help="First check: skip, jitter (default) or immediate."
        ),
    ] = None,
    falco_versions: Annotated[
        str | None,
        typer.Option(
            "--falco-versions",
            help="URL or file of the detector's /versions (default http://localhost:8765/versions;"
            " empty: no requirement checks).",
        ),
    ] = None,
    timeout: Annotated[
        str,
        typer.Option("--timeout", help="Timeout of each registry and /versions request."),
    ] = "120s",
    tmp_dir: Annotated[
        Path | None,
        typer.Option(
            "--tmp-dir",
            help="Accepted for falcoctl compatibility: files are staged inside their destination.",
        ),
    ] = None,
    rulesfiles_dir: Annotated[
        Path | None,
        typer.Option("--rulesfiles-dir", help="Where rules files go (default /etc/falco)."),
    ] = None,
    plugins_dir: Annotated[
        Path | None,
        typer.Option("--plugins-dir", help="Where plugins go (default /usr/share/falco/plugins)."),
    ] = None,
    assets_dir: Annotated[
        Path | None,
        typer.Option("--assets-dir", help="Where assets go (default /etc/falco/assets)."),
    ] = None,
    state_dir: StateDirOpt = None,
    allowed_types: Annotated[
        list[str] | None,
        typer.Option("--allowed-types", help="Artifact types allowed (comma-separated)."),
    ] = None,
    platform: PlatformOpt = None,
    resolve_deps: Annotated[
        bool,
        typer.Option("--resolve-deps/--no-resolve-deps", help="Install dependencies too."),
    ] = True,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip signature verification.")
    ] = False,
    verify_key: Annotated[
        str | None,
        typer.Option("--verify-key", help="cosign public key (PEM) every artifact must match."),
    ] = None,
    trusted_root: Annotated[
        Path | None,
        typer.Option("--trusted-root", help="Sigstore trusted_root.json for keyless checks."),
    ] = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Keep artifacts current: check on a schedule, install new digests safely, until stopped."""
    from falcoctl_py import follow_actions
    from falcoctl_py.schedule import parse_duration

    result = follow_actions.follow(
        config_path=global_options(ctx).config,
        refs=refs or [],
        every=every,
        cron=cron,
        startup_behavior=startup_behavior,
        falco_versions=falco_versions,
        rulesfiles_dir=rulesfiles_dir,
        plugins_dir=plugins_dir,
        assets_dir=assets_dir,
        state_dir=state_dir,
        allowed_types=allowed_types,
        platform=platform,
        resolve_deps=resolve_deps,
        no_verify=no_verify or None,
        verify_key=verify_key,
        trusted_root=trusted_root,
        tls=tls_options(plain_http, ca_file, insecure),
        timeout=parse_duration(timeout),
    )
    status(f"stopped following {len(result.refs)} reference(s); {len(result.updates)} update(s)")


@app.command("rollback")
def artifact_rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Artifact name (or reference) to roll back.")],
    state_dir: StateDirOpt = None,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Put back the previous version of an artifact that follow updated."""
    from falcoctl_py import follow_actions

    result = follow_actions.rollback(
        config_path=global_options(ctx).config, name=name, state_dir=state_dir
    )
    if output is not OutputFormat.human:
        print_structured(result, output)
        return
    status(
        f"rolled back {result.name} from {result.from_version} to {result.to_version}: "
        + ", ".join(result.files)
    )
