"""Rekor transparency-log entries, checked offline: signed entry timestamps and inclusion proofs.

An entry comes in two shapes: cosign's legacy layer annotation ``dev.sigstore.cosign/bundle``
(``{"SignedEntryTimestamp", "Payload": {"body", "integratedTime", "logIndex", "logID"}}``) and
the ``tlogEntries`` of a Sigstore bundle (``logIndex``, ``logId.keyId``, ``integratedTime``,
``inclusionPromise.signedEntryTimestamp``, ``inclusionProof``, ``canonicalizedBody``). The SET
is the log's signature over the canonical JSON ``{"body", "integratedTime", "logID",
"logIndex"}``; an inclusion proof is an RFC 6962 audit path to a root hash that a signed
checkpoint (a signed note: origin, tree size, root hash) vouches for.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import VerificationError
from falcoctl_py.signing import keys
from falcoctl_py.signing.certs import TrustedLog, TrustedRoot


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces (RFC 8785 for the values Rekor uses)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class InclusionProof:
    log_index: int
    root_hash: bytes
    tree_size: int
    hashes: list[bytes]
    checkpoint: str


@dataclass(frozen=True, slots=True)
class TlogEntry:
    """One transparency-log entry, whatever document carried it."""

    log_index: int
    log_id: bytes
    integrated_time: int
    body: bytes
    kind: str = ""
    version: str = ""
    set: bytes | None = None
    proof: InclusionProof | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise VerificationError(f"{what} is not an integer")
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError) as err:
        raise VerificationError(f"{what} is not an integer") from err


def entry_from_cosign_bundle(doc: object) -> TlogEntry:
    """The entry of the legacy ``dev.sigstore.cosign/bundle`` annotation."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Payload"), dict):
        raise VerificationError("the dev.sigstore.cosign/bundle annotation is malformed")
    payload = doc["Payload"]
    try:
        log_id = bytes.fromhex(str(payload.get("logID", "")))
    except ValueError as err:
        raise VerificationError("the log entry's logID is not hex") from err
    return TlogEntry(
        log_index=_int(payload.get("logIndex"), "logIndex"),
        log_id=log_id,
        integrated_time=_int(payload.get("integratedTime"), "integratedTime"),
        body=keys.b64decode(payload.get("body"), "the log entry body"),
        set=keys.b64decode(doc.get("SignedEntryTimestamp"), "the SignedEntryTimestamp"),
    )


def entry_from_bundle(doc: object) -> TlogEntry:
    """An entry of a Sigstore bundle's ``verificationMaterial.tlogEntries``."""
    if not isinstance(doc, dict):
        raise VerificationError("a tlogEntries item is not an object")
    promise = doc.get("inclusionPromise")
    set_bytes = None
    if isinstance(promise, dict):
        set_bytes = keys.b64decode(promise.get("signedEntryTimestamp"), "signedEntryTimestamp")
    proof = None
    raw_proof = doc.get("inclusionProof")
    if isinstance(raw_proof, dict):
        checkpoint = raw_proof.get("checkpoint")
        envelope = checkpoint.get("envelope") if isinstance(checkpoint, dict) else None
        hashes = raw_proof.get("hashes", [])
        if not isinstance(envelope, str) or not isinstance(hashes, list):
            raise VerificationError("the inclusion proof is malformed")
        proof = InclusionProof(
            log_index=_int(raw_proof.get("logIndex"), "inclusionProof.logIndex"),
            root_hash=keys.b64decode(raw_proof.get("rootHash"), "inclusionProof.rootHash"),
            tree_size=_int(raw_proof.get("treeSize"), "inclusionProof.treeSize"),
            hashes=[keys.b64decode(h, "an inclusion proof hash") for h in hashes],
            checkpoint=envelope,
        )
    log_id = doc.get("logId")
    kind_version = doc.get("kindVersion") if isinstance(doc.get("kindVersion"), dict) else {}
    assert isinstance(kind_version, dict)
    return TlogEntry(
        log_index=_int(doc.get("logIndex"), "logIndex"),
        log_id=keys.b64decode(log_id.get("keyId") if isinstance(log_id, dict) else None, "logId"),
        integrated_time=_int(doc.get("integratedTime"), "integratedTime"),
        body=keys.b64decode(doc.get("canonicalizedBody"), "canonicalizedBody"),
        kind=str(kind_version.get("kind", "")),
        version=str(kind_version.get("version", "")),
        set=set_bytes,
        proof=proof,
    )


def set_payload(entry: TlogEntry) -> bytes:
    """The bytes the log signs for a signed entry timestamp."""
    return canonical_json(
        {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        }
    )


