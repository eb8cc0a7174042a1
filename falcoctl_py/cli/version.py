"""``falcoctl-py version``."""

from __future__ import annotations

import platform
import sys

import typer

from falcoctl_py import __version__
from falcoctl_py.cli._options import OutputOpt
from falcoctl_py.cli._output import OutputFormat, print_structured


def version(output: OutputOpt = OutputFormat.human) -> None:
    """Print the version of falcoctl-py."""
    info = {
        "semVersion": __version__,
        "gitCommit": "",
        "buildDate": "",
        "pythonVersion": platform.python_version(),
        "compiler": sys.implementation.name,
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }
    if output is OutputFormat.human:
        typer.echo(f"Client Version: {__version__}")
    else:
        print_structured(info, output)
