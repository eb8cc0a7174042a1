"""``falcoctl-py driver``: prepare the running kernel for the eBPF (BCC) event source."""

from __future__ import annotations

from typing import Annotated

import typer

from falcoctl_py.cli._output import OutputFormat, print_structured, print_table, status

OutputOpt = Annotated[
    OutputFormat, typer.Option("-o", "--output", help="Output format: human, yaml or json.")
]


def driver_check(output: OutputOpt = OutputFormat.human) -> None:
    """Check root, BPF, BTF, tracefs, kernel headers and BCC; exit 1 if any check fails."""
    from detector.driver import check

    report = check()
    if output is OutputFormat.human:
        print_table(
            ["CHECK", "STATUS", "DETAIL", "FIX"],
            [
                [c.name, "ok" if c.ok else "FAILED", c.detail, "" if c.ok else c.fix]
                for c in report.checks
            ],
        )
    else:
        print_structured({"ok": report.ok, "checks": report.checks}, output)
    if not report.ok:
        raise typer.Exit(1)


def driver_install(
    no_packages: Annotated[
        bool, typer.Option("--no-packages", help="Do not apt-get install missing packages.")
    ] = False,
) -> None:
    """Install missing Debian packages, link kernel headers, mount tracefs (idempotent)."""
    from detector.driver import install

    report = install(packages=not no_packages)
    for action in report.actions:
        status(action)
    if not report.actions:
        status(f"driver already prepared for kernel {report.release}")


def driver_printenv(
    output: OutputOpt = OutputFormat.human,
    ebpf: Annotated[
        bool, typer.Option("--ebpf", help="Print the BPF C program with its -D flags instead.")
    ] = False,
) -> None:
    """Print the driver's environment (kernel, headers, BTF, tracefs, BCC, clang flags)."""
    if ebpf:
        from detector.sources.ebpf import ebpf_listing

        typer.echo(ebpf_listing())
        return
    from detector.driver import printenv

    env = printenv()
    if output is OutputFormat.human:
        for key, value in env.values.items():
            typer.echo(f"{key}={value}")
    else:
        print_structured(env.values, output)


def driver_cleanup() -> None:
    """Remove the header links, directories and tracefs mount that `driver install` made."""
    from detector.driver import cleanup

    report = cleanup()
    for action in report.actions:
        status(action)
    if not report.actions:
        status("nothing to clean up")
