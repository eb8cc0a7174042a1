"""``falcoctl-py artifact``: install, info, config and manifest (other verbs register here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from falcoctl_py.cli._context import global_options
from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, status

if TYPE_CHECKING:
    from falcoctl_py.artifact_actions import TlsOptions

app = typer.Typer(help="Find, install and inspect Falco artifacts.", no_args_is_help=True)

PlainHttpOpt = Annotated[
    bool, typer.Option("--plain-http", help="Talk to registries over plain HTTP.")
]
CaFileOpt = Annotated[
    Path | None,
    typer.Option("--ca-file", help="Extra CA certificate (PEM) to trust for registries."),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure-skip-tls-verify", help="Do not verify registry TLS certificates."),
]
PlatformOpt = Annotated[
    str | None,
    typer.Option("--platform", help="OS/ARCH of the plugin to pick (default: this machine's)."),
]
OutputOpt = Annotated[
    OutputFormat, typer.Option("-o", "--output", help="Output format: human, json or yaml.")
]


def tls_options(plain_http: bool, ca_file: Path | None, insecure: bool) -> TlsOptions:
    """The TLS flags as one value for the core."""
    from falcoctl_py.artifact_actions import TlsOptions

    return TlsOptions(plain_http=plain_http, ca_file=ca_file, insecure_skip_tls_verify=insecure)


def _given(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


@app.command("install")
def artifact_install(
    ctx: typer.Context,
    refs: Annotated[
        list[str] | None,
        typer.Argument(help="References: NAME[:TAG|:RANGE|@DIGEST] or HOST/REPO[:TAG|@DIGEST]."),
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
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir", help="Where install state is kept (default /var/lib/falcoctl)."
        ),
    ] = None,
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
    from falcoctl_py import artifact_actions
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
            resolve_deps=resolve_deps if _given(ctx, "resolve_deps") else None,
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
    from falcoctl_py import artifact_actions

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
    from falcoctl_py import artifact_actions

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
    from falcoctl_py import artifact_actions

    data = artifact_actions.manifest(
        config_path=global_options(ctx).config,
        ref=ref,
        platform=platform,
        tls=tls_options(plain_http, ca_file, insecure),
    )
    _print_raw(data, output)
