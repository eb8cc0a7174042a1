"""Sigstore bundles (v0.3 JSON) and how cosign attaches them to an artifact (OCI referrers).

A bundle is ``{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
"verificationMaterial": {"certificate": {"rawBytes"} | "publicKey": {"hint"}, "tlogEntries"},
"messageSignature": {"messageDigest": {"algorithm", "digest"}, "signature"} | "dsseEnvelope":
{"payload", "payloadType", "signatures": [{"sig", "keyid"}]}}``. cosign signs an image with a
DSSE envelope around an in-toto statement whose subject is the image digest. The bundle is a
layer of an OCI manifest with ``artifactType`` the bundle media type, the empty config and a
``subject``; registries without the referrers API get the ``sha256-<hex>`` tag index instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import VerificationError
from falcoctl_py.signing import keys, tlog
from falcoctl_py.signing.simplesigning import OCI_MANIFEST, sha256_digest

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
ANN_CONTENT = "dev.sigstore.bundle.content"
ANN_PREDICATE = "dev.sigstore.bundle.predicateType"
ANN_CREATED = "org.opencontainers.image.created"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: the bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def make_statement(*, name: str, digest: str) -> bytes:
    """The in-toto statement cosign signs for an image: subject = the digest."""
    algo, _, hexdigest = digest.partition(":")
    doc = {
        "_type": INTOTO_STATEMENT_V1,
        "subject": [{"name": name, "digest": {algo: hexdigest}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def make_bundle(
    *,
    statement: bytes,
    signature: bytes,
    key_hint: str = "",
    certificate_der: bytes | None = None,
    tlog_entries: list[dict[str, Any]] | None = None,
) -> bytes:
    """A v0.3 bundle with a DSSE envelope over ``statement``."""
    material: dict[str, Any] = (
        {"certificate": {"rawBytes": base64.b64encode(certificate_der).decode()}}
        if certificate_der is not None
        else {"publicKey": {"hint": key_hint}}
    )
    material["tlogEntries"] = tlog_entries or []
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(statement).decode(),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Bundle:
    """What a bundle says, decoded; ``signed`` is the exact data the signature covers."""

    content: str  # "dsse-envelope" or "message-signature"
    signature: bytes
    signed: bytes
    prehashed: bool
    payload_sha256: str  # what the log entry must record as the signed payload's hash
    certificate: x509.Certificate | None
    tlog_entries: list[tlog.TlogEntry] = field(default_factory=list)
    subject_digests: list[str] = field(default_factory=list)
    chain: list[x509.Certificate] = field(default_factory=list)


def parse_bundle(data: bytes) -> Bundle:
    """Decode a Sigstore bundle (raises VerificationError when malformed)."""
    try:
        doc = loads_json(data, where="the Sigstore bundle")
    except ValueError as err:
        raise VerificationError("the Sigstore bundle is not JSON") from err
    if not isinstance(doc, dict) or doc.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise VerificationError("the Sigstore bundle has an unknown mediaType")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise VerificationError("the Sigstore bundle has no verificationMaterial")
    certificate, intermediates = _certificates(material)
    entries = material.get("tlogEntries") or []
    if not isinstance(entries, list):
        raise VerificationError("the bundle's tlogEntries is not a list")
    tlog_entries = [tlog.entry_from_bundle(item) for item in entries]
    if isinstance(doc.get("dsseEnvelope"), dict):
        parsed = _parse_dsse(doc["dsseEnvelope"], certificate, tlog_entries)
        return replace(parsed, chain=intermediates)
    if isinstance(doc.get("messageSignature"), dict):
        parsed = _parse_message(doc["messageSignature"], certificate, tlog_entries)
        return replace(parsed, chain=intermediates)
    raise VerificationError("the Sigstore bundle has neither a DSSE envelope nor a signature")


def _certificates(
    material: dict[str, Any],
) -> tuple[x509.Certificate | None, list[x509.Certificate]]:
    """The signing certificate (the chain's first, or ``certificate``) and the intermediates."""
    certificate = None
    raw_cert = material.get("certificate")
    chain = material.get("x509CertificateChain")
    listed = chain.get("certificates") if isinstance(chain, dict) else None
    if isinstance(listed, list) and listed:
        raw_cert = listed[0]
    if raw_cert is not None:
        if not isinstance(raw_cert, dict):
            raise VerificationError("the bundle's certificate is malformed")
        try:
            certificate = x509.load_der_x509_certificate(
                keys.b64decode(raw_cert.get("rawBytes"), "the bundle's certificate")
            )
        except ValueError as err:
            raise VerificationError("the bundle's certificate cannot be parsed") from err
    intermediates = []
    for item in listed[1:] if isinstance(listed, list) else ():
        try:
            raw = keys.b64decode(item.get("rawBytes") if isinstance(item, dict) else None, "")
            intermediates.append(x509.load_der_x509_certificate(raw))
        except (VerificationError, ValueError) as err:
            raise VerificationError("the bundle's certificate chain is malformed") from err
    return certificate, intermediates


def _parse_message(
    message: dict[str, Any], certificate: x509.Certificate | None, entries: list[tlog.TlogEntry]
) -> Bundle:
    """A ``messageSignature`` bundle: a signature over the artifact's sha256."""
    digest = message.get("messageDigest")
    if not isinstance(digest, dict) or digest.get("algorithm", "SHA2_256") != "SHA2_256":
        raise VerificationError("the bundle's message digest is not SHA2_256")
    raw_digest = keys.b64decode(digest.get("digest"), "the bundle's message digest")
    return Bundle(
        content="message-signature",
        signature=keys.b64decode(message.get("signature"), "the bundle's signature"),
        signed=raw_digest,
        prehashed=True,
        payload_sha256=raw_digest.hex(),
        certificate=certificate,
        tlog_entries=entries,
        subject_digests=["sha256:" + raw_digest.hex()],
    )


def _parse_dsse(
    env: dict[str, Any], certificate: x509.Certificate | None, entries: list[tlog.TlogEntry]
) -> Bundle:
    import hashlib

    payload = keys.b64decode(env.get("payload"), "the DSSE payload")
    payload_type = env.get("payloadType")
    sigs = env.get("signatures")
    if payload_type != INTOTO_PAYLOAD_TYPE or not isinstance(sigs, list) or len(sigs) != 1:
        raise VerificationError("the DSSE envelope is not one signature over an in-toto statement")
    if not isinstance(sigs[0], dict):
        raise VerificationError("the DSSE signature is malformed")
    try:
        statement = loads_json(payload, where="the Sigstore bundle")
        digests = [
            f"{algo}:{value}"
            for subject in statement["subject"]
            for algo, value in subject["digest"].items()
        ]
        if statement["_type"] not in (INTOTO_STATEMENT_V1, "https://in-toto.io/Statement/v0.1"):
            raise ValueError("not an in-toto statement")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise VerificationError("the DSSE payload is not an in-toto statement") from err
    return Bundle(
        content="dsse-envelope",
        signature=keys.b64decode(sigs[0].get("sig"), "the DSSE signature"),
        signed=pae(payload_type, payload),
        prehashed=False,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        certificate=certificate,
        tlog_entries=entries,
        subject_digests=digests,
    )


def referrer_manifest(
    *,
    bundle_blob: bytes,
    subject_digest: str,
    subject_size: int,
    subject_media_type: str,
    created: dt.datetime | None = None,
) -> bytes:
    """The OCI manifest that attaches ``bundle_blob`` to its subject, as cosign writes it."""
    when = (created or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": sha256_digest(EMPTY_BLOB),
            "size": len(EMPTY_BLOB),
        },
        "layers": [
            {
                "mediaType": BUNDLE_MEDIA_TYPE,
                "digest": sha256_digest(bundle_blob),
                "size": len(bundle_blob),
            }
        ],
        "subject": {
            "mediaType": subject_media_type,
            "digest": subject_digest,
            "size": subject_size,
        },
        "annotations": {
            ANN_CONTENT: "dsse-envelope",
            ANN_PREDICATE: COSIGN_SIGN_PREDICATE,
            ANN_CREATED: when,
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def referrers_tag(digest: str) -> str:
    """The fallback referrers tag of ``digest``: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def add_to_referrers_index(index: bytes | None, manifest: bytes) -> bytes:
    """The referrers tag index with a descriptor of ``manifest`` added (once)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if index:
        try:
            loaded = loads_json(index, where="the Sigstore bundle")
            if isinstance(loaded, dict) and isinstance(loaded.get("manifests"), list):
                doc = loaded
        except ValueError:
            pass
    parsed = loads_json(manifest, where="the Sigstore bundle")
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(manifest),
        "size": len(manifest),
        "artifactType": parsed.get("artifactType", BUNDLE_MEDIA_TYPE),
        "annotations": parsed.get("annotations", {}),
    }
    doc["manifests"] = [
        m
        for m in doc["manifests"]
        if isinstance(m, dict) and m.get("digest") != descriptor["digest"]
    ] + [descriptor]
    return json.dumps(doc, separators=(",", ":")).encode()


def bundle_descriptors(index: object) -> list[str]:
    """Digests of the bundle manifests listed in a referrers index (API or tag schema)."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise VerificationError("the referrers index is malformed")
    return [
        str(m["digest"])
        for m in index["manifests"]
        if isinstance(m, dict) and m.get("artifactType") in BUNDLE_MEDIA_TYPES and "digest" in m
    ]


def bundle_layer(manifest: bytes) -> str:
    """The digest of the bundle layer of a referrer manifest."""
    try:
        doc = loads_json(manifest, where="the Sigstore bundle")
        for layer in doc["layers"]:
            if layer.get("mediaType") in BUNDLE_MEDIA_TYPES:
                return str(layer["digest"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise VerificationError("the bundle manifest is malformed") from err
    raise VerificationError("the bundle manifest has no bundle layer")
