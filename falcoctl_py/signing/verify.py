"""Verify the cosign signatures of a digest, offline: bundles first, then the legacy ``.sig`` tag.

A digest passes when at least one signature satisfies the policy: its document binds it to the
digest, the signature verifies with the key (or with the certificate, which chains to the
trusted root, was valid at the signed time and names the required identity and issuer), and its
transparency-log entry verifies against the trusted root's log keys (unless ``ignore-tlog``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import ConfigError, VerificationError
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import certs, keys, simplesigning, tlog
from falcoctl_py.signing.policy import CosignPolicy, VerifySettings
from falcoctl_py.signing.store import RegistryReader, SignatureStore
from falcoctl_py.textio import read_regular_file

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """One signature that satisfied the policy: who signed what, and where it was found."""

    form: str  # "sigstore-bundle" or "simple-signing"
    digest: str
    signer: str
    issuer: str = ""
    key_id: str = ""
    signed_at: str = ""
    log_index: int | None = None
    tlog_verified: bool = False


@dataclass(frozen=True, slots=True)
class VerificationResult:
    reference: str
    policy: str
    signatures: list[SignatureInfo] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Candidate:
    form: str
    signature: bytes
    signed: bytes
    prehashed: bool
    payload_sha256: str
    certificate: x509.Certificate | None
    entries: list[tlog.TlogEntry]
    chain: list[x509.Certificate] = field(default_factory=list)


def load_key_ref(ref: str) -> keys.PublicKey:
    """A public key from a file path (cosign key refs to KMS or URLs are not reachable offline)."""
    if re.match(r"^[a-z0-9]+://", ref):
        raise ConfigError(
            f"key reference {ref!r} is not a file", hint="download the public key and give its path"
        )
    path = Path(ref).expanduser()
    data = read_regular_file(path, limit=keys.MAX_KEY_FILE, what="public key")
    if b"CERTIFICATE" in data:
        cert = x509.load_pem_x509_certificate(data)
        return cert.public_key()  # type: ignore[return-value]
    return keys.load_public_key(data, source=str(path))


def _json(data: bytes, what: str) -> Any:
    try:
        return loads_json(data, where=what)
    except ValueError as err:
        raise VerificationError(f"{what} is not JSON") from err


def _bundle_candidates(
    reader: RegistryReader, repository: str, digest: str
) -> tuple[list[_Candidate], list[str]]:
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
            _Candidate(
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


def _legacy_candidates(
    reader: RegistryReader, repository: str, digest: str
) -> tuple[list[_Candidate], list[str]]:
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
            _Candidate(
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


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _check_tlog(
    cand: _Candidate, root: certs.TrustedRoot, verifiers: list[bytes]
) -> tlog.TlogEntry:
    if not cand.entries:
        raise VerificationError("the signature has no transparency-log entry")
    reasons = []
    for entry in cand.entries:
        try:
            tlog.verify_entry(entry, root)
            for i, verifier in enumerate(verifiers):
                try:
                    tlog.check_body(
                        entry,
                        payload_sha256=cand.payload_sha256,
                        signature=cand.signature,
                        verifier_der=verifier,
                    )
                    break
                except VerificationError:
                    if i == len(verifiers) - 1:
                        raise
            return entry
        except VerificationError as err:
            reasons.append(err.message)
    raise VerificationError(reasons[0])


def _matches(value: str, exact: str, regexp: str) -> bool:
    """``value`` equals ``exact``, or (without it) matches ``regexp`` as cosign does: RE2, in
    linear time, so a hostile pattern from an index or a long identity costs nothing."""
    if exact:
        return value == exact
    if not regexp:
        return False
    options = re2.Options()
    options.log_errors = False
    try:
        pattern = re2.compile(regexp, options)
    except re2.error:
        raise ConfigError(f"invalid identity or issuer regexp {regexp[:80]!r}",
                          hint="fix the signature policy (an RE2 regular expression)") from None
    return pattern.search(value) is not None


def _check(
    cand: _Candidate,
    *,
    digest: str,
    policy: CosignPolicy,
    key: keys.PublicKey | None,
    root: certs.TrustedRoot | None,
) -> SignatureInfo:
    if policy.keyless:
        if cand.certificate is None:
            raise VerificationError("the signature has no certificate, but the policy is keyless")
        verify_key: Any = cand.certificate.public_key()
        verifiers = [_der(cand.certificate)]
    else:
        assert key is not None
        verify_key = key
        verifiers = [keys.public_key_der(key)]
        if cand.certificate is not None:
            verifiers.append(_der(cand.certificate))
    if not keys.verify(verify_key, cand.signature, cand.signed, prehashed=cand.prehashed):
        what = "the key" if not policy.keyless else "its certificate"
        raise VerificationError(f"the signature does not verify with {what}")
    entry = None
    # Keyless needs the log (unless ignore-tlog); with a key the signature suffices offline, but
    # an entry that is present must verify.
    if root is not None and not policy.ignore_tlog and (policy.keyless or cand.entries):
        entry = _check_tlog(cand, root, verifiers)
    info = SignatureInfo(
        form=cand.form,
        digest=digest,
        signer=f"key {keys.key_id(key)[:16]}" if key else "",
        key_id=keys.key_id(key) if key else "",
        log_index=entry.log_index if entry else None,
        tlog_verified=entry is not None,
        signed_at=(
            dt.datetime.fromtimestamp(entry.integrated_time, dt.UTC).isoformat() if entry else ""
        ),
    )
    if not policy.keyless:
        return info
    assert cand.certificate is not None and root is not None
    when = (
        dt.datetime.fromtimestamp(entry.integrated_time, dt.UTC)
        if entry
        else dt.datetime.now(dt.UTC)
    )
    certs.verify_chain(cand.certificate, root, when, cand.chain)
    ident = certs.identity(cand.certificate)
    if not any(
        _matches(s, policy.certificate_identity, policy.certificate_identity_regexp)
        for s in ident.subjects
    ):
        raise VerificationError(
            f"the certificate is for {', '.join(ident.subjects) or 'no identity'}, not"
            f" {policy.certificate_identity or '~' + policy.certificate_identity_regexp}"
        )
    if not _matches(
        ident.issuer, policy.certificate_oidc_issuer, policy.certificate_oidc_issuer_regexp
    ):
        raise VerificationError(
            f"the certificate was issued by {ident.issuer or 'no OIDC issuer'}, not"
            f" {policy.certificate_oidc_issuer or '~' + policy.certificate_oidc_issuer_regexp}"
        )
    return SignatureInfo(
        form=cand.form,
        digest=digest,
        signer=", ".join(ident.subjects),
        issuer=ident.issuer,
        log_index=info.log_index,
        tlog_verified=info.tlog_verified,
        signed_at=info.signed_at or when.isoformat(),
    )


def verify_digest(
    *,
    reader: RegistryReader,
    repository: str,
    digest: str,
    policy: CosignPolicy,
    trusted_root: certs.TrustedRoot | None = None,
    key: keys.PublicKey | None = None,
) -> VerificationResult:
    """Verify the signatures of ``repository@digest``; raise VerificationError naming it."""
    reference = f"{repository}@{digest}"
    if policy.keyless and trusted_root is None:
        raise ConfigError(
            f"{reference}: keyless verification ({policy.describe()}) needs a trusted root",
            hint="pass --trusted-root trusted_root.json or set artifact.verify.trustedRoot",
        )
    if not policy.keyless and key is None:
        key = load_key_ref(policy.key)
    try:
        found, errors = _bundle_candidates(reader, repository, digest)
        legacy, legacy_errors = _legacy_candidates(reader, repository, digest)
    except VerificationError as err:
        raise VerificationError(f"{reference}: signature rejected: {err.message}") from err
    found += legacy
    errors += legacy_errors
    verified = []
    for cand in found:
        try:
            verified.append(_check(cand, digest=digest, policy=policy, key=key, root=trusted_root))
        except VerificationError as err:
            errors.append(f"{cand.form}: {err.message}")
    if verified:
        return VerificationResult(reference, policy.describe(), verified)
    if not errors:
        raise VerificationError(
            f"{reference}: no cosign signature found (required by {policy.source or 'the policy'})",
            hint="sign it (falcoctl-py artifact sign / cosign sign) or pass --no-verify",
        )
    raise VerificationError(
        f"{reference}: signature rejected: {_summary(errors)}",
        hint=f"the artifact must be signed by {policy.describe()}",
    )


def _summary(errors: list[str]) -> str:
    """``where: reason`` items grouped by reason, at most three reasons."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        where, _, reason = error.partition(": ")
        grouped.setdefault(reason, []).append(where)
    return "; ".join(f"{', '.join(w)}: {r}" for r, w in list(grouped.items())[:3])


