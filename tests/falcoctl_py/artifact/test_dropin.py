"""Drop-in pieces: the upstream falco-rules for the bundled detector, "did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoctl_py.actions import artifact as actions
from falcoctl_py.artifact.resolve import DETECTOR_PROVIDES
from tests.falcoctl_py.artifact.install_parts import Env
from tests.falcoctl_py.artifact_helpers import visible, write_config, write_index
from tests.falcoctl_py.cli.clirun import run_cli

RULES = Path(__file__).resolve().parents[4] / "shared" / "falco-rules" / "falco_rules.yaml"


def _config(env: Env) -> Path:
    index = write_index(
        env.tmp / "index.yaml",
        env.registry,
        {"falco-rules": ("rulesfile", "rulesfiles/falco-rules"),
         "container": ("plugin", "plugins/container")},
    )  # fmt: skip
    return write_config(env.tmp, index)


@pytest.mark.parametrize("for_detector", [True, False])
def test_upstream_falco_rules_need_no_container_plugin_for_the_detector(
    env: Env, for_detector: bool, isolated_home: Path
) -> None:
    if not RULES.is_file():
        pytest.skip(f"the upstream rules ({RULES}) are not on this machine")
    env.push("container", "0.4.3", [env.file("libcontainer.so", b"\x7fELF")], "plugin")
    env.push("falco-rules", "5.0.0", [RULES], tags=["latest"])
    result = actions.install(
        config_path=_config(env),
        refs=["falco-rules"],
        rulesfiles_dir=env.dirs.rulesfiles,
        plugins_dir=env.dirs.plugins,
        state_dir=env.tmp / "state",
        tls=actions.TlsOptions(plain_http=True),
        for_detector=for_detector,
    )
    got = [(a.name, a.status) for a in result.artifacts]
    assert visible(env.dirs.rulesfiles) == ["falco_rules.yaml"]
    if for_detector:  # the detector provides container.* itself: nothing external installed
        assert got == [("container", "provided"), ("falco-rules", "installed")]
        assert result.artifacts[0].requested_by == ["falco-rules:5.0.0"]
        assert not env.dirs.plugins.exists() or visible(env.dirs.plugins) == []
    else:  # a Falco user still gets the dependency resolved and installed
        assert got == [("container", "installed"), ("falco-rules", "installed")]
        assert visible(env.dirs.plugins) == ["libcontainer.so"]


def test_detector_provides_what_the_installer_assumes() -> None:
    from detector.rules.load.loader import PROVIDED_PLUGINS

    assert dict(PROVIDED_PLUGINS) == DETECTOR_PROVIDES


def test_misspelt_artifact_name_suggests_the_close_ones(
    env: Env, capsys: pytest.CaptureFixture[str], isolated_home: Path
) -> None:
    config = _config(env)
    run = run_cli(capsys, "--config", str(config), "artifact", "install", "falco-rulez:5")
    assert run.code != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, run.stderr
    assert errors[0].startswith(
        "Error: cannot find falco-rulez among the configured indexes; did you mean falco-rules?"
    )


def test_for_detector_flag_from_the_cli(
    env: Env, capsys: pytest.CaptureFixture[str], isolated_home: Path
) -> None:
    if not RULES.is_file():
        pytest.skip(f"the upstream rules ({RULES}) are not on this machine")
    env.push("container", "0.4.3", [env.file("libcontainer.so", b"\x7fELF")], "plugin")
    env.push("falco-rules", "5.0.0", [RULES], tags=["latest"])
    run = run_cli(
        capsys, "--config", str(_config(env)), "artifact", "install", "falco-rules",
        "--for-detector", "--plain-http", "--rulesfiles-dir", str(env.dirs.rulesfiles),
        "--plugins-dir", str(env.dirs.plugins), "--state-dir", str(env.tmp / "state"),
        "-o", "json",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert visible(env.dirs.rulesfiles) == ["falco_rules.yaml"]
    assert not env.dirs.plugins.exists() or visible(env.dirs.plugins) == []
    assert '"provided"' in run.stdout
