"""cosign's legacy signatures: the ``sha256-<hex>.sig`` tag and its simple-signing payloads.

The tag holds an OCI image manifest; each layer is a payload
(``application/vnd.dev.cosign.simplesigning.v1+json``: ``{"critical": {"identity":
{"docker-reference"}, "image": {"docker-manifest-digest"}, "type": "cosign container image
signature"}, "optional"}``) whose annotations carry the base64 signature
(``dev.cosignproject.cosign/signature``) and, for keyless, the PEM certificate, chain and the
Rekor entry (``dev.sigstore.cosign/certificate``, ``/chain``, ``/bundle``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import VerificationError

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def sig_tag(digest: str) -> str:
    """``sha256:abc`` -> ``sha256-abc.sig``."""
    return digest.replace(":", "-", 1) + ".sig"


def make_payload(*, docker_reference: str, digest: str) -> bytes:
    """The simple-signing payload cosign signs for ``digest`` (compact JSON, as cosign writes)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def check_payload(payload: bytes, *, digest: str) -> dict[str, Any]:
    """The payload as JSON, after checking it is a cosign signature of ``digest``."""
    try:
        doc = loads_json(payload, where="the signature")
        critical = doc["critical"]
        signed_type = critical["type"]
        image = critical["image"]
        # cosign reads the digest key case-insensitively (the spec example has "Docker-...").
        signed = next(v for k, v in image.items() if k.lower() == "docker-manifest-digest")
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as err:
        raise VerificationError("the simple-signing payload is malformed") from err
    if signed_type != SIGNATURE_TYPE:
        raise VerificationError(f"the payload has type {signed_type!r}, not a cosign signature")
    if signed != digest:
        raise VerificationError(f"the signature is for another digest ({signed})")
    return dict(doc)


@dataclass(frozen=True, slots=True)
class SigLayer:
    """One signature of a ``.sig`` manifest: the layer descriptor and its payload."""

    payload: bytes
    annotations: dict[str, str]


def _config_blob(layer_digests: list[str]) -> bytes:
    doc = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layer_digests},
        "config": {},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_sig_manifest(layers: list[SigLayer]) -> tuple[bytes, dict[str, bytes]]:
    """The ``.sig`` manifest for ``layers`` and the blobs it needs (digest -> content)."""
    blobs = {sha256_digest(layer.payload): layer.payload for layer in layers}
    config = _config_blob([sha256_digest(layer.payload) for layer in layers])
    blobs[sha256_digest(config)] = config
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [
            {
                "mediaType": SIMPLESIGNING_MEDIA_TYPE,
                "size": len(layer.payload),
                "digest": sha256_digest(layer.payload),
                "annotations": layer.annotations,
            }
            for layer in layers
        ],
    }
    return json.dumps(manifest, separators=(",", ":")).encode(), blobs


def sig_layers(manifest: bytes) -> list[dict[str, Any]]:
    """The simple-signing layer descriptors of a ``.sig`` manifest."""
    try:
        doc = loads_json(manifest, where="the signature")
        layers = doc["layers"]
        if not isinstance(layers, list):
            raise TypeError("layers is not a list")
    except (ValueError, KeyError, TypeError) as err:
        raise VerificationError("the .sig manifest is malformed") from err
    return [
        layer
        for layer in layers
        if isinstance(layer, dict) and layer.get("mediaType") == SIMPLESIGNING_MEDIA_TYPE
    ]
