"""``falcoctl-py registry auth basic|oauth``: a sub-group of ``registry``."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from falcoctl_py.cli import _config
from falcoctl_py.cli._options import CaFileOpt, InsecureOpt, PlainHttpOpt
from falcoctl_py.cli._output import status


def auth_basic(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(help="Registry host (or a full reference).")],
    username: Annotated[
        str, typer.Option("-u", "--username", envvar="FALCOCTL_REGISTRY_AUTH_BASIC_USERNAME",
                          help="Username.", show_envvar=True)
    ] = "",
    password: Annotated[
        str, typer.Option("-p", "--password", envvar="FALCOCTL_REGISTRY_AUTH_BASIC_PASSWORD",
                          help="Password (prefer --password-stdin).", show_envvar=True,
                          show_default=False)
    ] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin",
                           envvar="FALCOCTL_REGISTRY_AUTH_BASIC_PASSWORD_STDIN",
                           help="Read the password from standard input.", show_envvar=True)
    ] = False,
    plain_http: PlainHttpOpt = False,
    ca_file: CaFileOpt = None,
    insecure_skip_tls_verify: InsecureOpt = False,
) -> None:
    """Check a username and password against a registry, then store them (Docker config.json)."""
    from falcoctl_py.errors import UsageError
    from falcoctl_py.oci.login import login_basic

    if password_stdin:
        if password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    elif password and _config.given(ctx, "password"):
        logging.getLogger("falcoctl_py.cli").warning(
            "a password on the command line is visible to other users; use --password-stdin")
    if not username:
        username = typer.prompt("Username")
    if not password:
        password = typer.prompt("Password", hide_input=True)
    result = login_basic(host=host, username=username, password=password,
                         config=_config.load(ctx), plain_http=plain_http, ca_file=ca_file,
                         insecure_skip_tls_verify=insecure_skip_tls_verify)
    status(f"Login succeeded: credentials for {result.registry} stored in {result.store}.")


def auth_oauth(
    host: Annotated[str, typer.Argument(help="Registry host (or a full reference).")],
    token_url: Annotated[str, typer.Option("--token-url", help="OAuth2 token endpoint URL.")],
    client_id: Annotated[str, typer.Option("--client-id", help="OAuth2 client ID.")],
    client_secret: Annotated[
        str, typer.Option("--client-secret", help="OAuth2 client secret.", show_default=False)
    ],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated scopes to ask for.")
    ] = "",
    ca_file: CaFileOpt = None,
    insecure_skip_tls_verify: InsecureOpt = False,
) -> None:
    """Check OAuth2 client credentials by fetching a token, then store them."""
    from falcoctl_py.oci.login import login_oauth

    result = login_oauth(
        host=host, client_id=client_id, client_secret=client_secret, token_url=token_url,
        scopes=[s.strip() for s in scopes.split(",") if s.strip()], ca_file=ca_file,
        insecure_skip_tls_verify=insecure_skip_tls_verify,
    )
    status(f"Login succeeded: client credentials for {result.registry} stored in "
           f"{result.store}.")
