"""The root of the CLI: the command tree declared in one place, the global options, and the one
place errors become text."""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperOption

from falcoctl_py.cli import (
    _globals,
    artifact,
    artifact_catalog,
    artifact_follow,
    artifact_signing,
    driver,
    index,
    registry,
    registry_auth,
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
from falcoctl_py.cli._logging import json_line, setup_logging
from falcoctl_py.errors import ExitCode, FalcoctlPyError

# Typer bundles its own Click: its exception root is reached through a public Typer class.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)
_SETTINGS = {"help_option_names": ["-h", "--help"]}
_GLOBAL_NOTE = ("Global options (--config, --log-format, --log-level, --disable-styling, --debug) "
                "may also come after the command.")

app = typer.Typer(
    name="falcoctl-py",
    help="Falco's artifact manager and a Falco-compatible detector.",
    epilog=_GLOBAL_NOTE,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=_SETTINGS,
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
    disable_styling: Annotated[
        bool, typer.Option("--disable-styling", help="Deprecated: use --log-format text.")
    ] = False,
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
        disable_styling=disable_styling,
    )
    setup_logging(log_format, LogLevel.debug if debug else log_level,
                  disable_styling=disable_styling)
    if disable_styling:
        logging.getLogger("falcoctl_py").warning(
            "--disable-styling is deprecated: use --log-format text")


# -- the command tree, in one place -------------------------------------------------------------

def _group(name: str, help: str, commands: dict[str, Any],
           aliases: dict[str, str] | None = None) -> typer.Typer:
    """A command group: ``commands`` maps each verb to its function; aliases are hidden."""
    group = typer.Typer(help=help, epilog=_GLOBAL_NOTE, no_args_is_help=True,
                        context_settings=_SETTINGS)
    for verb, func in commands.items():
        group.command(verb, epilog=_GLOBAL_NOTE)(func)
    for alias, verb in (aliases or {}).items():
        group.command(alias, hidden=True, help=f"Alias of {verb}.")(commands[verb])
    app.add_typer(group, name=name)
    return group


app.command("version", epilog=_GLOBAL_NOTE)(version.version)
app.command("run", epilog=_GLOBAL_NOTE, context_settings={"allow_extra_args": False})(run.run)
_group("index", "Manage the indexes artifacts are found in.", {
    "add": index.index_add, "list": index.index_list, "remove": index.index_remove,
    "update": index.index_update,
}, aliases={"ls": "list", "rm": "remove"})
_group("artifact", "Find, install and inspect Falco artifacts.", {
    "search": artifact_catalog.artifact_search, "list": artifact_catalog.artifact_list,
    "info": artifact.artifact_info, "install": artifact.artifact_install,
    "follow": artifact_follow.artifact_follow, "rollback": artifact_follow.artifact_rollback,
    "config": artifact.artifact_config, "manifest": artifact.artifact_manifest,
    "verify": artifact_signing.artifact_verify, "sign": artifact_signing.artifact_sign,
}, aliases={"ls": "list"})
_auth = typer.Typer(help="Store credentials for registries.", epilog=_GLOBAL_NOTE,
                    no_args_is_help=True, context_settings=_SETTINGS)
_auth.command("basic", epilog=_GLOBAL_NOTE)(registry_auth.auth_basic)
_auth.command("oauth", epilog=_GLOBAL_NOTE)(registry_auth.auth_oauth)
_group("registry", "Push and pull artifacts, store registry credentials.", {
    "push": registry.registry_push, "pull": registry.registry_pull,
}).add_typer(_auth, name="auth")
_group("driver", "Prepare the kernel for the eBPF event source (BCC, BTF, tracefs, headers).", {
    "check": driver.driver_check, "install": driver.driver_install,
    "printenv": driver.driver_printenv, "cleanup": driver.driver_cleanup,
})
_group("rules", "Validate, list and parse Falco rules and conditions.", {
    "validate": rules.rules_validate, "list": rules.rules_list, "parse": rules.rules_parse,
    "eval": rules_eval.rules_eval, "filters": rules_filters.rules_filters,
})


# -- help without Python types ------------------------------------------------------------------

_TYPE_WORDS = {"str": "text", "int": "integer", "float": "number", "bool": "bool",
               "Path": "path"}


def _plain_type(shown: str) -> str:
    """``<str>`` -> ``<text>``, ``<list[str]>`` -> ``<text>``: words, not Python types."""
    match = re.fullmatch(r"<(?:list\[)?(\w+)\]?>", shown)
    if match and match.group(1) in _TYPE_WORDS:
        return f"<{_TYPE_WORDS[match.group(1)]}>"
    return shown


class _PlainArgument(TyperArgument):
    def display_type(self, ctx: Any) -> str:
        return _plain_type(super().display_type(ctx))


class _PlainOption(TyperOption):
    def display_type(self, ctx: Any) -> str:
        return _plain_type(super().display_type(ctx))

    def display_type_rich(self, ctx: Any) -> str | None:
        return "" if self.is_flag else super().display_type_rich(ctx)


def _plain_metavars(command: Any) -> None:
    """Help shows words (``<text>``, a choice list, ``<path>``), never ``<bool>`` or
    ``<list[str]>``: flags show no type, Python type names become words."""
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)
    names = SimpleNamespace(help_option_names=_SETTINGS["help_option_names"])
    help_option = command.get_help_option(names)  # made once and cached by the command
    for param in [*getattr(command, "params", []), *([help_option] if help_option else [])]:
        if type(param) is TyperOption:
            param.__class__ = _PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = _PlainArgument


