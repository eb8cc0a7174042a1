"""The root command: global options, version, and how errors are printed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from falcoctl_py.cli.main import app, main
from falcoctl_py.errors import FalcoctlPyError


def test_version_json_has_semver() -> None:
    result = CliRunner().invoke(app, ["version", "-o", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["semVersion"].count(".") == 2


def test_version_human() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.stdout.startswith("Client Version: ")


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "falcoctl_py.cli.main", "version"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Client Version" in proc.stdout


def test_core_error_is_one_line_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["rules", "eval", "proc.name=x", "--fields", "[1]"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("Error: --fields must be a JSON object") and "hint: e.g." in err


def test_one_line_folds_newlines() -> None:
    assert "\n" not in FalcoctlPyError("a\nb", hint="c\nd").one_line()


def test_usage_error_is_one_line_naming_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["artifact", "install", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "Error: No such option: --bogus (hint: see 'falcoctl-py artifact install --help')\n"
    )


def test_group_without_command_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["index"])
    assert exc.value.code == 2
    out = capsys.readouterr()
    assert "add" in out.out + out.err and "remove" in out.out + out.err


def test_success_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["version"])
    assert exc.value.code == 0
