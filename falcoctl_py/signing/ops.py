"""``artifact sign`` and ``artifact verify`` as single calls: config, client, reference, policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falcoctl_py.errors import FalcoctlPyError, UsageError

if TYPE_CHECKING:
    from falcoctl_py.actions.artifact import TlsOptions
    from falcoctl_py.signing.sign import SignResult
    from falcoctl_py.signing.verify import VerificationResult


@dataclass(frozen=True, slots=True)
class IdentityFlags:
    """Keyless policy flags of ``artifact verify`` (cosign's names)."""

    certificate_identity: str = ""
    certificate_identity_regexp: str = ""
    certificate_oidc_issuer: str = ""
    certificate_oidc_issuer_regexp: str = ""
    ignore_tlog: bool = False

    @property
    def given(self) -> bool:
        return bool(
            self.certificate_identity
            or self.certificate_identity_regexp
            or self.certificate_oidc_issuer
            or self.certificate_oidc_issuer_regexp
        )


def _resolve(client: Any, config: Any, ref: str) -> tuple[str, str, Any]:
    """(``host/repo``, root digest, index entry or None) of a reference."""
    from falcoctl_py.actions.artifact import index_lookup
    from falcoctl_py.artifact.resolve import parse_artifact_ref, pin

    lookup = index_lookup(config)
    aref = parse_artifact_ref(ref, lookup)
    pinned = pin(aref, client.list_tags)
    entry = aref.entry
    if entry is None:
        try:  # as install does: a full reference finds its policy through the index name
            entry = lookup(pinned.repository.rsplit("/", 1)[-1])
            if entry is not None and f"{entry.registry}/{entry.repository}" != pinned.name:
                entry = None
        except FalcoctlPyError:  # no index configured or reachable: no index policy
            entry = None
    got = client.get_manifest(pinned.name, pinned.target)
    return pinned.name, got.digest, entry


def verify_reference(
    *,
    config_path: Path,
    ref: str,
    tls: TlsOptions,
    verify_key: str | None = None,
    trusted_root: Path | None = None,
    identity: IdentityFlags = IdentityFlags(),
) -> VerificationResult:
    """Verify the signatures of ``ref`` (index name or full reference) offline."""
    from falcoctl_py.actions.artifact import load, make_client
    from falcoctl_py.config import read_config_file
    from falcoctl_py.signing import certs
    from falcoctl_py.signing.policy import CosignPolicy, settings_from_config
    from falcoctl_py.signing.store import SignatureStore
    from falcoctl_py.signing.verify import verify_digest

    config = load(config_path)
    data = read_config_file(config.path, create=False) if config.path else {}
    settings = settings_from_config(data, verify_key=verify_key, trusted_root=trusted_root)
    with make_client(config, tls) as client:
        repository, digest, entry = _resolve(client, config, ref)
        if identity.given:
            policy: CosignPolicy | None = CosignPolicy(
                key=verify_key or "",
                certificate_identity=identity.certificate_identity,
                certificate_identity_regexp=identity.certificate_identity_regexp,
                certificate_oidc_issuer=identity.certificate_oidc_issuer,
                certificate_oidc_issuer_regexp=identity.certificate_oidc_issuer_regexp,
                ignore_tlog=identity.ignore_tlog,
                source="the command line",
            )
        else:
            policy = settings.policy_for(repository, entry)
        if policy is None:
            raise UsageError(
                f"{repository}@{digest}: no signature policy (no index entry signature, no"
                " --verify-key, no artifact.verify config)",
                hint="pass --verify-key cosign.pub, or --certificate-identity(-regexp) and"
                " --certificate-oidc-issuer(-regexp) with --trusted-root",
            )
        if identity.ignore_tlog and not identity.given:
            from dataclasses import replace

            policy = replace(policy, ignore_tlog=True)
        root = certs.load_trusted_root(settings.trusted_root) if settings.trusted_root else None
        return verify_digest(
            reader=SignatureStore(client),
            repository=repository,
            digest=digest,
            policy=policy,
            trusted_root=root,
        )


def sign_reference(
    *, config_path: Path, ref: str, key_path: Path, password: str | None, tls: TlsOptions
) -> SignResult:
    """Sign ``ref`` with a cosign.key, writing the ``.sig`` tag and a Sigstore bundle."""
    from falcoctl_py.actions.artifact import load, make_client
    from falcoctl_py.signing.sign import read_private_key, sign_digest
    from falcoctl_py.signing.store import SignatureStore

    key = read_private_key(key_path, password=password)
    config = load(config_path)
    with make_client(config, tls) as client:
        repository, digest, _entry = _resolve(client, config, ref)
        return sign_digest(
            store=SignatureStore(client), repository=repository, digest=digest, key=key
        )
