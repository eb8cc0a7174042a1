"""Running the real ``falcoctl-py`` entry point in-process and capturing what it prints."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from falcoctl_py.cli.main import main


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str, stdin: str | None = None) -> Run:
    """``falcoctl-py ARGS`` through ``main()`` (errors printed as users see them); the logging
    set-up ``main()`` makes is undone after the test by the autouse fixture in conftest."""
    capsys.readouterr()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = old_stdin
    out = capsys.readouterr()
    return Run(code, out.out, out.err)


def run_config(
    capsys: pytest.CaptureFixture[str], config: Path, *args: str, stdin: str | None = None
) -> Run:
    """``falcoctl-py --config CONFIG ARGS``, as :func:`run_cli`."""
    return run_cli(capsys, "--config", str(config), *args, stdin=stdin)
