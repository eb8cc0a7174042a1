"""Verification against the real registry: key and keyless, both storage forms, every bad case."""

from __future__ import annotations

import json

import pytest

from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import keys, simplesigning
from falcoctl_py.signing.sign import sign_digest
from falcoctl_py.signing.store import SignatureStore
from falcoctl_py.signing.verify import verify_digest
from tests.falcoctl_py.signing.conftest import KeyPair, Sigstore, push_artifact
from tests.falcoctl_py.signing.standins import new_key
from tests.falcoctl_py.signing.verify_parts import (
    IDENTITY,
    ISSUER,
    KEYLESS,
    _attach_bundle,
    _key_policy,
    _key_sign,
    _keyless_sign,
    _pushed,
    _reject,
    _repo,
    _root,
)
from tests.realparts import Registry


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
