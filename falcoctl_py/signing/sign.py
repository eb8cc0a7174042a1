"""Sign a digest the way cosign does, in both storage forms, so ``cosign verify`` accepts it.

Form 1, legacy: a simple-signing payload layer appended to the ``sha256-<hex>.sig`` tag, with
the signature (and certificate, chain, Rekor entry when given) in its annotations. Form 2: a
Sigstore v0.3 bundle (DSSE over an in-toto statement) in a referrer manifest whose ``subject``
is the digest, listed in the ``sha256-<hex>`` referrers tag index when the registry has no
referrers API. Without a transparency log (the default offline), cosign verifies these with
``--insecure-ignore-tlog``; a ``log`` callable can stand in for Rekor and return entries.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from falcoctl_py.errors import NotFoundError
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import keys, simplesigning, tlog
from falcoctl_py.signing.store import RegistryWriter, SignatureStore
from falcoctl_py.textio import read_regular_file

# A transparency log stand-in: (canonical body, kind) -> the entry it recorded.
LogWriter = Callable[[bytes, str], tlog.TlogEntry]


@dataclass(frozen=True, slots=True)
class SignResult:
    """What was written: the signed digest, the key, the ``.sig`` tag and the bundle manifest."""

    reference: str
    digest: str
    key_id: str
    sig_tag: str
    bundle_manifest: str
    referrers: str  # "api" or the fallback tag


def cosign_bundle_annotation(entry: tlog.TlogEntry) -> str:
    """A log entry as cosign's ``dev.sigstore.cosign/bundle`` annotation."""
    doc = {
        "SignedEntryTimestamp": base64.b64encode(entry.set or b"").decode(),
        "Payload": {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logIndex": entry.log_index,
            "logID": entry.log_id.hex(),
        },
    }
    return json.dumps(doc, separators=(",", ":"))


def bundle_tlog_entry(entry: tlog.TlogEntry) -> dict[str, Any]:
    """A log entry as a Sigstore bundle ``tlogEntries`` item."""
    doc: dict[str, Any] = {
        "logIndex": str(entry.log_index),
        "logId": {"keyId": base64.b64encode(entry.log_id).decode()},
        "kindVersion": {"kind": entry.kind, "version": entry.version or "0.0.1"},
        "integratedTime": str(entry.integrated_time),
        "canonicalizedBody": base64.b64encode(entry.body).decode(),
    }
    if entry.set is not None:
        doc["inclusionPromise"] = {"signedEntryTimestamp": base64.b64encode(entry.set).decode()}
    if entry.proof is not None:
        doc["inclusionProof"] = {
            "logIndex": str(entry.proof.log_index),
            "rootHash": base64.b64encode(entry.proof.root_hash).decode(),
            "treeSize": str(entry.proof.tree_size),
            "hashes": [base64.b64encode(h).decode() for h in entry.proof.hashes],
            "checkpoint": {"envelope": entry.proof.checkpoint},
        }
    return doc


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_legacy(
    store: RegistryWriter,
    repository: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    verifier_pem: bytes,
    certificate: x509.Certificate | None,
    chain: list[x509.Certificate],
    log: LogWriter | None,
) -> str:
    payload = simplesigning.make_payload(docker_reference=repository, digest=digest)
    signature = keys.sign(key, payload)
    annotations = {simplesigning.ANN_SIGNATURE: base64.b64encode(signature).decode()}
    if certificate is not None:
        annotations[simplesigning.ANN_CERTIFICATE] = _pem(certificate).decode()
        annotations[simplesigning.ANN_CHAIN] = b"".join(_pem(c) for c in chain).decode()
    if log is not None:
        body = tlog.hashedrekord_body(
            payload_sha256=simplesigning.sha256_digest(payload).split(":", 1)[1],
            signature=signature,
            verifier_pem=verifier_pem,
        )
        annotations[simplesigning.ANN_BUNDLE] = cosign_bundle_annotation(log(body, "hashedrekord"))
    tag = simplesigning.sig_tag(digest)
    layers = []
    existing = store.get_manifest(repository, tag)
    if existing is not None:
        for layer in simplesigning.sig_layers(existing.data):
            old = dict(layer.get("annotations") or {})
            if old.get(simplesigning.ANN_SIGNATURE) == annotations[simplesigning.ANN_SIGNATURE]:
                continue
            layers.append(
                simplesigning.SigLayer(store.get_blob(repository, str(layer["digest"])), old)
            )
    layers.append(simplesigning.SigLayer(payload, annotations))
    manifest, blobs = simplesigning.build_sig_manifest(layers)
    for data in blobs.values():
        store.push_blob(repository, data)
    store.push_manifest(repository, tag, manifest, simplesigning.OCI_MANIFEST)
    return tag


