"""The root of the CLI: global options, the command groups, and the one place errors become text."""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from falcoctl_py.cli import (
    artifact,
    artifact_catalog,
    artifact_follow,
    artifact_signing,
    driver,
    index,
    registry,
    rules,
    rules_eval,
    rules_filters,
    run,
    version,
)
from falcoctl_py.cli._context import (
    GlobalOptions,
    LogFormat,
    LogLevel,
    default_config_path,
)
from falcoctl_py.cli._logging import setup_logging
from falcoctl_py.errors import ExitCode, FalcoctlPyError

# Typer bundles its own Click: its exception root is reached through a public Typer class.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

# These modules register their commands on the artifact and rules groups when imported.
_GROUP_EXTENSIONS = (artifact_catalog, artifact_follow, artifact_signing, rules_eval,
                     rules_filters)

app = typer.Typer(
    name="falcoctl-py",
    help="Falco's artifact manager and a Falco-compatible detector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file (default /etc/falcoctl/falcoctl.yaml as root, "
            "~/.config/falcoctl/falcoctl.yaml otherwise).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="Log format: color, text or json.")
    ] = LogFormat.color,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="Log level: info, warn, debug or trace.")
    ] = LogLevel.info,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors.")
    ] = False,
) -> None:
    """Falco's artifact manager and a Falco-compatible detector."""
    ctx.obj = GlobalOptions(
        config=config if config is not None else default_config_path(),
        config_given=config is not None,
        log_format=log_format,
        log_level=log_level,
        debug=debug,
    )
    setup_logging(log_format, LogLevel.debug if debug else log_level)


app.command("version")(version.version)
app.command(
    "run",
    context_settings={"allow_extra_args": False},
)(run.run)
app.add_typer(index.app, name="index")
app.add_typer(artifact.app, name="artifact")
app.add_typer(registry.app, name="registry")
app.add_typer(driver.app, name="driver")
app.add_typer(rules.app, name="rules")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``falcoctl-py`` script: the only broad ``except``."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="falcoctl-py", standalone_mode=False)
    except _CLICK_ERROR as err:  # usage errors: one line, with where to look
        _print_usage_error(err)
    except typer.Abort:
        print("Error: aborted", file=sys.stderr)
        sys.exit(int(ExitCode.FAILURE))
    except FalcoctlPyError as err:
        if debug:
            traceback.print_exc()
        print(f"Error: {err.one_line()}", file=sys.stderr)
        sys.exit(int(err.exit_code))
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as err:  # a bug: say so in one line, traceback only with --debug
        logging.getLogger("falcoctl_py").debug("unexpected error", exc_info=True)
        if debug:
            traceback.print_exc()
        print(
            f"Error: unexpected {type(err).__name__}: {err} (hint: run with --debug for the "
            "traceback and report it)",
            file=sys.stderr,
        )
        sys.exit(int(ExitCode.FAILURE))
    sys.exit(code if isinstance(code, int) else int(ExitCode.OK))


def _print_usage_error(err: Exception) -> NoReturn:
    """A usage error as one line naming the command's help; a group's help when bare."""
    code = int(getattr(err, "exit_code", ExitCode.USAGE))
    if type(err).__name__ == "NoArgsIsHelpError":  # a group without a command: its help
        getattr(err, "show")()  # noqa: B009 - Click's API, not typed here
        sys.exit(code)
    ctx = getattr(err, "ctx", None)
    where = getattr(ctx, "command_path", "falcoctl-py")
    message = " ".join(str(getattr(err, "format_message")()).split())  # noqa: B009
    print(f"Error: {message} (hint: see '{where} --help')", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
