"""Keyless verification (identities, issuers, chains, log entries) and malformed bundles."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import pytest

from falcoctl_py.errors import ConfigError
from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import certs, tlog
from falcoctl_py.signing.policy import CosignPolicy
from falcoctl_py.signing.sign import sign_digest
from falcoctl_py.signing.store import SignatureStore
from falcoctl_py.signing.verify import verify_digest
from tests.falcoctl_py.signing.conftest import KeyPair, Sigstore
from tests.falcoctl_py.signing.standins import NOW, FulcioStandIn, RekorStandIn, new_key
from tests.falcoctl_py.signing.verify_parts import (
    IDENTITY,
    ISSUER,
    KEYLESS,
    _attach_bundle,
    _key_policy,
    _keyless_sign,
    _pushed,
    _reject,
    _root,
)
from tests.realparts import Registry


@pytest.mark.registry
@pytest.mark.parametrize(
    ("identity", "issuer", "reason"),
    [
        (
            "https://github.com/evil/rules/.github/workflows/x.yaml@refs/heads/main",
            ISSUER,
            "the certificate is for https://github.com/evil/rules",
        ),
        (IDENTITY, "https://accounts.google.com", "issued by https://accounts.google.com"),
    ],
)
def test_certificate_for_another_identity_or_issuer_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
    identity: str,
    issuer: str,
    reason: str,
) -> None:
    name = "identity-" + str(abs(hash((identity, issuer))) % 10000)
    repo, digest = _pushed(client, sig_registry, name)
    _keyless_sign(
        store, repo, digest, sigstore, forms=("bundle", "legacy"), identity=identity, issuer=issuer
    )
    message = _reject(store, repo, digest, KEYLESS, trusted_root=_root(sigstore))
    assert reason in message


@pytest.mark.registry
def test_identity_exact_match_and_email_identity(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
) -> None:
    repo, digest = _pushed(client, sig_registry, "email")
    _keyless_sign(
        store,
        repo,
        digest,
        sigstore,
        forms=("bundle",),
        identity="dev@example.com",
        issuer="https://accounts.example.com",
    )
    exact = CosignPolicy(
        certificate_identity="dev@example.com",
        certificate_oidc_issuer_regexp=r"^https://accounts\.example\.com$",
    )
    result = verify_digest(
        reader=store, repository=repo, digest=digest, policy=exact, trusted_root=_root(sigstore)
    )
    assert result.signatures[0].signer == "dev@example.com"
    near = dataclasses.replace(exact, certificate_identity="dev@example.co")
    assert "not dev@example.co" in _reject(store, repo, digest, near, trusted_root=_root(sigstore))


@pytest.mark.registry
def test_expired_certificate_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
) -> None:
    repo, digest = _pushed(client, sig_registry, "expired")
    # The certificate lived 10 minutes, an hour before the log integrated the signature.
    _keyless_sign(
        store,
        repo,
        digest,
        sigstore,
        forms=("bundle", "legacy"),
        not_before=NOW - dt.timedelta(hours=1),
    )
    message = _reject(store, repo, digest, KEYLESS, trusted_root=_root(sigstore))
    assert "not valid at the signing time" in message


@pytest.mark.registry
def test_certificate_from_an_untrusted_ca_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
) -> None:
    repo, digest = _pushed(client, sig_registry, "untrusted-ca")
    rogue = FulcioStandIn(name="rogue")
    _keyless_sign(store, repo, digest, sigstore, forms=("bundle", "legacy"), fulcio=rogue)
    message = _reject(store, repo, digest, KEYLESS, trusted_root=_root(sigstore))
    assert "does not chain to a certificate authority of the trusted root" in message


@pytest.mark.registry
def test_malformed_bundle_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    repo, digest = _pushed(client, sig_registry, "malformed")
    blob = b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": 7}'
    client.push_blob(repo, blob)
    client.push_blob(repo, bundles.EMPTY_BLOB)
    _attach_bundle(client, repo, blob, digest)
    message = _reject(store, repo, digest, _key_policy(keypair))
    assert "sigstore bundle" in message and "verificationMaterial" in message


def _tamper_time(rekor: RekorStandIn):  # type: ignore[no-untyped-def]
    def record(body: bytes, kind: str) -> tlog.TlogEntry:
        entry = rekor.record(body, kind)
        return dataclasses.replace(entry, integrated_time=entry.integrated_time + 1, proof=None)

    return record


def _bad_proof(rekor: RekorStandIn):  # type: ignore[no-untyped-def]
    def record(body: bytes, kind: str) -> tlog.TlogEntry:
        entry = rekor.record(body, kind)
        assert entry.proof is not None
        proof = dataclasses.replace(entry.proof, hashes=[bytes(32), *entry.proof.hashes[1:]])
        return dataclasses.replace(entry, proof=proof, set=None)

    return record


def _other_body(rekor: RekorStandIn):  # type: ignore[no-untyped-def]
    def record(body: bytes, kind: str) -> tlog.TlogEntry:
        doc = json.loads(body)
        if kind == "hashedrekord":
            doc["spec"]["data"]["hash"]["value"] = "0" * 64
        else:
            doc["spec"]["payloadHash"]["value"] = "0" * 64
        return rekor.record(tlog.canonical_json(doc), kind)

    return record


@pytest.mark.registry
@pytest.mark.parametrize(
    ("make_log", "reason"),
    [
        (lambda ss: RekorStandIn().record, "unknown transparency log"),
        (lambda ss: _tamper_time(ss.rekor), "signed entry timestamp does not verify"),
        (lambda ss: _bad_proof(ss.rekor), "inclusion proof does not lead to its root hash"),
        (lambda ss: _other_body(ss.rekor), "records another signature"),
    ],
    ids=["unknown-log", "bad-set", "bad-proof", "other-body"],
)
def test_log_entry_that_does_not_verify_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
    make_log: object,
    reason: str,
    request: pytest.FixtureRequest,
) -> None:
    repo, digest = _pushed(client, sig_registry, "tlog-" + request.node.callspec.id)
    forms = ("bundle",) if "proof" in reason else ("bundle", "legacy")
    _keyless_sign(store, repo, digest, sigstore, forms=forms, log=make_log(sigstore))  # type: ignore[operator]
    message = _reject(store, repo, digest, KEYLESS, trusted_root=_root(sigstore))
    assert reason in message


@pytest.mark.registry
def test_ignore_tlog_accepts_keyless_without_log_entries(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
) -> None:
    repo, digest = _pushed(client, sig_registry, "ignore-tlog")
    key = new_key()
    # No log entry: the signing time is the verifier's clock, so the certificate is valid from
    # a minute ago (the stand-ins' NOW is when the suite started, and a suite can run longer
    # than the certificate's ten minutes).
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = sigstore.fulcio.issue(key.public_key(), identity=IDENTITY, issuer=ISSUER,
                                 not_before=now - dt.timedelta(minutes=1))  # fmt: skip
    sign_digest(
        store=store,
        repository=repo,
        digest=digest,
        key=key,
        certificate=cert,
        forms=("bundle", "legacy"),
    )
    message = _reject(store, repo, digest, KEYLESS, trusted_root=_root(sigstore))
    assert "no transparency-log entry" in message
    relaxed = dataclasses.replace(KEYLESS, ignore_tlog=True)
    result = verify_digest(
        reader=store, repository=repo, digest=digest, policy=relaxed, trusted_root=_root(sigstore)
    )
    assert result.signatures[0].tlog_verified is False


def test_keyless_without_trusted_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a trusted root"):
        verify_digest(
            reader=None,  # type: ignore[arg-type]
            repository="r.test/x",
            digest="sha256:" + "0" * 64,
            policy=KEYLESS,
        )


def test_cosign_bundle_annotation_round_trip(sigstore: Sigstore) -> None:
    from falcoctl_py.signing.sign import cosign_bundle_annotation

    entry = sigstore.rekor.record(b'{"kind":"hashedrekord"}', "hashedrekord")
    doc = json.loads(cosign_bundle_annotation(entry))
    assert set(doc) == {"SignedEntryTimestamp", "Payload"}
    assert set(doc["Payload"]) == {"body", "integratedTime", "logIndex", "logID"}
    assert doc["Payload"]["logID"] == sigstore.rekor.log_id.hex()
    back = tlog.entry_from_cosign_bundle(doc)
    assert base64.b64encode(back.body) == doc["Payload"]["body"].encode()
    tlog.verify_entry(back, _root(sigstore))


@pytest.mark.registry
def test_chain_annotation_supplies_the_intermediate(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
) -> None:
    repo, digest = _pushed(client, sig_registry, "chain")
    _keyless_sign(store, repo, digest, sigstore, forms=("bundle", "legacy"))
    doc = json.loads(sigstore.root_file.read_bytes())
    doc["certificateAuthorities"][0]["certChain"]["certificates"].pop(0)  # the root CA only
    root = certs.parse_trusted_root(json.dumps(doc).encode(), source="root-only")
    result = verify_digest(
        reader=store, repository=repo, digest=digest, policy=KEYLESS, trusted_root=root
    )
    # The .sig layer carries dev.sigstore.cosign/chain; the v0.3 bundle carries the leaf only.
    assert [s.form for s in result.signatures] == ["simple-signing"]


def test_identity_regexps_run_in_linear_time_as_cosigns_re2() -> None:
    from falcoctl_py.errors import ConfigError
    from falcoctl_py.signing.verify import _matches

    # exponential with a backtracking engine (minutes); RE2 answers at once
    assert not _matches("a" * 5000 + "!", "", "(a+)+b")
    assert _matches("https://github.com/falcosecurity/rules/.github/workflows/r.yaml@refs/tags/1",
                    "", "^https://github.com/falcosecurity/rules/")
    with pytest.raises(ConfigError, match="invalid identity or issuer regexp"):
        _matches("x", "", "(unclosed")