def _write_bundle(
    store: RegistryWriter,
    repository: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    verifier_pem: bytes,
    certificate: x509.Certificate | None,
    log: LogWriter | None,
) -> tuple[str, str]:
    subject = store.get_manifest(repository, digest)
    if subject is None:
        raise NotFoundError(f"{repository}@{digest} not found: nothing to sign")
    statement = bundles.make_statement(name=repository, digest=digest)
    signature = keys.sign(key, bundles.pae(bundles.INTOTO_PAYLOAD_TYPE, statement))
    entries = []
    if log is not None:
        envelope = json.dumps(
            {
                "payload": base64.b64encode(statement).decode(),
                "payloadType": bundles.INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
            },
            separators=(",", ":"),
        ).encode()
        body = tlog.dsse_body(
            envelope=envelope, payload=statement, signature=signature, verifier_pem=verifier_pem
        )
        entries.append(bundle_tlog_entry(log(body, "dsse")))
    blob = bundles.make_bundle(
        statement=statement,
        signature=signature,
        key_hint=base64.b64encode(bytes.fromhex(keys.key_id(key.public_key()))).decode(),
        certificate_der=(
            certificate.public_bytes(serialization.Encoding.DER) if certificate else None
        ),
        tlog_entries=entries,
    )
    store.push_blob(repository, bundles.EMPTY_BLOB)
    store.push_blob(repository, blob)
    manifest = bundles.referrer_manifest(
        bundle_blob=blob,
        subject_digest=digest,
        subject_size=len(subject.data),
        subject_media_type=subject.media_type,
    )
    manifest_digest = simplesigning.sha256_digest(manifest)
    store.push_manifest(repository, manifest_digest, manifest, simplesigning.OCI_MANIFEST)
    if store.referrers(repository, digest) is not None:
        return manifest_digest, "api"
    tag = bundles.referrers_tag(digest)
    current = store.get_manifest(repository, tag)
    index = bundles.add_to_referrers_index(current.data if current else None, manifest)
    store.push_manifest(repository, tag, index, bundles.OCI_INDEX)
    return manifest_digest, tag


def sign_digest(
    *,
    store: RegistryWriter,
    repository: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate | None = None,
    chain: list[x509.Certificate] | None = None,
    log: LogWriter | None = None,
    forms: tuple[str, ...] = ("bundle", "legacy"),
) -> SignResult:
    """Sign ``repository@digest`` (``host/path``) in both forms; with a certificate: keyless."""
    verifier_pem = _pem(certificate) if certificate else keys.public_key_pem(key.public_key())
    bundle_manifest, referrers, tag = "", "", ""
    if "bundle" in forms:
        bundle_manifest, referrers = _write_bundle(
            store, repository, digest, key, verifier_pem, certificate, log
        )
    if "legacy" in forms:
        tag = _write_legacy(
            store, repository, digest, key, verifier_pem, certificate, chain or [], log
        )
    return SignResult(
        reference=f"{repository}@{digest}",
        digest=digest,
        key_id=keys.key_id(key.public_key()),
        sig_tag=tag,
        bundle_manifest=bundle_manifest,
        referrers=referrers,
    )


def read_private_key(path: Path, *, password: str | None = None) -> ec.EllipticCurvePrivateKey:
    """A cosign.key file; the password defaults to ``COSIGN_PASSWORD``, as with cosign."""
    data = read_regular_file(path, limit=keys.MAX_KEY_FILE, what="signing key")
    if password is None:
        password = os.environ.get("COSIGN_PASSWORD", "")
    return keys.load_private_key(data, password=password, source=str(path))


def sign_artifact(
    *,
    client: Any,
    repository: str,
    digest: str,
    key_path: Path,
    password: str | None = None,
) -> SignResult:
    """Sign a pushed artifact with a cosign.key (the hook ``registry push --sign-key`` calls)."""
    key = read_private_key(key_path, password=password)
    return sign_digest(store=SignatureStore(client), repository=repository, digest=digest, key=key)