def _plain_help(command: Any) -> None:
    """Help as Click's plain text (no boxes, nothing cut): for a pipe or a file. A command's
    line in its group's list is its help's whole first paragraph (Click would cut it at 45
    characters with ``...``)."""
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)
        if not sub.short_help and sub.help:
            sub.short_help = " ".join(sub.help.split("\n\n")[0].split())
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None


def command(*, styled: bool | None = None) -> Any:
    """The Click command of the whole CLI, with plain metavars; its help is drawn with boxes
    only when ``styled`` (default: stdout is a terminal)."""
    built = typer.main.get_command(app)
    _plain_metavars(built)
    if not (sys.stdout.isatty() if styled is None else styled):
        _plain_help(built)
    return built


# -- running it: the only broad ``except`` ------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``falcoctl-py`` script: the only broad ``except``."""
    raw = sys.argv[1:] if argv is None else argv
    cli = command()
    args = _globals.hoist(cli, raw)
    debug = _globals.scan(args, "--debug") is not None or "--debug" in args
    as_json = _globals.scan(args, "--log-format") == "json"
    try:
        code = cli.main(args=args, prog_name="falcoctl-py", standalone_mode=False)
    except _CLICK_ERROR as err:  # usage errors: one line, with where to look
        _print_usage_error(err, as_json=as_json)
    except typer.Abort:
        _fail("aborted", ExitCode.FAILURE, as_json=as_json)
    except FalcoctlPyError as err:
        if debug:
            traceback.print_exc()
        _fail(err.one_line(), err.exit_code, as_json=as_json)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.INTERRUPTED, as_json=as_json)
    except Exception as err:  # a bug: say so in one line, traceback only with --debug
        logging.getLogger("falcoctl_py").debug("unexpected error", exc_info=True)
        if debug:
            traceback.print_exc()
        _fail(f"unexpected {type(err).__name__}: {err} (hint: run with --debug for the "
              "traceback and report it)", ExitCode.FAILURE, as_json=as_json)
    sys.exit(code if isinstance(code, int) else int(ExitCode.OK))


def _fail(message: str, code: int, *, as_json: bool) -> NoReturn:
    """Print an error as ``Error: ...`` or, with ``--log-format json``, as a JSON log line."""
    if as_json:
        print(json_line(logging.ERROR, message, time.time()), file=sys.stderr)
    else:
        print(f"Error: {message}", file=sys.stderr)
    sys.exit(int(code))


def _print_usage_error(err: Exception, *, as_json: bool) -> NoReturn:
    """A usage error as one line naming the command's help; a group's help when bare."""
    code = int(getattr(err, "exit_code", ExitCode.USAGE))
    if type(err).__name__ == "NoArgsIsHelpError":  # a group without a command: its help
        getattr(err, "show")()  # noqa: B009 - Click's API, not typed here
        sys.exit(code)
    ctx = getattr(err, "ctx", None)
    where = getattr(ctx, "command_path", "falcoctl-py")
    message = " ".join(str(getattr(err, "format_message")()).split())  # noqa: B009
    _fail(f"{message} (hint: see '{where} --help')", code, as_json=as_json)


if __name__ == "__main__":
    main()
