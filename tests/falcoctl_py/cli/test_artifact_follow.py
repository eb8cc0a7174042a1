"""``artifact follow`` as a sidecar process (SIGTERM stops it) and ``artifact rollback``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from falcoctl_py.oci.client import RegistryClient
from falcoctl_py.push import push_artifact
from tests.eventually import eventually
from tests.falcoctl_py.artifact_helpers import write_config, write_index
from tests.falcoctl_py.cli.clirun import run_cli, run_config
from tests.falcoctl_py.follow_helpers import VersionsServer
from tests.realparts import Registry


def push(registry: Registry, src: Path, version: str, text: str) -> None:
    src.mkdir(exist_ok=True)
    (src / "app_rules.yaml").write_text(text)
    with RegistryClient(plain_http=True) as client:
        push_artifact(
            client=client,
            ref=registry.ref("rules/app-rules", version),
            files=[src / "app_rules.yaml"],
            artifact_type="rulesfile",
            version=version,
            tags=["latest"],
        )


def wait_for(path: Path, text: str, limit: float) -> None:
    """Wait until ``path`` holds ``text`` (the follower installed that version)."""
    eventually(lambda: path.exists() and path.read_text() == text, timeout=limit, interval=0.05,
               what=f"{path} holding {text!r}")


def test_sidecar_follows_stops_on_sigterm_and_rollback_restores(
    registry: Registry, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    push(registry, tmp_path / "src", "1.0.0", "- rule: one\n")
    index = write_index(
        tmp_path / "index.yaml", registry, {"app-rules": ("rulesfile", "rules/app-rules")}
    )
    config = write_config(tmp_path, index)
    detector = VersionsServer()
    rules = tmp_path / "rules" / "app_rules.yaml"
    env = {**os.environ, "FALCOCTL_ARTIFACT_FOLLOW_REFS": "app-rules:latest"}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "falcoctl_py.cli.main", "--config", str(config),
            "artifact", "follow", "--every", "1s", "--startup-behavior", "immediate",
            "--falco-versions", detector.url, "--rulesfiles-dir", str(tmp_path / "rules"),
            "--state-dir", str(tmp_path / "state"), "--plain-http", "--no-verify",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(rules, "- rule: one\n", 15)
        push(registry, tmp_path / "src", "1.1.0", "- rule: two\n")
        wait_for(rules, "- rule: two\n", 5)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        detector.stop()
    assert proc.returncode == 0, err
    assert "rules added: 'two'" in err and "rules removed: 'one'" in err
    assert "2 update(s)" in err

    run = run_config(
        capsys, config, "artifact", "rollback", "app-rules", "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert "rolled back app-rules from 1.1.0 to 1.0.0" in run.stderr
    assert rules.read_text() == "- rule: one\n"
    again = run_config(
        capsys, config, "artifact", "rollback", "nothing-here", "--state-dir",
        str(tmp_path / "state"),
    )  # fmt: skip
    assert again.code != 0 and "no installed artifact named nothing-here" in again.stderr


def test_follow_usage_errors(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    none = run_config(capsys, config, "artifact", "follow")
    assert none.code == 2 and "no artifact to follow" in none.stderr
    both = run_config(
        capsys, config, "artifact", "follow", "x/y/z", "--every", "1h", "--cron", "0 * * * *",
    )  # fmt: skip
    assert both.code == 2 and "cannot be used together" in both.stderr
    bad = run_config(capsys, config, "artifact", "follow", "h:1/y", "--startup-behavior", "x")
    assert bad.code == 2 and "skip, jitter or immediate" in bad.stderr
    helptext = run_cli(capsys, "artifact", "follow", "--help").stdout
    for flag in ("--every", "--cron", "--startup-behavior", "--falco-versions", "--timeout",
                 "--tmp-dir", "--platform", "--ca-file", "--insecure-skip-tls-verify"):  # fmt: skip
        assert flag in helptext
