"""Sigstore bundles and their OCI referrer manifests, field by field."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from falcoctl_py.errors import VerificationError
from falcoctl_py.signing import bundle as b
from falcoctl_py.signing import keys
from tests.falcoctl_py.signing.standins import new_key

DIGEST = "sha256:" + hashlib.sha256(b"manifest").hexdigest()


def test_dsse_bundle_fields_and_signature() -> None:
    key = new_key()
    statement = b.make_statement(name="r.test/x", digest=DIGEST)
    assert json.loads(statement) == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "r.test/x", "digest": {"sha256": DIGEST.split(":")[1]}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }
    pae = b.pae(b.INTOTO_PAYLOAD_TYPE, statement)
    assert pae.startswith(b"DSSEv1 28 application/vnd.in-toto+json %d " % len(statement))
    blob = b.make_bundle(statement=statement, signature=keys.sign(key, pae), key_hint="h")
    doc = json.loads(blob)
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"] == {"publicKey": {"hint": "h"}, "tlogEntries": []}
    assert doc["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    parsed = b.parse_bundle(blob)
    assert parsed.content == "dsse-envelope" and parsed.subject_digests == [DIGEST]
    assert keys.verify(key.public_key(), parsed.signature, parsed.signed)


def test_message_signature_bundle_is_bound_to_the_digest() -> None:
    key = new_key()
    raw = hashlib.sha256(b"manifest").digest()
    doc = {
        "mediaType": b.BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(raw).decode()},
            "signature": base64.b64encode(keys.sign(key, b"manifest")).decode(),
        },
    }
    parsed = b.parse_bundle(json.dumps(doc).encode())
    assert parsed.subject_digests == [DIGEST]
    assert keys.verify(key.public_key(), parsed.signature, parsed.signed, prehashed=True)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"{", "not JSON"),
        (b'{"mediaType": "x"}', "unknown mediaType"),
        (
            json.dumps({"mediaType": b.BUNDLE_MEDIA_TYPE, "verificationMaterial": {}}).encode(),
            "neither a DSSE envelope",
        ),
        (
            json.dumps(
                {
                    "mediaType": b.BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": {},
                    "dsseEnvelope": {
                        "payload": "e30=",
                        "payloadType": "text/plain",
                        "signatures": [{"sig": ""}],
                    },
                }
            ).encode(),
            "in-toto",
        ),
        (
            json.dumps(
                {
                    "mediaType": b.BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": {"certificate": {"rawBytes": "AAAA"}},
                    "messageSignature": {},
                }
            ).encode(),
            "certificate cannot be parsed",
        ),
        (
            json.dumps(
                {
                    "mediaType": b.BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": {"tlogEntries": [{"logIndex": "x"}]},
                    "messageSignature": {},
                }
            ).encode(),
            "not an integer",
        ),
    ],
)
def test_malformed_bundles_raise_verification_errors(blob: bytes, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        b.parse_bundle(blob)


def test_referrer_manifest_and_fallback_index_follow_the_spec() -> None:
    blob = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
    manifest = b.referrer_manifest(
        bundle_blob=blob,
        subject_digest=DIGEST,
        subject_size=8,
        subject_media_type="application/vnd.oci.image.index.v1+json",
    )
    doc = json.loads(manifest)
    assert doc["artifactType"] == b.BUNDLE_MEDIA_TYPE
    assert doc["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert doc["layers"][0]["mediaType"] == b.BUNDLE_MEDIA_TYPE
    assert doc["subject"] == {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": DIGEST,
        "size": 8,
    }
    assert doc["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert doc["annotations"]["dev.sigstore.bundle.predicateType"] == b.COSIGN_SIGN_PREDICATE
    assert b.referrers_tag(DIGEST) == DIGEST.replace(":", "-")
    index = b.add_to_referrers_index(None, manifest)
    again = b.add_to_referrers_index(index, manifest)
    assert index == again
    listed = json.loads(index)
    assert listed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert b.bundle_descriptors(listed) == [listed["manifests"][0]["digest"]]
    assert b.bundle_layer(manifest) == doc["layers"][0]["digest"]
