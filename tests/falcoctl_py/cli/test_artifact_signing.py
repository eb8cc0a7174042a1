"""``artifact sign``, ``artifact verify`` and signature checks of ``artifact install``, end to end.

The real registry, the real CLI entry point, an index (file backend) whose entries carry
falcoctl's ``signature.cosign`` blocks, keys and Sigstore stand-ins made in the test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from falcoctl_py.errors import NotFoundError
from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import keys
from falcoctl_py.signing.sign import sign_digest
from falcoctl_py.signing.store import SignatureStore
from tests.falcoctl_py.cli.clirun import Run, run_cli
from tests.falcoctl_py.signing.standins import (
    FulcioStandIn,
    RekorStandIn,
    new_key,
    trusted_root_json,
)
from tests.realparts import Registry

IDENTITY = "https://github.com/falcosecurity/rules/.github/workflows/release.yaml@refs/tags/v1"
ISSUER = "https://token.actions.githubusercontent.com"
RULES = "- rule: test\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n"


@dataclass
class Env:
    registry: Registry
    config: Path
    home: Path
    pub: Path
    key: Path
    private: object
    fulcio: FulcioStandIn
    rekor: RekorStandIn
    trusted_root: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> Run:
        return run_cli(self.capsys, "--config", str(self.config), *args)

    def push(self, repo: str) -> str:
        """Push a rules file with the real CLI; return its digest."""
        rules = self.home / "rules.yaml"
        rules.write_text(RULES)
        run = self.run(
            "registry",
            "push",
            f"{self.registry.host}/{repo}:1.0.0",
            str(rules),
            "--type",
            "rulesfile",
            "--version",
            "1.0.0",
            "--plain-http",
            "-o",
            "json",
        )
        assert run.code == 0, run.stderr
        return str(json.loads(run.stdout)["digest"])

    def install(self, ref: str, *extra: str) -> tuple[Run, Path]:
        dest = self.home / "rules" / ref.replace("/", "_").replace(":", "_")
        run = self.run(
            "artifact",
            "install",
            ref,
            "--plain-http",
            "--rulesfiles-dir",
            str(dest),
            "--state-dir",
            str(self.home / "state"),
            *extra,
        )
        return run, dest


def _write_config(env: Env, extra: dict[str, object] | None = None) -> None:
    host = env.registry.host
    index = [
        {
            "name": "keyed-rules",
            "type": "rulesfile",
            "registry": host,
            "repository": "cli/keyed-rules",
            "signature": {"cosign": {"key": str(env.pub)}},
        },
        {
            "name": "keyless-rules",
            "type": "rulesfile",
            "registry": host,
            "repository": "cli/keyless-rules",
            "signature": {
                "cosign": {
                    "certificate-oidc-issuer": ISSUER,
                    "certificate-identity-regexp": "https://github.com/falcosecurity/rules/",
                }
            },
        },
        {
            "name": "plain-rules",
            "type": "rulesfile",
            "registry": host,
            "repository": "cli/plain-rules",
        },
    ]
    index_file = env.home / "index.yaml"
    index_file.write_text(yaml.safe_dump(index))
    config: dict[str, object] = {
        "indexes": [{"name": "test", "url": f"file://{index_file}", "backend": "file"}],
        "artifact": {"verify": {"trustedRoot": str(env.trusted_root)}},
    }
    if extra:
        config["artifact"] = {**config["artifact"], **extra}  # type: ignore[dict-item]
    env.config.write_text(yaml.safe_dump(config))


@pytest.fixture
def env(
    isolated_home: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Env:
    key = new_key()
    (isolated_home / "cosign.key").write_bytes(keys.encrypt_private_key(key, "s3cret"))
    (isolated_home / "cosign.pub").write_bytes(keys.public_key_pem(key.public_key()))
    monkeypatch.setenv("COSIGN_PASSWORD", "s3cret")
    fulcio, rekor = FulcioStandIn(), RekorStandIn()
    root = isolated_home / "trusted_root.json"
    root.write_bytes(trusted_root_json([fulcio], [rekor]))
    e = Env(
        registry,
        isolated_home / "falcoctl.yaml",
        isolated_home,
        isolated_home / "cosign.pub",
        isolated_home / "cosign.key",
        key,
        fulcio,
        rekor,
        root,
        capsys,
    )
    _write_config(e)
    return e


def _one_line_error(run: Run) -> str:
    assert run.code != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.mark.registry
def test_sign_then_verify_then_install(env: Env) -> None:
    digest = env.push("cli/keyed-rules")
    ref = f"{env.registry.host}/cli/keyed-rules:1.0.0"
    run = env.run("artifact", "sign", ref, "--key", str(env.key), "--plain-http", "-o", "json")
    assert run.code == 0, run.stderr
    signed = json.loads(run.stdout)
    assert signed["digest"] == digest
    assert signed["sig_tag"] == "sha256-" + digest.split(":")[1] + ".sig"
    assert signed["referrers"] == "sha256-" + digest.split(":")[1]

    run = env.run(
        "artifact", "verify", ref, "--verify-key", str(env.pub), "--plain-http", "-o", "json"
    )
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["reference"] == f"{env.registry.host}/cli/keyed-rules@{digest}"
    assert sorted(s["form"] for s in result["signatures"]) == ["sigstore-bundle", "simple-signing"]

    # Human output: a table of who signed what.
    run = env.run("artifact", "verify", "keyed-rules:1.0.0", "--plain-http")
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines()[0].split() == [
        "FORM",
        "SIGNER",
        "ISSUER",
        "SIGNED",
        "AT",
        "LOG",
        "INDEX",
    ]
    assert "verified" in run.stderr

    run, dest = env.install("keyed-rules:1.0.0")
    assert run.code == 0, run.stderr
    assert (dest / "rules.yaml").read_text() == RULES


@pytest.mark.registry
def test_install_refuses_an_unsigned_artifact_and_writes_nothing(env: Env) -> None:
    env.push("cli/keyed-rules")
    run, dest = env.install("keyed-rules:1.0.0")
    line = _one_line_error(run)
    assert f"{env.registry.host}/cli/keyed-rules@sha256:" in line
    assert "no cosign signature found" in line
    assert not dest.exists() or not any(dest.iterdir())


@pytest.mark.registry
def test_install_refuses_a_signature_by_another_key(env: Env) -> None:
    digest = env.push("cli/keyed-rules")
    store = SignatureStore(RegistryClient(plain_http=True))
    sign_digest(
        store=store, repository=f"{env.registry.host}/cli/keyed-rules", digest=digest, key=new_key()
    )
    run, dest = env.install("keyed-rules:1.0.0")
    assert "does not verify with the key" in _one_line_error(run)
    assert not (dest / "rules.yaml").exists()


@pytest.mark.registry
@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_no_verify_installs_with_a_warning(
    env: Env, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.push("cli/keyed-rules")
    extra: tuple[str, ...] = ()
    if how == "flag":
        extra = ("--no-verify",)
    elif how == "env":
        monkeypatch.setenv("FALCOCTL_ARTIFACT_NOVERIFY", "true")
    else:
        _write_config(env, {"noVerify": True})
    run, dest = env.install("keyed-rules:1.0.0", *extra)
    assert run.code == 0, run.stderr
    assert "signature verification is disabled" in run.stderr
    assert (dest / "rules.yaml").exists()


@pytest.mark.registry
def test_config_key_applies_to_full_references(env: Env) -> None:
    _write_config(env, {"verify": {"key": str(env.pub), "trustedRoot": str(env.trusted_root)}})
    env.push("cli/plain-rules")
    ref = f"{env.registry.host}/cli/plain-rules:1.0.0"
    run, dest = env.install(ref)
    assert "no cosign signature found (required by artifact.verify.key)" in _one_line_error(run)
    assert env.run("artifact", "sign", ref, "--key", str(env.key), "--plain-http").code == 0
    run, dest = env.install(ref)
    assert run.code == 0, run.stderr
    assert (dest / "rules.yaml").exists()


@pytest.mark.registry
def test_unsigned_artifact_without_policy_installs(env: Env) -> None:
    env.push("cli/plain-rules")
    run, dest = env.install("plain-rules:1.0.0")
    assert run.code == 0, run.stderr
    assert (dest / "rules.yaml").exists()


@pytest.mark.registry
@pytest.mark.parametrize(("identity", "ok"), [(IDENTITY, True), ("mallory@example.com", False)])
def test_keyless_index_policy_with_a_trusted_root_file(env: Env, identity: str, ok: bool) -> None:
    digest = env.push("cli/keyless-rules")
    key = new_key()
    cert = env.fulcio.issue(key.public_key(), identity=identity, issuer=ISSUER)
    store = SignatureStore(RegistryClient(plain_http=True))
    sign_digest(
        store=store,
        repository=f"{env.registry.host}/cli/keyless-rules",
        digest=digest,
        key=key,
        certificate=cert,
        chain=[env.fulcio.intermediate, env.fulcio.root],
        log=env.rekor.record,
    )
    run, dest = env.install("keyless-rules:1.0.0")
    if ok:
        assert run.code == 0, run.stderr
        assert (dest / "rules.yaml").exists()
        run = env.run("artifact", "verify", "keyless-rules:1.0.0", "--plain-http", "-o", "json")
        assert run.code == 0, run.stderr
        signers = {s["signer"] for s in json.loads(run.stdout)["signatures"]}
        assert signers == {IDENTITY}
    else:
        assert "the certificate is for mallory@example.com" in _one_line_error(run)
        assert not (dest / "rules.yaml").exists()


@pytest.mark.registry
def test_verify_without_a_policy_is_a_usage_error(env: Env) -> None:
    env.push("cli/plain-rules")
    run = env.run("artifact", "verify", "plain-rules:1.0.0", "--plain-http")
    assert run.code == 2
    assert "no signature policy" in _one_line_error(run)


@pytest.mark.registry
def test_sign_with_a_wrong_password_fails_cleanly(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.push("cli/plain-rules")
    monkeypatch.setenv("COSIGN_PASSWORD", "Xyzzy-42")
    run = env.run(
        "artifact",
        "sign",
        f"{env.registry.host}/cli/plain-rules:1.0.0",
        "--key",
        str(env.key),
        "--plain-http",
    )
    assert "wrong password" in _one_line_error(run)
    assert "Xyzzy-42" not in run.stderr


def _push_with_sign_key(env: Env, version: str, *extra: str) -> Run:
    """``registry push`` of the RULES as keyed-rules:VERSION, signed with the env's key."""
    rules = env.home / "rules.yaml"
    rules.write_text(RULES)
    ref = f"{env.registry.host}/cli/keyed-rules:{version}"
    return env.run(
        "registry", "push", ref, str(rules), "--type", "rulesfile", "--version", version,
        "--sign-key", str(env.key), "--plain-http", *extra,
    )


