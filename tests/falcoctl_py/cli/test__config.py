"""Flag over FALCOCTL_* over the file, as a command sees it through ``cli._config``."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from falcoctl_py.cli import _config
from falcoctl_py.cli._context import GlobalOptions, LogFormat, LogLevel
from falcoctl_py.config import pick
from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import FileServer


def make_app(config_path: Path) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = GlobalOptions(config=config_path, config_given=True, log_format=LogFormat.text,
                                log_level=LogLevel.info, debug=False)

    @app.command()
    def show(
        ctx: typer.Context,
        rulesfiles_dir: Annotated[Path, typer.Option("--rulesfiles-dir")] = Path("/etc/falco"),
    ) -> None:
        config = _config.load(ctx)
        chosen = pick(rulesfiles_dir, _config.given(ctx, "rulesfiles_dir"),
                      config.artifact.install.rulesfiles_dir)
        typer.echo(str(chosen))

    return app


@pytest.fixture
def config(isolated_home: Path) -> Path:
    path = isolated_home / "falcoctl.yaml"
    path.write_text("artifact:\n  install:\n    rulesfilesDir: /from/file\n")
    return path


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(make_app(config), ["show", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_file_then_env_then_flag(config: Path) -> None:
    env = {"FALCOCTL_ARTIFACT_INSTALL_RULESFILESDIR": "/from/env"}
    assert run(config) == "/from/file"
    assert run(config, env=env) == "/from/env"
    assert run(config, "--rulesfiles-dir", "/from/flag", env=env) == "/from/flag"
    # a flag typed with its default value still wins
    assert run(config, "--rulesfiles-dir", "/etc/falco", env=env) == "/etc/falco"


def test_a_missing_config_reads_as_defaults_and_is_not_created(isolated_home: Path) -> None:
    path = isolated_home / "new" / "falcoctl.yaml"
    assert run(path) == "/etc/falco"
    assert not path.parent.exists()


@pytest.mark.parametrize("args", [("index", "list"), ("artifact", "list"), ("version",)])
def test_a_read_only_command_creates_no_config(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, args: tuple[str, ...]
) -> None:
    missing = isolated_home / "nonexist" / "dir" / "x.yaml"
    before = sorted(isolated_home.rglob("*"))
    result = run_config(capsys, missing, *args)
    assert sorted(isolated_home.rglob("*")) == before  # nothing created, not even the dir
    if args == ("index", "list"):
        assert result.code == 0 and "falcosecurity" in result.stdout  # the default index


def test_a_command_that_changes_the_config_creates_it(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, file_server: FileServer
) -> None:
    (file_server.root / "index.yaml").write_text("[]\n")
    path = isolated_home / "nonexist" / "dir" / "x.yaml"
    result = run_config(capsys, path, "index", "add", "mine", f"{file_server.url}/index.yaml")
    assert result.code == 0, result.stderr
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "falcosecurity" in path.read_text() and "mine" in path.read_text()
