"""``falcoctl-py registry auth basic|oauth`` against a real registry and token endpoint."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.falcoctl_py.authservers import auth_server
from tests.falcoctl_py.cli.clirun import run_cli, run_config
from tests.realparts import Registry, start_registry


def test_basic_password_stdin_stores_in_docker_config(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, auth_registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(isolated_home / "dockercfg"))
    run = run_config(
        capsys, isolated_home / "f.yaml", "registry", "auth", "basic", auth_registry.host, "-u",
        "alice", "--password-stdin", "--plain-http", stdin="s3cret\n",
    )
    assert run.code == 0, run.stderr
    assert "Login succeeded" in run.stderr and "s3cret" not in run.stderr + run.stdout
    store = isolated_home / "dockercfg" / "config.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert auth_registry.host in json.loads(store.read_text())["auths"]


def test_basic_wrong_credentials_refused_nothing_stored(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, auth_registry: Registry,
) -> None:
    run = run_config(
        capsys, isolated_home / "f.yaml", "registry", "auth", "basic",
        auth_registry.ref("org/repo", "1"), "-u", "alice", "-p", "bad-pw", "--plain-http",
    )
    assert run.code == 1
    assert "refused the credentials (HTTP 401)" in run.stderr
    assert "bad-pw" not in run.stderr
    assert not (isolated_home / ".docker").exists()


def test_basic_env_variables(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, auth_registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FALCOCTL_REGISTRY_AUTH_BASIC_USERNAME", "alice")
    monkeypatch.setenv("FALCOCTL_REGISTRY_AUTH_BASIC_PASSWORD", "s3cret")
    run = run_config(
        capsys, isolated_home / "f.yaml", "registry", "auth", "basic", auth_registry.host,
        "--plain-http",
    )
    assert run.code == 0, run.stderr
    assert "Warning" not in run.stderr  # the password did not come from the command line
    assert (isolated_home / ".docker" / "config.json").exists()


def test_basic_config_creds_path_is_used(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, auth_registry: Registry,
) -> None:
    config = isolated_home / "f.yaml"
    config.write_text(f"registry:\n  creds:\n    config: {isolated_home}/creds/store.json\n")
    run = run_config(
        capsys, config, "registry", "auth", "basic", auth_registry.host, "-u", "alice", "-p",
        "s3cret", "--plain-http",
    )
    assert run.code == 0, run.stderr
    assert run.stderr.count("a password on the command line is visible") == 1  # once
    assert "WARN  a password on the command line" in run.stderr
    assert (isolated_home / "creds" / "store.json").exists()


def test_oauth_validates_then_stores(
    capsys: pytest.CaptureFixture[str], isolated_home: Path,
) -> None:
    with auth_server() as server:
        args = ["--config", str(isolated_home / "f.yaml"), "registry", "auth", "oauth",
                "reg.example:5000", "--token-url", f"{server.url}/token", "--client-id", "cid"]
        bad = run_cli(capsys, *args, "--client-secret", "nope")
        assert bad.code == 1 and "refused the client credentials" in bad.stderr
        path = isolated_home / ".config" / "falcoctl" / "clientcredentials.json"
        assert not path.exists()
        good = run_cli(capsys, *args, "--client-secret", "csecret", "--scopes", "a,b")
        assert good.code == 0, good.stderr
        entry = json.loads(path.read_text())["reg.example:5000"]
        assert entry["Scopes"] == ["a", "b"] and entry["TokenURL"] == f"{server.url}/token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_basic_over_tls_with_private_ca(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, tmp_path: Path,
) -> None:
    from tests.falcoctl_py.artifact_helpers import make_ca

    cert, key, ca = make_ca(tmp_path / "ca")
    reg = start_registry(tmp_path / "tlsreg", htpasswd=("alice", "s3cret"), tls=(cert, key, ca))
    try:
        args = ["--config", str(isolated_home / "f.yaml"), "registry", "auth", "basic",
                reg.host, "-u", "alice", "--password-stdin"]
        untrusted = run_cli(capsys, *args, stdin="s3cret\n")
        assert untrusted.code == 1 and "cannot reach the registry https://" in untrusted.stderr
        assert "--ca-file" in untrusted.stderr  # the hint says how to fix it
        assert not (isolated_home / ".docker").exists()
        trusted = run_cli(capsys, *args, "--ca-file", str(ca), stdin="s3cret\n")
        assert trusted.code == 0, trusted.stderr
        assert (isolated_home / ".docker" / "config.json").exists()
    finally:
        reg.stop()


def test_no_secret_in_trace_logs_or_tracebacks(
    capsys: pytest.CaptureFixture[str], isolated_home: Path, auth_registry: Registry,
) -> None:
    import base64

    for password in ("Wr0ng-Secret", "s3cret"):
        run = run_config(
            capsys, isolated_home / "f.yaml", "--log-level", "trace", "--debug", "registry", "auth",
            "basic", auth_registry.host, "-u", "alice", "--password-stdin", "--plain-http",
            stdin=f"{password}\n",
        )
        shown = run.stdout + run.stderr
        assert password not in shown
        assert base64.b64encode(f"alice:{password}".encode()).decode() not in shown
    assert run.code == 0
