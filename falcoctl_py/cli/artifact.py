"""``falcoctl-py artifact``: install, info, config and manifest."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from falcoctl_py.cli import _config
from falcoctl_py.cli._context import global_options, styling_enabled
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


# Over 60 lines only by its parameter list (one a flag); the docstring is the --help text.
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
    for_detector: Annotated[
        bool,
        typer.Option(
            "--for-detector",
            help="Install for falcoctl-py's bundled detector: dependencies it provides itself "
            "(the container plugin) count as installed.",
        ),
    ] = False,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Install artifacts and their dependencies, atomically, with digests and signatures checked."""
    from falcoctl_py.actions import artifact as artifact_actions
    from falcoctl_py.cli._progress import DownloadProgress

    opts = global_options(ctx)
    styled = styling_enabled(opts.log_format, disable_styling=opts.disable_styling)
    with DownloadProgress(force_plain=output is not OutputFormat.human or not styled) as progress:
        result = artifact_actions.install(
            config_path=opts.config,
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
            for_detector=for_detector,
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
    infos = [dataclasses.replace(i, tags=sorted_tags(i.tags)) for i in infos]
    if output is not OutputFormat.human:
        print_structured(infos, output)
        return
    print_table(["REF", "TAGS"], [[i.ref, ", ".join(i.tags)] for i in infos])


def _version_key(tag: str) -> tuple[int, tuple[int, ...], str]:
    """Sort key: semver-like tags by their numbers (``latest`` and others after), then text."""
    core = tag.lstrip("v").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if all(p.isdigit() for p in parts):
        return (0, tuple(int(p) for p in parts), tag)
    return (1, (), tag)


def sorted_tags(tags: list[str]) -> list[str]:
    """Tags in version order, as people read them."""
    return sorted(tags, key=_version_key)


def _show_document(
    ctx: typer.Context, *, what: str, ref: str, platform: str | None, tls_flags: tuple[bool,
    Path | None, bool], output: OutputFormat,
) -> None:
    """Fetch the config or manifest JSON of ``ref`` and print it raw, or as json/yaml."""
    import json

    from falcoctl_py.actions import artifact as artifact_actions

    fetch = artifact_actions.config_blob if what == "config" else artifact_actions.manifest
    data = fetch(config_path=global_options(ctx).config, ref=ref, platform=platform,
                 tls=tls_options(*tls_flags))
    if output is OutputFormat.human:
        sys.stdout.write(data.decode("utf-8", "replace") + "\n")
        return
    value: Any = json.loads(data)
    print_structured(value, output)


RefArg = Annotated[str, typer.Argument(help="Artifact name or full reference.")]


def artifact_config(
    ctx: typer.Context,
    ref: RefArg,
    platform: PlatformOpt = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Print the config JSON of an artifact (name, version, dependencies, requirements)."""
    _show_document(ctx, what="config", ref=ref, platform=platform,
                   tls_flags=(plain_http, ca_file, insecure), output=output)


def artifact_manifest(
    ctx: typer.Context,
    ref: RefArg,
    platform: PlatformOpt = None,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Print the manifest JSON of an artifact (the platform's manifest for plugins)."""
    _show_document(ctx, what="manifest", ref=ref, platform=platform,
                   tls_flags=(plain_http, ca_file, insecure), output=output)
