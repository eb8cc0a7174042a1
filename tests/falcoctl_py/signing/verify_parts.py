"""What the verification tests share: signing on the real registry, policies, rejections."""

from __future__ import annotations

import datetime as dt

import pytest

from falcoctl_py.errors import VerificationError
from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import bundle as bundles
from falcoctl_py.signing import certs, simplesigning
from falcoctl_py.signing.policy import CosignPolicy
from falcoctl_py.signing.sign import SignResult, sign_digest
from falcoctl_py.signing.store import SignatureStore
from falcoctl_py.signing.verify import verify_digest
from tests.falcoctl_py.signing.conftest import KeyPair, Sigstore, push_artifact
from tests.falcoctl_py.signing.standins import FulcioStandIn, new_key
from tests.realparts import Registry

IDENTITY = "https://github.com/falcosecurity/rules/.github/workflows/release.yaml@refs/tags/v1"


ISSUER = "https://token.actions.githubusercontent.com"


KEYLESS = CosignPolicy(
    certificate_identity_regexp="https://github.com/falcosecurity/rules/",
    certificate_oidc_issuer=ISSUER,
    source="index entry falco-rules",
)


def _repo(reg: Registry, name: str) -> str:
    return f"{reg.host}/sig/{name}"


def _pushed(client: RegistryClient, reg: Registry, name: str) -> tuple[str, str]:
    """A small artifact pushed to ``sig/NAME``: its repository and digest."""
    repo = _repo(reg, name)
    return repo, push_artifact(client, repo)


def _key_sign(
    store: SignatureStore, repo: str, digest: str, kp: KeyPair, *forms: str
) -> SignResult:
    return sign_digest(store=store, repository=repo, digest=digest, key=kp.private, forms=forms)


def _key_policy(kp: KeyPair) -> CosignPolicy:
    return CosignPolicy(key=str(kp.pub_file), source="--verify-key")


def _keyless_sign(
    store: SignatureStore,
    repo: str,
    digest: str,
    ss: Sigstore,
    *,
    forms: tuple[str, ...],
    identity: str = IDENTITY,
    issuer: str = ISSUER,
    fulcio: FulcioStandIn | None = None,
    not_before: dt.datetime | None = None,
    log: object = None,
) -> None:
    key = new_key()
    cert = (fulcio or ss.fulcio).issue(
        key.public_key(), identity=identity, issuer=issuer, not_before=not_before
    )
    sign_digest(
        store=store,
        repository=repo,
        digest=digest,
        key=key,
        certificate=cert,
        chain=[ss.fulcio.intermediate, ss.fulcio.root],
        log=log if log is not None else ss.rekor.record,  # type: ignore[arg-type]
        forms=forms,
    )


def _root(ss: Sigstore) -> certs.TrustedRoot:
    return certs.load_trusted_root(ss.root_file)


def _attach_bundle(client: RegistryClient, repo: str, blob: bytes, subject: str) -> None:
    """Publish ``blob`` (already pushed) as a bundle referring to ``subject``, by the
    referrers tag schema."""
    described = client.get_manifest(repo, subject)
    manifest = bundles.referrer_manifest(
        bundle_blob=blob,
        subject_digest=subject,
        subject_size=len(described.data),
        subject_media_type=described.media_type,
    )
    client.push_manifest(
        repo, simplesigning.sha256_digest(manifest), manifest, simplesigning.OCI_MANIFEST
    )
    index = bundles.add_to_referrers_index(None, manifest)
    client.push_manifest(repo, bundles.referrers_tag(subject), index, bundles.OCI_INDEX)


def _reject(
    store: SignatureStore, repo: str, digest: str, policy: CosignPolicy, **kw: object
) -> str:
    with pytest.raises(VerificationError) as info:
        verify_digest(reader=store, repository=repo, digest=digest, policy=policy, **kw)  # type: ignore[arg-type]
    message = info.value.one_line()
    assert f"{repo}@{digest}" in message
    assert "\n" not in message
    return message
