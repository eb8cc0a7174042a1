"""cosign's simple-signing payload and the ``.sig`` manifest, field by field."""

from __future__ import annotations

import json

import pytest

from falcoctl_py.errors import VerificationError
from falcoctl_py.signing import simplesigning as ss

DIGEST = "sha256:" + "ab" * 32


def test_payload_matches_cosigns_format() -> None:
    payload = ss.make_payload(docker_reference="r.test/a/b", digest=DIGEST)
    assert json.loads(payload) == {
        "critical": {
            "identity": {"docker-reference": "r.test/a/b"},
            "image": {"docker-manifest-digest": DIGEST},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    assert ss.check_payload(payload, digest=DIGEST)["critical"]["type"] == ss.SIGNATURE_TYPE


def test_payload_checks() -> None:
    spec_example = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "x"},
                "image": {"Docker-manifest-digest": DIGEST},
                "type": ss.SIGNATURE_TYPE,
            }
        }
    ).encode()
    ss.check_payload(spec_example, digest=DIGEST)
    with pytest.raises(VerificationError, match="another digest"):
        ss.check_payload(spec_example, digest="sha256:" + "cd" * 32)
    wrong_type = spec_example.replace(b"cosign container image signature", b"attestation")
    with pytest.raises(VerificationError, match="not a cosign signature"):
        ss.check_payload(wrong_type, digest=DIGEST)
    with pytest.raises(VerificationError, match="malformed"):
        ss.check_payload(b"[1]", digest=DIGEST)


def test_sig_manifest_layout() -> None:
    assert ss.sig_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    payload = ss.make_payload(docker_reference="r", digest=DIGEST)
    manifest, blobs = ss.build_sig_manifest([ss.SigLayer(payload, {ss.ANN_SIGNATURE: "c2ln"})])
    doc = json.loads(manifest)
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(blobs[doc["config"]["digest"]])
    assert config["rootfs"] == {"type": "layers", "diff_ids": [ss.sha256_digest(payload)]}
    [layer] = doc["layers"]
    assert layer == {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": len(payload),
        "digest": ss.sha256_digest(payload),
        "annotations": {"dev.cosignproject.cosign/signature": "c2ln"},
    }
    assert blobs[layer["digest"]] == payload
    assert ss.sig_layers(manifest) == [layer]
