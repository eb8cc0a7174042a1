r"""The signatures a registry holds for a digest, as candidates to verify.

Two places are read: Sigstore bundles found through the referrers API (or its fallback tag),
and the layers of cosign's legacy ``sha256-<hex>.sig`` tag. Each yields :class:`Candidate`\ s
(the signature, what it signs, the certificate and log entries that come with it) and one
reason per place that could not be read; nothing is trusted yet (:mod:`.verify` checks them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import VerificationError
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import certs, keys, simplesigning, tlog
from falcoctl_py.signing.store import RegistryReader


@dataclass(frozen=True, slots=True)
class Candidate:
    """One signature found for a digest, with what it signs and its evidence."""

    form: str
    signature: bytes
    signed: bytes
    prehashed: bool
    payload_sha256: str
    certificate: x509.Certificate | None
    entries: list[tlog.TlogEntry]
    chain: list[x509.Certificate] = field(default_factory=list)


def _json(data: bytes, what: str) -> Any:
    try:
        return loads_json(data, where=what)
    except ValueError as err:
        raise VerificationError(f"{what} is not JSON") from err


def bundle_candidates(
    reader: RegistryReader, repository: str, digest: str
) -> tuple[list[Candidate], list[str]]:
    index = reader.referrers(repository, digest)
    if index is None:
        fallback = reader.get_manifest(repository, bundles.referrers_tag(digest))
        index = _json(fallback.data, "the referrers tag index") if fallback else None
    if index is None:
        return [], []
    found, errors = [], []
    for manifest_digest in bundles.bundle_descriptors(index):
        try:
            manifest = reader.get_manifest(repository, manifest_digest)
            if manifest is None:
                continue
            subject = _json(manifest.data, "the bundle manifest").get("subject") or {}
            if isinstance(subject, dict) and subject.get("digest") not in (None, digest):
                raise VerificationError("the bundle manifest refers to another subject")
            parsed = bundles.parse_bundle(
                reader.get_blob(repository, bundles.bundle_layer(manifest.data))
            )
            if digest not in parsed.subject_digests:
                raise VerificationError(
                    f"the signature is for another digest ({', '.join(parsed.subject_digests)})"
                )
        except VerificationError as err:
            errors.append(f"sigstore bundle {manifest_digest[:19]}: {err.message}")
            continue
        found.append(
            Candidate(
                "sigstore-bundle",
                parsed.signature,
                parsed.signed,
                parsed.prehashed,
                parsed.payload_sha256,
                parsed.certificate,
                parsed.tlog_entries,
                parsed.chain,
            )
        )
    return found, errors


def legacy_candidates(
    reader: RegistryReader, repository: str, digest: str
) -> tuple[list[Candidate], list[str]]:
    manifest = reader.get_manifest(repository, simplesigning.sig_tag(digest))
    if manifest is None:
        return [], []
    found, errors = [], []
    for layer in simplesigning.sig_layers(manifest.data):
        annotations = layer.get("annotations") or {}
        try:
            payload = reader.get_blob(repository, str(layer.get("digest")))
            simplesigning.check_payload(payload, digest=digest)
            signature = keys.b64decode(
                annotations.get(simplesigning.ANN_SIGNATURE), "the signature annotation"
            )
            cert, chain = None, []
            if annotations.get(simplesigning.ANN_CHAIN):
                chain = [
                    certs.load_certificate(block.der)
                    for block in keys.pem_blocks(annotations[simplesigning.ANN_CHAIN].encode())
                    if block.type == "CERTIFICATE"
                ]
            if annotations.get(simplesigning.ANN_CERTIFICATE):
                cert = certs.load_certificate(annotations[simplesigning.ANN_CERTIFICATE].encode())
            entries = []
            if annotations.get(simplesigning.ANN_BUNDLE):
                entries.append(
                    tlog.entry_from_cosign_bundle(
                        _json(
                            annotations[simplesigning.ANN_BUNDLE].encode(), "the bundle annotation"
                        )
                    )
                )
        except VerificationError as err:
            errors.append(f".sig layer {str(layer.get('digest'))[:19]}: {err.message}")
            continue
        found.append(
            Candidate(
                "simple-signing",
                signature,
                payload,
                False,
                hashlib.sha256(payload).hexdigest(),
                cert,
                entries,
                chain,
            )
        )
    return found, errors