@pytest.mark.registry
def test_registry_push_sign_key_signs_what_it_pushed(env: Env) -> None:
    run = _push_with_sign_key(env, "2.0.0", "-o", "json")
    assert run.code == 0, run.stderr
    digest = json.loads(run.stdout)["digest"]
    run = env.run("artifact", "verify", "keyed-rules:2.0.0", "--plain-http", "-o", "json")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert {s["digest"] for s in result["signatures"]} == {digest}
    assert len(result["signatures"]) == 2


@pytest.mark.registry
def test_registry_push_with_a_bad_sign_key_pushes_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "nope")
    run = _push_with_sign_key(env, "3.0.0")
    assert "cannot decrypt the cosign private key" in _one_line_error(run)
    with RegistryClient(plain_http=True) as client, pytest.raises(NotFoundError):
        client.list_tags(f"{env.registry.host}/cli/keyed-rules")  # the repository was never made


@pytest.mark.registry
def test_install_verify_key_flag_overrides_the_index(env: Env) -> None:
    digest = env.push("cli/plain-rules")
    other = new_key()
    other_pub = env.home / "other.pub"
    other_pub.write_bytes(keys.public_key_pem(other.public_key()))
    store = SignatureStore(RegistryClient(plain_http=True))
    sign_digest(
        store=store, repository=f"{env.registry.host}/cli/plain-rules", digest=digest, key=other
    )
    run, dest = env.install("plain-rules:1.0.0", "--verify-key", str(env.pub))
    assert "does not verify with the key" in _one_line_error(run)
    assert not (dest / "rules.yaml").exists()
    run, dest = env.install("plain-rules:1.0.0", "--verify-key", str(other_pub))
    assert run.code == 0, run.stderr
    assert (dest / "rules.yaml").exists()