def leaf_hash(body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_proof(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """The root hash an RFC 9162 audit path leads to (raises on a malformed path)."""
    if index < 0 or index >= size:
        raise VerificationError("the inclusion proof's index is outside the tree")
    fn, sn, root = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise VerificationError("the inclusion proof has too many hashes")
        if fn & 1 or fn == sn:
            root = node_hash(sibling, root)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            root = node_hash(root, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("the inclusion proof has too few hashes")
    return root


def verify_checkpoint(checkpoint: str, log: TrustedLog) -> tuple[int, bytes]:
    """Check a signed-note checkpoint with the log's key; return (tree size, root hash)."""
    text, sep, signatures = checkpoint.partition("\n\n")
    if not sep:
        raise VerificationError("the checkpoint is not a signed note")
    body = (text + "\n").encode()
    lines = text.split("\n")
    if len(lines) < 3:
        raise VerificationError("the checkpoint has no tree size and root hash")
    origin = lines[0]
    size = _int(lines[1], "the checkpoint's tree size")
    root = keys.b64decode(lines[2], "the checkpoint's root hash")
    for line in signatures.split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != origin.split(" ")[0]:
            continue
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if raw[:4] == log.log_id[:4] and keys.verify(log.key, raw[4:], body):
            return size, root
    raise VerificationError("the checkpoint's signature does not verify with the log key")


def verify_entry(entry: TlogEntry, root: TrustedRoot) -> None:
    """Check the entry against a log key of the trusted root (SET, or proof + checkpoint)."""
    log = root.log_for(entry.log_id, entry.integrated_time)
    if log is None:
        raise VerificationError(
            f"the log entry comes from an unknown transparency log {entry.log_id.hex()[:16]}"
        )
    if entry.proof is not None:
        proof = entry.proof
        computed = root_from_proof(
            proof.log_index, proof.tree_size, leaf_hash(entry.body), proof.hashes
        )
        if computed != proof.root_hash:
            raise VerificationError("the inclusion proof does not lead to its root hash")
        size, root_hash = verify_checkpoint(proof.checkpoint, log)
        if size != proof.tree_size or root_hash != proof.root_hash:
            raise VerificationError("the checkpoint is for another tree than the proof")
        if entry.set is None:
            return
    if entry.set is None:
        raise VerificationError("the log entry has neither an inclusion promise nor a proof")
    if not keys.verify(log.key, entry.set, set_payload(entry)):
        raise VerificationError("the log entry's signed entry timestamp does not verify")


# Entry bodies: what the log recorded must be the signature being verified.


def hashedrekord_body(*, payload_sha256: str, signature: bytes, verifier_pem: bytes) -> bytes:
    """A ``hashedrekord`` v0.0.1 body, canonical."""
    return canonical_json(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": payload_sha256}},
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "publicKey": {"content": base64.b64encode(verifier_pem).decode()},
                },
            },
        }
    )


def dsse_body(*, envelope: bytes, payload: bytes, signature: bytes, verifier_pem: bytes) -> bytes:
    """A ``dsse`` v0.0.1 body, canonical."""
    return canonical_json(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {
                        "signature": base64.b64encode(signature).decode(),
                        "verifier": base64.b64encode(verifier_pem).decode(),
                    }
                ],
            },
        }
    )


def _same_verifier(encoded: object, verifier_der: bytes) -> bool:
    if not isinstance(encoded, str):
        return False
    try:
        pem = base64.b64decode(encoded, validate=True)
    except ValueError:
        return False
    return any(block.der == verifier_der for block in keys.pem_blocks(pem))


def check_body(
    entry: TlogEntry, *, payload_sha256: str, signature: bytes, verifier_der: bytes
) -> None:
    """The entry must record this signature, by this key or certificate, over this payload."""
    try:
        body = loads_json(entry.body, where="the transparency-log entry")
        kind, spec = body["kind"], body["spec"]
        if kind == "hashedrekord":
            same = (
                spec["data"]["hash"]["value"] == payload_sha256
                and keys.b64decode(spec["signature"]["content"], "sig") == signature
                and _same_verifier(spec["signature"]["publicKey"]["content"], verifier_der)
            )
        elif kind == "dsse":
            same = spec["payloadHash"]["value"] == payload_sha256 and any(
                keys.b64decode(s["signature"], "sig") == signature
                and _same_verifier(s["verifier"], verifier_der)
                for s in spec["signatures"]
            )
        else:
            raise VerificationError(f"unsupported log entry kind {kind!r}")
    except (KeyError, TypeError, ValueError) as err:
        raise VerificationError("the log entry body is malformed") from err
    if not same:
        raise VerificationError("the log entry records another signature")
