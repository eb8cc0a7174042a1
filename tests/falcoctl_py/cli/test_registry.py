"""``registry push`` and ``registry pull`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.falcoctl_py.artifact_helpers import make_ca, write_config
from tests.falcoctl_py.cli.clirun import run_config
from tests.realparts import Registry, free_port, running_registry


def test_push_then_pull(
    registry: Registry, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    rules = tmp_path / "my_rules.yaml"
    rules.write_text("- required_engine_version: 0.50.0\n- list: x\n  items: []\n")
    ref = registry.ref("me/my-rules")
    run = run_config(
        capsys, config, "registry", "push", ref, str(rules), "--type", "rulesfile", "--version",
        "1.0.0", "-t", "1.0.0", "--add-floating-tags", "--plain-http", "-o", "json",
    )
    assert run.code == 0, run.stderr
    pushed = json.loads(run.stdout)
    assert pushed["tags"] == ["1.0.0", "1", "1.0"]
    assert pushed["config"]["requirements"] == [
        {"name": "engine_version_semver", "version": "0.50.0"}
    ]
    run = run_config(
        capsys, config, "registry", "pull", f"{ref}:1", "-o", str(tmp_path / "out"), "--plain-http",
    )
    assert run.code == 0, run.stderr
    assert (tmp_path / "out" / "my_rules.yaml.tar.gz").exists()


def test_push_usage_errors(
    registry: Registry, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"so")
    run = run_config(
        capsys, config, "registry", "push", registry.ref("p/x", "1"), str(lib), "--type", "plugin",
        "--version", "1.0", "--plain-http",
    )
    assert run.code == 2 and "strict semantic version" in run.stderr
    run = run_config(
        capsys, config, "registry", "push", registry.ref("p/x", "1"), str(lib), "--type", "plugin",
        "--version", "1.0.0", "--platform", "linux", "--plain-http",
    )
    assert run.code == 2 and "invalid platform" in run.stderr


def test_registry_down_and_credentials(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    lib = tmp_path / "a.txt"
    lib.write_text("a")
    run = run_config(
        capsys, config, "registry", "pull", f"127.0.0.1:{free_port()}/x/y:1", "--plain-http",
    )
    assert run.code == 1 and "cannot connect to registry" in run.stderr
    cert, key, ca = make_ca(tmp_path / "pki")
    with running_registry(
        tmp_path / "reg", htpasswd=("alice", "pw-alice"), tls=(cert, key, ca)
    ) as reg:
        args = [
            "registry",
            "push",
            reg.ref("a/b", "1.0.0"),
            str(lib),
            "--type",
            "asset",
            "--version",
            "1.0.0",
            "--ca-file",
            str(ca),
        ]
        run = run_config(capsys, config, *args)
        assert run.code == 1 and "401" in run.stderr
        config = write_config(tmp_path)
        data = {
            "indexes": [],
            "registry": {
                "creds": {"config": str(tmp_path / "dc.json")},
                "auth": {
                    "basic": [{"registry": reg.host, "user": "alice", "password": "pw-alice"}]
                },
            },
        }
        config.write_text(json.dumps(data))
        run = run_config(capsys, config, *args)
        assert run.code == 0, run.stderr
        assert "pw-alice" not in run.stderr + run.stdout
