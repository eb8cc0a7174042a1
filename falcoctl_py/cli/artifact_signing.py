"""``falcoctl-py artifact sign`` and ``artifact verify``: registered on the artifact group."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from falcoctl_py.cli._context import global_options
from falcoctl_py.cli._options import (
    CaFileOpt,
    InsecureOpt,
    OutputOpt,
    PlainHttpOpt,
    TrustedRootOpt,
    VerifyKeyOpt,
    tls_options,
)
from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, status


def artifact_verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Artifact name or full reference.")],
    verify_key: VerifyKeyOpt = None,
    trusted_root: TrustedRootOpt = None,
    certificate_identity: Annotated[
        str, typer.Option("--certificate-identity", help="Exact signer identity (keyless).")
    ] = "",
    certificate_identity_regexp: Annotated[
        str, typer.Option("--certificate-identity-regexp", help="Signer identity regexp.")
    ] = "",
    certificate_oidc_issuer: Annotated[
        str, typer.Option("--certificate-oidc-issuer", help="Exact OIDC issuer (keyless).")
    ] = "",
    certificate_oidc_issuer_regexp: Annotated[
        str, typer.Option("--certificate-oidc-issuer-regexp", help="OIDC issuer regexp.")
    ] = "",
    ignore_tlog: Annotated[
        bool, typer.Option("--ignore-tlog", help="Do not require a transparency-log entry.")
    ] = False,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Verify an artifact's cosign signatures offline and print who signed what."""
    from falcoctl_py.signing.ops import IdentityFlags, verify_reference

    result = verify_reference(
        config_path=global_options(ctx).config,
        ref=ref,
        tls=tls_options(plain_http, ca_file, insecure),
        verify_key=verify_key,
        trusted_root=trusted_root,
        identity=IdentityFlags(
            certificate_identity=certificate_identity,
            certificate_identity_regexp=certificate_identity_regexp,
            certificate_oidc_issuer=certificate_oidc_issuer,
            certificate_oidc_issuer_regexp=certificate_oidc_issuer_regexp,
            ignore_tlog=ignore_tlog,
        ),
    )
    if output is not OutputFormat.human:
        print_structured(result, output)
        return
    status(f"verified {result.reference} ({result.policy})")
    print_table(
        ["FORM", "SIGNER", "ISSUER", "SIGNED AT", "LOG INDEX"],
        [
            [s.form, s.signer, s.issuer, s.signed_at, "" if s.log_index is None else s.log_index]
            for s in result.signatures
        ],
    )


def artifact_sign(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Artifact name or full reference to sign.")],
    key: Annotated[
        Path, typer.Option("--key", help="cosign private key (cosign.key or PKCS#8 PEM).")
    ],
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure: InsecureOpt = False,
    output: OutputOpt = OutputFormat.human,
) -> None:
    """Sign an artifact like cosign: a .sig tag and a Sigstore bundle (COSIGN_PASSWORD)."""
    from falcoctl_py.signing.ops import sign_reference

    password = os.environ.get("COSIGN_PASSWORD")
    if password is None and sys.stdin.isatty():
        password = typer.prompt("Enter password for private key", default="", hide_input=True)
    result = sign_reference(
        config_path=global_options(ctx).config,
        ref=ref,
        key_path=key,
        password=password,
        tls=tls_options(plain_http, ca_file, insecure),
    )
    if output is not OutputFormat.human:
        print_structured(result, output)
        return
    typer.echo(f"signed {result.reference} with key {result.key_id[:16]}")
    typer.echo(f"  legacy signature tag: {result.sig_tag}")
    typer.echo(f"  sigstore bundle: {result.bundle_manifest} (referrers: {result.referrers})")
