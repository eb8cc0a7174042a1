"""``falcoctl-py artifact follow`` and ``artifact rollback``: registered on the artifact group."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from falcoctl_py.cli._context import global_options
from falcoctl_py.cli._options import (
    AllowedTypesOpt,
    AssetsDirOpt,
    CaFileOpt,
    InsecureOpt,
    NoVerifyOpt,
    OutputOpt,
    PlainHttpOpt,
    PlatformOpt,
    PluginsDirOpt,
    ResolveDepsOpt,
    RulesfilesDirOpt,
    StateDirOpt,
    TrustedRootOpt,
    VerifyKeyOpt,
    tls_options,
)
from falcoctl_py.cli._output import OutputFormat, print_structured, status

if TYPE_CHECKING:
    from falcoctl_py.follow.follower import Follower, OnUpdate


# Over 60 lines only by its parameter list (one a flag); the docstring is the --help text.
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
    rulesfiles_dir: RulesfilesDirOpt = None,
    plugins_dir: PluginsDirOpt = None,
    assets_dir: AssetsDirOpt = None,
    state_dir: StateDirOpt = None,
    allowed_types: AllowedTypesOpt = None,
    platform: PlatformOpt = None,
    resolve_deps: ResolveDepsOpt = True,
    no_verify: NoVerifyOpt = False,
    verify_key: VerifyKeyOpt = None,
    trusted_root: TrustedRootOpt = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Keep artifacts current: check on a schedule, install new digests safely, until stopped."""
    from falcoctl_py.actions import follow as follow_actions
    from falcoctl_py.follow.schedule import parse_duration

    def make(on_update: OnUpdate) -> Follower:
        return follow_actions.build_follower(
            on_update=on_update,
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

    result = follow_actions.follow(make)
    status(f"stopped following {len(result.refs)} reference(s); {len(result.updates)} update(s)")


def artifact_rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Artifact name (or reference) to roll back.")],
    state_dir: StateDirOpt = None,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Put back the previous version of an artifact that follow updated."""
    from falcoctl_py.actions import follow as follow_actions

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
