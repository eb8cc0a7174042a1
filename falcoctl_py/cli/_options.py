"""Options shared by several commands, declared once as ``Annotated`` aliases (one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from falcoctl_py.cli._output import OutputFormat

if TYPE_CHECKING:
    from falcoctl_py.actions.artifact import TlsOptions

OutputOpt = Annotated[
    OutputFormat, typer.Option("-o", "--output", help="Output format: human, json or yaml.")
]

# -- reaching registries -----------------------------------------------------------------------

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


def tls_options(plain_http: bool, ca_file: Path | None, insecure: bool) -> TlsOptions:
    """The TLS flags as one value for the core."""
    from falcoctl_py.actions.artifact import TlsOptions

    return TlsOptions(plain_http=plain_http, ca_file=ca_file, insecure_skip_tls_verify=insecure)


# -- where artifacts go (install and follow) ---------------------------------------------------

RulesfilesDirOpt = Annotated[
    Path | None,
    typer.Option("--rulesfiles-dir", help="Where rules files go (default /etc/falco)."),
]
PluginsDirOpt = Annotated[
    Path | None,
    typer.Option("--plugins-dir", help="Where plugins go (default /usr/share/falco/plugins)."),
]
AssetsDirOpt = Annotated[
    Path | None,
    typer.Option("--assets-dir", help="Where assets go (default /etc/falco/assets)."),
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where install state is kept (default /var/lib/falcoctl)."),
]
AllowedTypesOpt = Annotated[
    list[str] | None,
    typer.Option("--allowed-types", help="Artifact types allowed (comma-separated)."),
]
ResolveDepsOpt = Annotated[
    bool, typer.Option("--resolve-deps/--no-resolve-deps", help="Install dependencies too.")
]

# -- signatures --------------------------------------------------------------------------------

NoVerifyOpt = Annotated[bool, typer.Option("--no-verify", help="Skip signature verification.")]
VerifyKeyOpt = Annotated[
    str | None,
    typer.Option("--verify-key", help="cosign public key (PEM file) the signatures must match."),
]
TrustedRootOpt = Annotated[
    Path | None,
    typer.Option(
        "--trusted-root", help="Sigstore trusted_root.json for keyless verification (offline)."
    ),
]
