"""Signature policies: index entries, the config file, the environment and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoctl_py.errors import ConfigError
from falcoctl_py.index.model import parse_index
from falcoctl_py.signing.policy import entry_policy, policy_from_block, settings_from_config

INDEX = b"""
- name: falco-rules
  type: rulesfile
  registry: ghcr.io
  repository: falcosecurity/rules/falco-rules
  signature:
    cosign:
      certificate-oidc-issuer: https://token.actions.githubusercontent.com
      certificate-identity-regexp: https://github.com/falcosecurity/rules/
- name: keyed
  type: rulesfile
  registry: r.test
  repository: keyed
  signature:
    cosign:
      key: /etc/keys/cosign.pub
- name: plain
  type: rulesfile
  registry: r.test
  repository: plain
"""


def test_index_entries_give_falcoctls_policies() -> None:
    entries = {e.name: e for e in parse_index(INDEX, source="index.yaml")}
    keyless = entry_policy(entries["falco-rules"])
    assert keyless is not None and keyless.keyless
    assert keyless.certificate_identity_regexp == "https://github.com/falcosecurity/rules/"
    assert keyless.certificate_oidc_issuer == "https://token.actions.githubusercontent.com"
    keyed = entry_policy(entries["keyed"])
    assert keyed is not None and keyed.key == "/etc/keys/cosign.pub"
    assert entry_policy(entries["plain"]) is None
    assert entry_policy(None) is None


def test_user_choices_win_over_the_index() -> None:
    entry = parse_index(INDEX, source="i")[0]
    data = {
        "artifact": {
            "verify": {
                "key": "/cfg.pub",
                "signatures": [
                    {"repository": "ghcr.io/falcosecurity/*", "cosign": {"key": "/falco.pub"}}
                ],
            }
        }
    }
    env: dict[str, str] = {}
    settings = settings_from_config(data, env=env)
    assert settings.policy_for("ghcr.io/falcosecurity/rules/falco-rules", entry).key == "/falco.pub"  # type: ignore[union-attr]
    assert settings.policy_for("r.test/plain", None).key == "/cfg.pub"  # type: ignore[union-attr]
    flagged = settings_from_config(data, env=env, verify_key="/flag.pub")
    assert flagged.policy_for("ghcr.io/falcosecurity/x", entry).key == "/flag.pub"  # type: ignore[union-attr]
    bare = settings_from_config({}, env=env)
    assert bare.policy_for("ghcr.io/falcosecurity/rules/falco-rules", entry).keyless  # type: ignore[union-attr]
    assert bare.policy_for("r.test/plain", None) is None


@pytest.mark.parametrize(
    ("data", "env", "flag", "off"),
    [
        ({}, {}, None, False),
        ({"artifact": {"noverify": True}}, {}, None, True),
        ({"artifact": {"noVerify": "true"}}, {}, None, True),
        ({"artifact": {"noverify": True}}, {"FALCOCTL_ARTIFACT_NOVERIFY": "false"}, None, False),
        ({}, {"FALCOCTL_ARTIFACT_NOVERIFY": "1"}, None, True),
        ({}, {}, True, True),
    ],
)
def test_no_verify_layers(
    data: dict[str, object], env: dict[str, str], flag: bool | None, off: bool
) -> None:
    assert settings_from_config(data, env=env, no_verify=flag).no_verify is off


def test_trusted_root_from_env_config_and_flag() -> None:
    data = {"artifact": {"verify": {"trustedRoot": "/cfg.json"}}}
    assert settings_from_config(data, env={}).trusted_root == Path("/cfg.json")
    env = {"FALCOCTL_ARTIFACT_VERIFY_TRUSTEDROOT": "/env.json"}
    assert settings_from_config(data, env=env).trusted_root == Path("/env.json")
    flagged = settings_from_config(data, env=env, trusted_root=Path("/flag.json"))
    assert flagged.trusted_root == Path("/flag.json")


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ({}, "neither a key nor a certificate identity"),
        ({"certificate-identity": "a@b"}, "no certificate-oidc-issuer"),
        ({"certificate-identity-regexp": "(", "certificate-oidc-issuer": "x"}, "invalid regular"),
        ({"key": "k", "ignore-tlog": "maybe"}, "not a boolean"),
        ("text", "not a mapping"),
    ],
)
def test_bad_policy_blocks_are_config_errors(block: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        policy_from_block(block, source="index entry x")
