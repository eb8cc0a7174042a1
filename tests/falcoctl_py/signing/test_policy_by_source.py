"""The signature policy follows where the bytes come from, not what the artifact says it is.

A real registry, the real CLI, an index entry that requires a key, and an unsigned artifact in
that entry's repository whose config names something no index lists: refused by full reference
(whatever spelling of the host), by ``artifact install`` and by ``artifact follow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from falcoctl_py.actions.artifact import TlsOptions
from falcoctl_py.actions.follow import build_follower
from falcoctl_py.signing import keys
from falcoctl_py.signing.policy import RepositoryPolicy as Rule
from falcoctl_py.signing.policy import VerifySettings, normalize_repository, policy_from_block
from tests.falcoctl_py.artifact_helpers import visible
from tests.falcoctl_py.cli.clirun import run_cli
from tests.falcoctl_py.signing.standins import new_key
from tests.realparts import Registry

RULES = "- list: unsigned\n  items: []\n"


@pytest.fixture
def signed_index(
    isolated_home: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A config whose index requires a key for ``cli/keyed-rules``; an unsigned artifact there
    named ``innocent-name`` by its publisher."""
    pub = isolated_home / "cosign.pub"
    pub.write_bytes(keys.public_key_pem(new_key().public_key()))
    index = [
        {
            "name": "keyed-rules",
            "type": "rulesfile",
            "registry": registry.host,
            "repository": "cli/keyed-rules",
            "signature": {"cosign": {"key": str(pub)}},
        }
    ]
    (isolated_home / "index.yaml").write_text(yaml.safe_dump(index))
    config = isolated_home / "falcoctl.yaml"
    url = f"file://{isolated_home / 'index.yaml'}"
    config.write_text(yaml.safe_dump({"indexes": [{"name": "t", "url": url, "backend": "file"}]}))
    rules = isolated_home / "rules.yaml"
    rules.write_text(RULES)
    ref = f"{registry.host}/cli/keyed-rules:1.0.0"
    push = ["registry", "push", ref, str(rules), "--type", "rulesfile", "--version", "1.0.0"]
    run = run_cli(capsys, "--config", str(config), *push, "--name", "innocent-name", "--plain-http")
    assert run.code == 0, run.stderr
    return config


def _port(registry: Registry) -> str:
    return registry.host.rsplit(":", 1)[1]


@pytest.mark.registry
@pytest.mark.parametrize(
    "host", ["{host}", "localhost:{port}", "127.1:{port}", "2130706433:{port}"]
)  # a zero-padded port past 5 digits is refused as a reference; globs see it normalised below
def test_full_reference_to_a_signed_repository_is_held_to_its_entry(
    signed_index: Path,
    registry: Registry,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    host: str,
) -> None:
    spelled = host.format(host=registry.host, port=_port(registry))
    dest = isolated_home / "rules"
    run = run_cli(
        capsys,
        "--config",
        str(signed_index),
        "artifact",
        "install",
        f"{spelled}/cli/keyed-rules:1.0.0",
        "--plain-http",
        "--rulesfiles-dir",
        str(dest),
        "--state-dir",
        str(isolated_home / "state"),
    )
    assert run.code != 0, run.stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "signature" in errors[0].lower(), run.stderr
    assert not dest.exists() or visible(dest) == []


@pytest.mark.registry
def test_follow_refuses_the_unsigned_artifact_by_full_reference(
    signed_index: Path, registry: Registry, isolated_home: Path
) -> None:
    dest = isolated_home / "rules"
    follower = build_follower(
        config_path=signed_index,
        refs=[f"localhost:{_port(registry)}/cli/keyed-rules:1.0.0"],
        falco_versions="",
        rulesfiles_dir=dest,
        state_dir=isolated_home / "state",
        tls=TlsOptions(plain_http=True),
        every="1h",
    )
    try:
        (result,) = follower.tick()
    finally:
        follower.close()
    assert result.status == "skipped" and "signature" in result.message, result
    assert not dest.exists() or visible(dest) == []


def test_globs_match_the_normalised_host() -> None:
    policy = policy_from_block({"key": "/k.pub"}, source="test")
    assert policy is not None
    settings = VerifySettings(repository_policies=[Rule("127.0.0.1:5000/falco/*", policy)])
    for spelled in (
        "127.0.0.1:5000/falco/rules",
        "localhost:5000/falco/rules",
        "127.1:5000/falco/rules",
        "2130706433:5000/falco/rules",
        "LOCALHOST:05000/Falco/Rules",
        "0x7f.1:5000/falco/rules",
    ):
        assert settings.policy_for(spelled) is policy, spelled
    assert settings.policy_for("127.0.0.2:5000/falco/rules") is None
    assert normalize_repository("ghcr.io:443/falcosecurity/rules") == "ghcr.io/falcosecurity/rules"
    assert normalize_repository("[::ffff:127.0.0.1]:5000/x") == "127.0.0.1:5000/x"
