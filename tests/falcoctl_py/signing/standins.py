"""Stand-ins for Sigstore services, made with ``cryptography``: a Fulcio-like CA, a Rekor-like log.

They produce real certificates (SAN identity, OIDC issuer extensions 1.3.6.1.4.1.57264.1.1 and
.1.8, code-signing EKU), real signed entry timestamps, RFC 6962 inclusion proofs and signed-note
checkpoints, and a ``trusted_root.json`` naming them, so the verifier is tested end to end.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from falcoctl_py.signing import keys, tlog

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    """A KeyUsage extension with only the given bits set."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "falcoctl-py tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


@dataclass
class FulcioStandIn:
    """A root and an intermediate CA that issue short-lived code-signing certificates."""

    name: str = "fulcio"
    root_key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    inter_key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)

    def __post_init__(self) -> None:
        start, end = NOW - dt.timedelta(days=365), NOW + dt.timedelta(days=365)
        self.root = self._ca(_name(f"{self.name}-root"), self.root_key, None, start, end, 1)
        self.intermediate = self._ca(
            _name(f"{self.name}-intermediate"), self.inter_key, self.root, start, end, 0
        )

    def _ca(
        self,
        name: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        parent: x509.Certificate | None,
        start: dt.datetime,
        end: dt.datetime,
        path_length: int,
    ) -> x509.Certificate:
        issuer_key = self.root_key if parent is not None else key
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(parent.subject if parent is not None else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(
                key_usage(key_cert_sign=True, crl_sign=True),
                critical=True,
            )
            .sign(issuer_key, hashes.SHA256())
        )

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        identity: str,
        issuer: str,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(minutes=10),
    ) -> x509.Certificate:
        """A leaf like Fulcio's: SAN = identity (email or URI), OIDC issuer in both extensions."""
        start = not_before or NOW - dt.timedelta(minutes=1)
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity)
            if "://" in identity
            else x509.RFC822Name(identity)
        )
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                key_usage(digital_signature=True),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()), False)
            .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, _der_utf8(issuer)), False)
            .sign(self.inter_key, hashes.SHA256())
        )

    def trusted_root_item(self) -> dict[str, object]:
        chain = [self.intermediate, self.root]
        return {
            "subject": {"organization": "falcoctl-py tests", "commonName": self.name},
            "uri": f"https://{self.name}.test",
            "certChain": {
                "certificates": [
                    {
                        "rawBytes": base64.b64encode(
                            c.public_bytes(serialization.Encoding.DER)
                        ).decode()
                    }
                    for c in chain
                ]
            },
            "validFor": {
                "start": (NOW - dt.timedelta(days=365)).isoformat().replace("+00:00", "Z")
            },
        }


def merkle_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return tlog.node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if index < k:
        return [*audit_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*audit_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


@dataclass
class RekorStandIn:
    """An append-only log that signs entry timestamps and checkpoints with its own key."""

    origin: str = "rekor.test - 42"
    key: ec.EllipticCurvePrivateKey = field(default_factory=new_key)
    leaves: list[bytes] = field(default_factory=list)
    time: int = int(NOW.timestamp())
    with_set: bool = True
    with_proof: bool = True

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(keys.public_key_der(self.key.public_key())).digest()

    def checkpoint(self, size: int, root: bytes) -> str:
        body = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        sig = keys.sign(self.key, body.encode())
        name = self.origin.split(" ")[0]
        return body + f"\n\u2014 {name} {base64.b64encode(self.log_id[:4] + sig).decode()}\n"

    def record(self, body: bytes, kind: str) -> tlog.TlogEntry:
        """Append ``body``; the entry with a SET and an inclusion proof (per the switches)."""
        # A few unrelated entries first, so proofs have real paths.
        while len(self.leaves) < 5:
            self.leaves.append(tlog.leaf_hash(b"filler %d" % len(self.leaves)))
        index = len(self.leaves)
        self.leaves.append(tlog.leaf_hash(body))
        entry = tlog.TlogEntry(
            log_index=index,
            log_id=self.log_id,
            integrated_time=self.time,
            body=body,
            kind=kind,
            version="0.0.1",
        )
        set_sig = keys.sign(self.key, tlog.set_payload(entry)) if self.with_set else None
        proof = None
        if self.with_proof:
            root = merkle_root(self.leaves)
            proof = tlog.InclusionProof(
                log_index=index,
                root_hash=root,
                tree_size=len(self.leaves),
                hashes=audit_path(index, self.leaves),
                checkpoint=self.checkpoint(len(self.leaves), root),
            )
        return tlog.TlogEntry(
            log_index=index,
            log_id=self.log_id,
            integrated_time=self.time,
            body=body,
            kind=kind,
            version="0.0.1",
            set=set_sig,
            proof=proof,
        )

    def trusted_root_item(self) -> dict[str, object]:
        der = keys.public_key_der(self.key.public_key())
        return {
            "baseUrl": "https://rekor.test",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": base64.b64encode(der).decode(),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {
                    "start": (NOW - dt.timedelta(days=365)).isoformat().replace("+00:00", "Z")
                },
            },
            "logId": {"keyId": base64.b64encode(self.log_id).decode()},
        }


def trusted_root_json(fulcios: list[FulcioStandIn], rekors: list[RekorStandIn]) -> bytes:
    doc = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [r.trusted_root_item() for r in rekors],
        "certificateAuthorities": [f.trusted_root_item() for f in fulcios],
        "ctlogs": [],
        "timestampAuthorities": [],
    }
    return json.dumps(doc, indent=2).encode()
