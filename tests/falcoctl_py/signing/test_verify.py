"""Verification against the real registry: key and keyless, both storage forms, every bad case."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import pytest

from falcoctl_py.errors import ConfigError, VerificationError
from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import certs, keys, simplesigning, tlog
from falcoctl_py.signing.policy import CosignPolicy
from falcoctl_py.signing.sign import SignResult, sign_digest
from falcoctl_py.signing.store import SignatureStore
from falcoctl_py.signing.verify import verify_digest
from tests.falcoctl_py.signing.conftest import KeyPair, Sigstore, push_artifact
from tests.falcoctl_py.signing.standins import NOW, FulcioStandIn, RekorStandIn, new_key
from tests.realparts import Registry

IDENTITY = "https://github.com/falcosecurity/rules/.github/workflows/release.yaml@refs/tags/v1"
ISSUER = "https://token.actions.githubusercontent.com"
KEYLESS = CosignPolicy(
    certificate_identity_regexp="https://github.com/falcosecurity/rules/",
    certificate_oidc_issuer=ISSUER,
    source="index entry falco-rules",
)


def _repo(reg: Registry, name: str) -> str:
    return f"{reg.host}/sig/{name}"


def _pushed(client: RegistryClient, reg: Registry, name: str) -> tuple[str, str]:
    """A small artifact pushed to ``sig/NAME``: its repository and digest."""
    repo = _repo(reg, name)
    return repo, push_artifact(client, repo)


def _key_sign(
    store: SignatureStore, repo: str, digest: str, kp: KeyPair, *forms: str
) -> SignResult:
    return sign_digest(store=store, repository=repo, digest=digest, key=kp.private, forms=forms)


def _key_policy(kp: KeyPair) -> CosignPolicy:
    return CosignPolicy(key=str(kp.pub_file), source="--verify-key")


def _keyless_sign(
    store: SignatureStore,
    repo: str,
    digest: str,
    ss: Sigstore,
    *,
    forms: tuple[str, ...],
    identity: str = IDENTITY,
    issuer: str = ISSUER,
    fulcio: FulcioStandIn | None = None,
    not_before: dt.datetime | None = None,
    log: object = None,
) -> None:
    key = new_key()
    cert = (fulcio or ss.fulcio).issue(
        key.public_key(), identity=identity, issuer=issuer, not_before=not_before
    )
    sign_digest(
        store=store,
        repository=repo,
        digest=digest,
        key=key,
        certificate=cert,
        chain=[ss.fulcio.intermediate, ss.fulcio.root],
        log=log if log is not None else ss.rekor.record,  # type: ignore[arg-type]
        forms=forms,
    )


def _root(ss: Sigstore) -> certs.TrustedRoot:
    return certs.load_trusted_root(ss.root_file)


@pytest.mark.registry
@pytest.mark.parametrize("forms", [("bundle",), ("legacy",), ("bundle", "legacy")])
def test_key_signature_verifies_in_each_form(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
    forms: tuple[str, ...],
) -> None:
    repo, digest = _pushed(client, sig_registry, "key-" + "-".join(forms))
    _key_sign(store, repo, digest, keypair, *forms)
    result = verify_digest(
        reader=store, repository=repo, digest=digest, policy=_key_policy(keypair)
    )
    found = {s.form for s in result.signatures}
    expected = {"bundle": "sigstore-bundle", "legacy": "simple-signing"}
    assert found == {expected[f] for f in forms}
    pub = keys.load_public_key(keypair.pub_file.read_bytes(), source="pub")
    assert all(s.key_id == keys.key_id(pub) for s in result.signatures)
    assert result.reference == f"{repo}@{digest}"


@pytest.mark.registry
def test_bundle_found_through_the_referrers_tag_when_the_registry_has_no_api(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    repo, digest = _pushed(client, sig_registry, "fallback")
    result = _key_sign(store, repo, digest, keypair, "bundle")
    assert store.referrers(repo, digest) is None  # distribution 2.8: no referrers API
    assert result.referrers == "sha256-" + digest.split(":")[1]
    index = json.loads(client.get_manifest(repo, result.referrers).data)
    assert index["mediaType"] == bundles.OCI_INDEX
    [desc] = index["manifests"]
    assert desc["artifactType"] == bundles.BUNDLE_MEDIA_TYPE
    assert desc["digest"] == result.bundle_manifest
    # A second signature is added to the same index, not replacing the first.
    sign_digest(store=store, repository=repo, digest=digest, key=new_key(), forms=("bundle",))
    index = json.loads(client.get_manifest(repo, result.referrers).data)
    assert len(index["manifests"]) == 2
    verify_digest(reader=store, repository=repo, digest=digest, policy=_key_policy(keypair))


@pytest.mark.registry
@pytest.mark.parametrize(
    ("forms", "with_set", "with_proof"),
    [
        (("legacy",), True, False),
        (("bundle",), True, False),
        (("bundle",), False, True),
        (("bundle", "legacy"), True, True),
    ],
)
def test_keyless_signature_verifies_offline(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    sigstore: Sigstore,
    forms: tuple[str, ...],
    with_set: bool,
    with_proof: bool,
) -> None:
    name = f"keyless-{'-'.join(forms)}-{int(with_set)}{int(with_proof)}"
    repo, digest = _pushed(client, sig_registry, name)
    sigstore.rekor.with_set, sigstore.rekor.with_proof = with_set, with_proof
    _keyless_sign(store, repo, digest, sigstore, forms=forms)
    result = verify_digest(
        reader=store, repository=repo, digest=digest, policy=KEYLESS, trusted_root=_root(sigstore)
    )
    assert {s.signer for s in result.signatures} == {IDENTITY}
    assert {s.issuer for s in result.signatures} == {ISSUER}
    assert all(s.tlog_verified and s.log_index is not None for s in result.signatures)
    assert len(result.signatures) == len(forms)


def _attach_bundle(client: RegistryClient, repo: str, blob: bytes, subject: str) -> None:
    """Publish ``blob`` (already pushed) as a bundle referring to ``subject``, by the
    referrers tag schema."""
    described = client.get_manifest(repo, subject)
    manifest = bundles.referrer_manifest(
        bundle_blob=blob,
        subject_digest=subject,
        subject_size=len(described.data),
        subject_media_type=described.media_type,
    )
    client.push_manifest(
        repo, simplesigning.sha256_digest(manifest), manifest, simplesigning.OCI_MANIFEST
    )
    index = bundles.add_to_referrers_index(None, manifest)
    client.push_manifest(repo, bundles.referrers_tag(subject), index, bundles.OCI_INDEX)


def _reject(
    store: SignatureStore, repo: str, digest: str, policy: CosignPolicy, **kw: object
) -> str:
    with pytest.raises(VerificationError) as info:
        verify_digest(reader=store, repository=repo, digest=digest, policy=policy, **kw)  # type: ignore[arg-type]
    message = info.value.one_line()
    assert f"{repo}@{digest}" in message
    assert "\n" not in message
    return message


@pytest.mark.registry
def test_missing_signature_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    repo, digest = _pushed(client, sig_registry, "unsigned")
    message = _reject(store, repo, digest, _key_policy(keypair))
    assert "no cosign signature found" in message


@pytest.mark.registry
def test_wrong_key_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
    tmp_path: object,
) -> None:
    repo, digest = _pushed(client, sig_registry, "wrongkey")
    sign_digest(store=store, repository=repo, digest=digest, key=new_key())
    message = _reject(store, repo, digest, _key_policy(keypair))
    assert "does not verify with the key" in message


@pytest.mark.registry
@pytest.mark.parametrize("form", ["legacy", "bundle"])
def test_signature_over_another_digest_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
    form: str,
) -> None:
    repo = _repo(sig_registry, f"otherdigest-{form}")
    signed = push_artifact(client, repo, b"signed rules")
    other = push_artifact(client, repo, b"other rules")
    result = _key_sign(store, repo, signed, keypair, form)
    # Copy the signature documents of `signed` to where `other`'s would be.
    if form == "legacy":
        sig = client.get_manifest(repo, result.sig_tag)
        client.push_manifest(repo, simplesigning.sig_tag(other), sig.data, sig.media_type)
    else:
        index = client.get_manifest(repo, result.referrers)
        client.push_manifest(repo, bundles.referrers_tag(other), index.data, index.media_type)
    message = _reject(store, repo, other, _key_policy(keypair))
    assert "another" in message and ("digest" in message or "subject" in message)


@pytest.mark.registry
def test_bundle_whose_statement_names_another_digest_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    repo = _repo(sig_registry, "otherstatement")
    signed = push_artifact(client, repo, b"signed rules")
    other = push_artifact(client, repo, b"other rules")
    result = _key_sign(store, repo, signed, keypair, "bundle")
    blob = store.get_blob(
        repo, bundles.bundle_layer(client.get_manifest(repo, result.bundle_manifest).data)
    )
    _attach_bundle(client, repo, blob, other)
    message = _reject(store, repo, other, _key_policy(keypair))
    assert f"the signature is for another digest ({signed})" in message


@pytest.mark.registry
def test_tampered_payload_is_refused(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    repo, digest = _pushed(client, sig_registry, "tampered")
    result = _key_sign(store, repo, digest, keypair, "legacy")
    manifest = json.loads(client.get_manifest(repo, result.sig_tag).data)
    layer = manifest["layers"][0]
    payload = json.loads(client.get_blob_bytes(repo, layer["digest"]))
    payload["optional"] = {"note": "added after signing"}
    tampered = json.dumps(payload).encode()
    layers, blobs = simplesigning.build_sig_manifest(
        [simplesigning.SigLayer(tampered, layer["annotations"])]
    )
    for blob in blobs.values():
        client.push_blob(repo, blob)
    client.push_manifest(repo, result.sig_tag, layers, simplesigning.OCI_MANIFEST)
    message = _reject(store, repo, digest, _key_policy(keypair))
    assert "signature does not verify" in message


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
    cert = sigstore.fulcio.issue(key.public_key(), identity=IDENTITY, issuer=ISSUER)
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
            reader=None,
            repository="r.test/x",
            digest="sha256:" + "0" * 64,  # type: ignore[arg-type]
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
