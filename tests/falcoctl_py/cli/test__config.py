"""Flag over FALCOCTL_* over the file, as a command sees it through ``cli._config``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from falcoctl_py.cli import _config
from falcoctl_py.cli._context import GlobalOptions, LogFormat, LogLevel
from falcoctl_py.config import pick


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


def test_missing_config_is_created(isolated_home: Path) -> None:
    path = isolated_home / "new" / "falcoctl.yaml"
    assert run(path) == "/etc/falco"
    assert path.exists()
