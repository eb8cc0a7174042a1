"""Trusted roots (Sigstore ``trusted_root.json``), certificate chains and Fulcio identities.

``trusted_root.json`` (``application/vnd.dev.sigstore.trustedroot+json;version=0.1``) lists
``certificateAuthorities`` (``certChain.certificates[].rawBytes``, base64 DER, leaf-most first,
with ``validFor.start``/``end``) and ``tlogs`` (``publicKey.rawBytes`` DER SubjectPublicKeyInfo,
``publicKey.validFor``, ``logId.keyId``). A Fulcio certificate names its OIDC issuer in the
extension 1.3.6.1.4.1.57264.1.8 (DER UTF8String) or, older, 1.3.6.1.4.1.57264.1.1 (raw
string), and its identity in the subject alternative name (email or URI).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import ConfigError, VerificationError
from falcoctl_py.signing import keys
from falcoctl_py.textio import read_regular_file

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


@dataclass(frozen=True, slots=True)
class Validity:
    start: dt.datetime | None
    end: dt.datetime | None

    def contains(self, when: dt.datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when <= self.end)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    uri: str
    chain: list[x509.Certificate]  # leaf-most first, root last
    valid_for: Validity


@dataclass(frozen=True, slots=True)
class TrustedLog:
    base_url: str
    key: keys.PublicKey
    log_id: bytes
    valid_for: Validity


@dataclass(frozen=True, slots=True)
class TrustedRoot:
    source: str
    authorities: list[CertificateAuthority]
    logs: list[TrustedLog]

    def log_for(self, log_id: bytes, integrated_time: int) -> TrustedLog | None:
        when = dt.datetime.fromtimestamp(integrated_time, dt.UTC)
        for log in self.logs:
            if log.log_id == log_id and log.valid_for.contains(when):
                return log
        return None


def _time(value: object, where: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as err:
        raise ConfigError(f"bad time {value!r} in {where}") from err
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _validity(doc: object, where: str) -> Validity:
    if not isinstance(doc, dict):
        return Validity(None, None)
    return Validity(_time(doc.get("start"), where), _time(doc.get("end"), where))


def parse_trusted_root(data: bytes, *, source: str) -> TrustedRoot:
    """A ``trusted_root.json`` document."""
    try:
        doc = loads_json(data, where=source)
        authorities = []
        for ca in doc.get("certificateAuthorities", []):
            chain = [
                x509.load_der_x509_certificate(keys.b64decode(c["rawBytes"], "rawBytes"))
                for c in ca["certChain"]["certificates"]
            ]
            if not chain:
                raise ValueError("a certificate authority has an empty chain")
            authorities.append(
                CertificateAuthority(
                    uri=str(ca.get("uri", "")),
                    chain=chain,
                    valid_for=_validity(ca.get("validFor"), source),
                )
            )
        logs = []
        for tlog in doc.get("tlogs", []):
            pub = tlog["publicKey"]
            key = serialization.load_der_public_key(keys.b64decode(pub["rawBytes"], "rawBytes"))
            logs.append(
                TrustedLog(
                    base_url=str(tlog.get("baseUrl", "")),
                    key=key,  # type: ignore[arg-type]
                    log_id=keys.b64decode(tlog["logId"]["keyId"], "logId.keyId"),
                    valid_for=_validity(pub.get("validFor"), source),
                )
            )
    except (KeyError, TypeError, ValueError, VerificationError, AttributeError) as err:
        raise ConfigError(
            f"not a Sigstore trusted root: {err}",
            path=source,
            hint="pass a trusted_root.json (from `cosign trusted-root create` or Sigstore TUF)",
        ) from err
    return TrustedRoot(source=source, authorities=authorities, logs=logs)


def load_trusted_root(path: Path) -> TrustedRoot:
    data = read_regular_file(path, limit=16 * keys.MAX_KEY_FILE, what="trusted root")
    return parse_trusted_root(data, source=str(path))


def load_certificate(data: bytes) -> x509.Certificate:
    """A PEM or DER certificate."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise VerificationError("the signing certificate cannot be parsed") from err


def _der_utf8(raw: bytes) -> str:
    """A DER UTF8String (tag 12) or, failing that, the raw bytes as text."""
    if len(raw) >= 2 and raw[0] == 0x0C:
        length, offset = raw[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, offset = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
        return raw[offset : offset + length].decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Identity:
    subjects: list[str]
    issuer: str


def identity(cert: x509.Certificate) -> Identity:
    """The SAN identities and the OIDC issuer a Fulcio certificate was issued for."""
    subjects: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        subjects += san.get_values_for_type(x509.RFC822Name)
        subjects += san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        pass
    issuer = ""
    for oid, decode in ((OID_ISSUER_V2, _der_utf8), (OID_ISSUER_V1, None)):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
        issuer = decode(raw) if decode else raw.decode("utf-8", "replace")
        break
    return Identity(subjects=subjects, issuer=issuer)


def _not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


def _not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


def _valid_ca(cert: x509.Certificate, when: dt.datetime) -> bool:
    return _is_ca(cert) and _not_before(cert) <= when <= _not_after(cert)


def _trusted_tail(chain: list[x509.Certificate], when: dt.datetime) -> list[bool]:
    """For each position of a trusted chain: whether it and everything above it is sound."""
    ok = [False] * len(chain)
    above = True
    for i in range(len(chain) - 1, -1, -1):
        parent_ok = i == len(chain) - 1 or _issued_by(chain[i], chain[i + 1])
        above = above and parent_ok and _valid_ca(chain[i], when)
        ok[i] = above
    return ok


def _chains_to(
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    sound: list[bool],
    when: dt.datetime,
    extra: list[x509.Certificate],
    depth: int = 0,
) -> bool:
    if any(sound[i] and _issued_by(cert, parent) for i, parent in enumerate(chain)):
        return True
    if depth >= 4:
        return False
    return any(
        _valid_ca(inter, when)
        and _issued_by(cert, inter)
        and _chains_to(inter, chain, sound, when, [e for e in extra if e is not inter], depth + 1)
        for inter in extra
    )


def verify_chain(
    leaf: x509.Certificate,
    root: TrustedRoot,
    when: dt.datetime,
    intermediates: list[x509.Certificate] | None = None,
) -> CertificateAuthority:
    """Check that ``leaf`` chains to an authority of the trusted root and was valid at ``when``.

    ``intermediates`` (from the signature's chain annotation or bundle) are untrusted helpers:
    the path must still end in a certificate of the trusted root.
    """
    if not (_not_before(leaf) <= when <= _not_after(leaf)):
        raise VerificationError(
            f"the signing certificate was not valid at the signing time {when:%Y-%m-%dT%H:%M:%SZ}"
            f" (valid {_not_before(leaf):%Y-%m-%dT%H:%M:%SZ} to"
            f" {_not_after(leaf):%Y-%m-%dT%H:%M:%SZ})"
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            raise VerificationError("the signing certificate is not for code signing")
    except x509.ExtensionNotFound:
        pass
    extra = [c for c in intermediates or [] if c != leaf]
    for ca in root.authorities:
        if not ca.valid_for.contains(when):
            continue
        if _chains_to(leaf, ca.chain, _trusted_tail(ca.chain, when), when, extra):
            return ca
    raise VerificationError(
        f"the signing certificate (issuer {leaf.issuer.rfc4514_string()}) does not chain to a"
        " certificate authority of the trusted root"
    )


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
