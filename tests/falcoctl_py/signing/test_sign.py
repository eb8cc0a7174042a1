"""What ``sign_digest`` writes, read back by a second client (skopeo) and checked by hand."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing.sign import sign_digest
from falcoctl_py.signing.store import SignatureStore
from tests.falcoctl_py.signing.conftest import KeyPair, push_artifact
from tests.falcoctl_py.signing.standins import new_key
from tests.realparts import Registry, need_binary


def _skopeo_raw(ref: str) -> bytes:
    skopeo = need_binary("skopeo")
    return subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


@pytest.mark.registry
@pytest.mark.skopeo
def test_sig_tag_read_by_skopeo_verifies_by_the_spec(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
    tmp_path: Path,
) -> None:
    repo = f"{sig_registry.host}/sig/skopeo"
    digest = push_artifact(client, repo)
    result = sign_digest(store=store, repository=repo, digest=digest, key=keypair.private)
    manifest = json.loads(_skopeo_raw(f"{repo}:{result.sig_tag}"))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = client.get_blob_bytes(repo, layer["digest"])
    doc = json.loads(payload)
    assert doc["critical"]["image"]["docker-manifest-digest"] == digest
    assert doc["critical"]["identity"]["docker-reference"] == repo
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    keypair.private.public_key().verify(signature, payload, ec.ECDSA(hashes.SHA256()))

    index = json.loads(_skopeo_raw(f"{repo}:{result.referrers}"))
    [desc] = index["manifests"]
    assert desc["artifactType"] == bundles.BUNDLE_MEDIA_TYPE
    referrer = json.loads(_skopeo_raw(f"{repo}@{desc['digest']}"))
    assert referrer["subject"]["digest"] == digest
    blob = json.loads(client.get_blob_bytes(repo, referrer["layers"][0]["digest"]))
    env = blob["dsseEnvelope"]
    statement = base64.b64decode(env["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (
        len(env["payloadType"]),
        env["payloadType"].encode(),
        len(statement),
        statement,
    )
    keypair.private.public_key().verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256())
    )
    assert json.loads(statement)["subject"][0]["digest"]["sha256"] == digest.split(":")[1]


@pytest.mark.registry
def test_signatures_accumulate_and_resigning_keeps_one_index(
    client: RegistryClient,
    store: SignatureStore,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    repo = f"{sig_registry.host}/sig/accumulate"
    digest = push_artifact(client, repo)
    first = sign_digest(store=store, repository=repo, digest=digest, key=keypair.private)
    sign_digest(store=store, repository=repo, digest=digest, key=new_key())
    sig = json.loads(client.get_manifest(repo, first.sig_tag).data)
    assert len(sig["layers"]) == 2
    assert (
        len({layer["annotations"]["dev.cosignproject.cosign/signature"] for layer in sig["layers"]})
        == 2
    )
    index = json.loads(client.get_manifest(repo, first.referrers).data)
    assert len(index["manifests"]) == 2


class _ReferrersApiStore(SignatureStore):
    """The real registry plus the one thing distribution 2.8 lacks: a referrers API that
    indexes pushed manifests by their ``subject`` (as an OCI 1.1 registry does)."""

    def __init__(self, client: RegistryClient) -> None:
        super().__init__(client)
        self.index: dict[str, list[dict[str, object]]] = {}

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        digest = super().push_manifest(repository, reference, data, media_type)
        doc = json.loads(data)
        if "subject" in doc:
            self.index.setdefault(doc["subject"]["digest"], []).append(
                {
                    "mediaType": media_type,
                    "digest": digest,
                    "size": len(data),
                    "artifactType": doc.get("artifactType"),
                }
            )
        return digest

    def referrers(self, repository: str, digest: str) -> dict[str, object] | None:
        return {
            "schemaVersion": 2,
            "mediaType": bundles.OCI_INDEX,
            "manifests": self.index.get(digest, []),
        }


@pytest.mark.registry
def test_registry_with_a_referrers_api_gets_no_fallback_tag(
    client: RegistryClient,
    sig_registry: Registry,
    keypair: KeyPair,
) -> None:
    from falcoctl_py.signing.policy import CosignPolicy
    from falcoctl_py.signing.verify import verify_digest

    repo = f"{sig_registry.host}/sig/api"
    digest = push_artifact(client, repo)
    store = _ReferrersApiStore(client)
    result = sign_digest(
        store=store,
        repository=repo,
        digest=digest,
        key=keypair.private,
        forms=("bundle",),
    )
    assert result.referrers == "api"
    assert "sha256-" + digest.split(":")[1] not in client.list_tags(repo)
    checked = verify_digest(
        reader=store, repository=repo, digest=digest, policy=CosignPolicy(key=str(keypair.pub_file))
    )
    assert [s.form for s in checked.signatures] == ["sigstore-bundle"]
