"""Signature verification cost against a real registry, as a ratio to one manifest fetch.

Baseline: ``get_manifest`` of the artifact's digest (what an install does anyway). Measured:
``verify_digest`` with a key (legacy ``.sig`` form only; bundle via the referrers tag only) and
keyless (both forms, SET and inclusion proof checked against a trusted root), plus cosign.key
decryption (scrypt N=32768), which ``artifact sign`` pays once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _per_op(fn: Callable[[], object], seconds: float = 2.0) -> float:
    fn()  # warm-up
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        count += 1
    return (time.perf_counter() - started) / count


@dataclass
class _Signed:
    """What the measurements verify: key-signed artifacts (one per form) and a keyless one."""

    key: Any  # the private key (its encrypted form is measured too)
    pub: Any
    by_key: Any  # CosignPolicy with the key
    repos: dict[str, tuple[str, str]]  # signature form -> (repository, digest)
    root: Any  # the trusted root of the stand-in Fulcio and Rekor
    keyless: Any  # CosignPolicy with identity and issuer
    keyless_ref: tuple[str, str]  # (repository, digest)


Repos = dict[str, tuple[str, str]]  # signature form -> (repository, digest)


def _sign_with_key(client: Any, store: Any, host: str, work: Path
                   ) -> tuple[Any, Any, Any, Repos]:
    """One artifact per signature form, signed with a new key: (key, pub, policy, repos)."""
    from falcoctl_py.signing import keys
    from falcoctl_py.signing.policy import CosignPolicy
    from falcoctl_py.signing.sign import sign_digest
    from tests.falcoctl_py.signing.conftest import push_artifact
    from tests.falcoctl_py.signing.standins import new_key

    key = new_key()
    (work / "cosign.pub").write_bytes(keys.public_key_pem(key.public_key()))
    by_key = CosignPolicy(key=str(work / "cosign.pub"), source="bench")
    pub = keys.load_public_key((work / "cosign.pub").read_bytes(), source="pub")
    repos: Repos = {}
    for form in ("legacy", "bundle"):
        repo = f"{host}/bench/{form}"
        digest = push_artifact(client, repo)
        sign_digest(store=store, repository=repo, digest=digest, key=key, forms=(form,))
        repos[form] = (repo, digest)
    return key, pub, by_key, repos


def _sign_keyless(client: Any, store: Any, host: str) -> tuple[Any, Any, tuple[str, str]]:
    """An artifact signed keyless (stand-in Fulcio certificate, Rekor entry):
    (trusted root, policy, (repository, digest))."""
    from falcoctl_py.signing import certs
    from falcoctl_py.signing.policy import CosignPolicy
    from falcoctl_py.signing.sign import sign_digest
    from tests.falcoctl_py.signing.conftest import push_artifact
    from tests.falcoctl_py.signing.standins import (
        FulcioStandIn,
        RekorStandIn,
        new_key,
        trusted_root_json,
    )

    fulcio, rekor = FulcioStandIn(), RekorStandIn()
    root = certs.parse_trusted_root(trusted_root_json([fulcio], [rekor]), source="bench")
    signer = new_key()
    cert = fulcio.issue(signer.public_key(), identity="dev@example.com",
                        issuer="https://issuer.example")
    repo = f"{host}/bench/keyless"
    digest = push_artifact(client, repo)
    sign_digest(store=store, repository=repo, digest=digest, key=signer, certificate=cert,
                log=rekor.record)
    keyless = CosignPolicy(certificate_identity="dev@example.com",
                           certificate_oidc_issuer="https://issuer.example")
    return root, keyless, (repo, digest)


def _measure(client: Any, store: Any, signed: _Signed) -> list[tuple[str, float]]:
    """Seconds per operation: the manifest fetch (baseline) first, then each verification."""
    from falcoctl_py.signing import keys
    from falcoctl_py.signing.verify import verify_digest

    rows = [("manifest fetch (baseline)", _per_op(lambda: client.get_manifest(
        *signed.repos["legacy"])))]
    for form, (repo, digest) in signed.repos.items():
        rows.append((f"verify key, {form} form", _per_op(
            lambda r=repo, d=digest: verify_digest(  # type: ignore[misc]
                reader=store, repository=r, digest=d, policy=signed.by_key, key=signed.pub))))
    krepo, kdigest = signed.keyless_ref
    rows.append(("verify keyless, both forms + tlog", _per_op(lambda: verify_digest(
        reader=store, repository=krepo, digest=kdigest, policy=signed.keyless,
        trusted_root=signed.root))))
    encrypted = keys.encrypt_private_key(signed.key, "pw")
    rows.append(("decrypt cosign.key (scrypt)", _per_op(
        lambda: keys.load_private_key(encrypted, password="pw", source="k"), 1.0)))
    return rows


def main() -> None:
    if shutil.which("docker-registry") is None:
        print("skipped: docker-registry is not installed (make install-test)")
        return
    from falcoctl_py.oci import RegistryClient
    from falcoctl_py.signing.store import SignatureStore
    from tests.realparts import start_registry

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry")
        try:
            with RegistryClient(plain_http=True) as client:
                store = SignatureStore(client)
                key, pub, by_key, repos = _sign_with_key(client, store, reg.host, work)
                root, keyless, keyless_ref = _sign_keyless(client, store, reg.host)
                signed = _Signed(key, pub, by_key, repos, root, keyless, keyless_ref)
                rows = _measure(client, store, signed)
        finally:
            reg.stop()
    base = rows[0][1]
    for label, seconds in rows:
        print(f"{label:40s} {seconds * 1000:8.2f} ms/op  x{seconds / base:6.2f} of baseline")
