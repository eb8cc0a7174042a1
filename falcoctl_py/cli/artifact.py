"""``falcoctl-py artifact``: install, info, config and manifest (other verbs register here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from falcoctl_py.cli import _config
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
from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, status

app = typer.Typer(help="Find, install and inspect Falco artifacts.", no_args_is_help=True)


@app.command("install")
def artifact_install(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None,
        typer.Argument(help="References: NAME[:TAG|:RANGE|@DIGEST] or HOST/REPO[:TAG|@DIGEST]."),
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
    update_config: Annotated[
        Path | None,
        typer.Option(
            "--update-config",
            help="A falco.yaml to add what was installed to (rules_files, plugins, "
            "load_plugins), keeping its comments.",
        ),
    ] = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Install artifacts and their dependencies, atomically, with digests and signatures checked."""
    from falcoctl_py.actions import artifact as artifact_actions
    from falcoctl_py.cli._progress import DownloadProgress

    with DownloadProgress(force_plain=output is not OutputFormat.human) as progress:
        result = artifact_actions.install(
            config_path=global_options(ctx).config,
            refs=refs or [],
            rulesfiles_dir=rulesfiles_dir,
            plugins_dir=plugins_dir,
            assets_dir=assets_dir,
            state_dir=state_dir,
            allowed_types=allowed_types,
            platform=platform,
            resolve_deps=resolve_deps if _config.given(ctx, "resolve_deps") else None,
            no_verify=no_verify or None,
            tls=tls_options(plain_http, ca_file, insecure),
            progress=progress,
            verify_key=verify_key,
            trusted_root=trusted_root,
            update_config=update_config,
        )
    if output is not OutputFormat.human:
        print_structured(result, output)
        return
    for item in result.artifacts:
        where = ", ".join(item.files)
        status(
            f"{item.status}: {item.name}:{item.version} ({item.type}) {item.digest[:19]} -> {where}"
        )
    update = result.falco_config_update
    if update is not None:
        added = [*update.added_rules_files, *update.added_plugins, *update.updated_plugins]
        status(f"{update.path}: " + (f"added {', '.join(added)}" if added else "already listed"))


@app.command("info")
def artifact_info(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Artifact names or full references.")],
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Show the tags of artifacts (signature tags hidden)."""
    from falcoctl_py.actions import artifact as artifact_actions

    infos = artifact_actions.info(
        config_path=global_options(ctx).config,
        refs=refs,
        tls=tls_options(plain_http, ca_file, insecure),
    )
    if output is not OutputFormat.human:
        print_structured(infos, output)
        return
    print_table(["REF", "TAGS"], [[i.ref, ", ".join(i.tags)] for i in infos])


def _print_raw(data: bytes, output: OutputFormat) -> None:
    import json

    if output is OutputFormat.human:
        sys.stdout.write(data.decode("utf-8", "replace") + "\n")
        return
    value: Any = json.loads(data)
    print_structured(value, output)


@app.command("config")
def artifact_config(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Artifact name or full reference.")],
    platform: PlatformOpt = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Print the config JSON of an artifact (name, version, dependencies, requirements)."""
    from falcoctl_py.actions import artifact as artifact_actions

    data = artifact_actions.config_blob(
        config_path=global_options(ctx).config,
        ref=ref,
        platform=platform,
        tls=tls_options(plain_http, ca_file, insecure),
    )
    _print_raw(data, output)


@app.command("manifest")
def artifact_manifest(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Artifact name or full reference.")],
    platform: PlatformOpt = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Print the manifest JSON of an artifact (the platform's manifest for plugins)."""
    from falcoctl_py.actions import artifact as artifact_actions

    data = artifact_actions.manifest(
        config_path=global_options(ctx).config,
        ref=ref,
        platform=platform,
        tls=tls_options(plain_http, ca_file, insecure),
    )
    _print_raw(data, output)