class Verifier:
    """The install/pull/follow hook: ``verifier(registry, repository, digest, entry)``."""

    def __init__(self, *, settings: VerifySettings, client: Any) -> None:
        self.settings = settings
        self.store = SignatureStore(client)
        self._root: certs.TrustedRoot | None = None
        self.last: VerificationResult | None = None

    def trusted_root(self) -> certs.TrustedRoot | None:
        if self._root is None and self.settings.trusted_root is not None:
            self._root = certs.load_trusted_root(self.settings.trusted_root)
        return self._root

    def __call__(self, registry: str, repository: str, digest: str, entry: object = None) -> None:
        name = f"{registry}/{repository}"
        policy = self.settings.policy_for(name, entry)
        if policy is None:
            log.debug("no signature policy for %s", name)
            return
        root = self.trusted_root()
        result = verify_digest(
            reader=self.store,
            repository=name,
            digest=digest,
            policy=policy,
            trusted_root=root,
        )
        self.last = result
        log.info("verified %s: signed by %s", result.reference, result.signatures[0].signer)


def make_verifier(
    *,
    settings: VerifySettings,
    client: Any,
    warn: Callable[[str], None] | None = None,
) -> Callable[..., None] | None:
    """The hook install, pull and follow call before writing; None when verification is off."""
    if settings.no_verify:
        (warn or log.warning)(
            "signature verification is disabled (--no-verify / artifact.noVerify /"
            " FALCOCTL_ARTIFACT_NOVERIFY): artifacts are installed unchecked"
        )
        return None
    return Verifier(settings=settings, client=client)
