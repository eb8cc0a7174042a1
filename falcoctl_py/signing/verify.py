"""Verify the cosign signatures of a digest, offline: bundles first, then the legacy ``.sig`` tag.

A digest passes when at least one signature satisfies the policy: its document binds it to the
digest, the signature verifies with the key (or with the certificate, which chains to the
trusted root, was valid at the signed time and names the required identity and issuer), and its
transparency-log entry verifies against the trusted root's log keys (unless ``ignore-tlog``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from falcoctl_py.errors import ConfigError, VerificationError
from falcoctl_py.signing import certs, keys, tlog
from falcoctl_py.signing.candidates import Candidate, bundle_candidates, legacy_candidates
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


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _check_tlog(
    cand: Candidate, root: certs.TrustedRoot, verifiers: list[bytes]
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
    cand: Candidate,
    *,
    digest: str,
    policy: CosignPolicy,
    key: keys.PublicKey | None,
    root: certs.TrustedRoot | None,
) -> SignatureInfo:
    """What one candidate proves under ``policy``; raises VerificationError when nothing."""
    entry = _check_signature(cand, policy=policy, key=key, root=root)
    logged = dt.datetime.fromtimestamp(entry.integrated_time, dt.UTC) if entry else None
    if not policy.keyless:
        return SignatureInfo(
            form=cand.form,
            digest=digest,
            signer=f"key {keys.key_id(key)[:16]}" if key else "",
            key_id=keys.key_id(key) if key else "",
            log_index=entry.log_index if entry else None,
            tlog_verified=entry is not None,
            signed_at=logged.isoformat() if logged else "",
        )
    assert cand.certificate is not None and root is not None
    when = logged or dt.datetime.now(dt.UTC)
    ident = _check_identity(cand, policy=policy, root=root, when=when)
    return SignatureInfo(
        form=cand.form,
        digest=digest,
        signer=", ".join(ident.subjects),
        issuer=ident.issuer,
        log_index=entry.log_index if entry else None,
        tlog_verified=entry is not None,
        signed_at=when.isoformat(),
    )


def _check_signature(
    cand: Candidate,
    *,
    policy: CosignPolicy,
    key: keys.PublicKey | None,
    root: certs.TrustedRoot | None,
) -> tlog.TlogEntry | None:
    """The signature verifies with the key (or the certificate); its log entry, when checked."""
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
    # Keyless needs the log (unless ignore-tlog); with a key the signature suffices offline, but
    # an entry that is present must verify.
    if root is not None and not policy.ignore_tlog and (policy.keyless or cand.entries):
        return _check_tlog(cand, root, verifiers)
    return None


def _check_identity(
    cand: Candidate, *, policy: CosignPolicy, root: certs.TrustedRoot, when: dt.datetime
) -> certs.Identity:
    """The certificate chains to the root at ``when`` and names the policy's identity and
    issuer."""
    assert cand.certificate is not None
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
    return ident


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
        found, errors = bundle_candidates(reader, repository, digest)
        legacy, legacy_errors = legacy_candidates(reader, repository, digest)
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
