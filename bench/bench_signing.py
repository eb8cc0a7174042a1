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
from pathlib import Path


def _per_op(fn: Callable[[], object], seconds: float = 2.0) -> float:
    fn()  # warm-up
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        count += 1
    return (time.perf_counter() - started) / count


def main() -> None:
    if shutil.which("docker-registry") is None:
        print("skipped: docker-registry is not installed (make install-test)")
        return
    from falcoctl_py.oci import RegistryClient
    from falcoctl_py.signing import certs, keys
    from falcoctl_py.signing.policy import CosignPolicy
    from falcoctl_py.signing.sign import sign_digest
    from falcoctl_py.signing.store import SignatureStore
    from falcoctl_py.signing.verify import verify_digest
    from tests.falcoctl_py.signing.conftest import push_artifact
    from tests.falcoctl_py.signing.standins import (
        FulcioStandIn,
        RekorStandIn,
        new_key,
        trusted_root_json,
    )
    from tests.realparts import start_registry

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry")
        try:
            with RegistryClient(plain_http=True) as client:
                store = SignatureStore(client)
                key = new_key()
                (work / "cosign.pub").write_bytes(keys.public_key_pem(key.public_key()))
                by_key = CosignPolicy(key=str(work / "cosign.pub"), source="bench")
                pub = keys.load_public_key((work / "cosign.pub").read_bytes(), source="pub")
                repos = {}
                for form in ("legacy", "bundle"):
                    repo = f"{reg.host}/bench/{form}"
                    digest = push_artifact(client, repo)
                    sign_digest(store=store, repository=repo, digest=digest, key=key, forms=(form,))
                    repos[form] = (repo, digest)
                fulcio, rekor = FulcioStandIn(), RekorStandIn()
                root = certs.parse_trusted_root(
                    trusted_root_json([fulcio], [rekor]), source="bench"
                )
                signer = new_key()
                cert = fulcio.issue(
                    signer.public_key(), identity="dev@example.com", issuer="https://issuer.example"
                )
                krepo = f"{reg.host}/bench/keyless"
                kdigest = push_artifact(client, krepo)
                sign_digest(
                    store=store,
                    repository=krepo,
                    digest=kdigest,
                    key=signer,
                    certificate=cert,
                    log=rekor.record,
                )
                keyless = CosignPolicy(
                    certificate_identity="dev@example.com",
                    certificate_oidc_issuer="https://issuer.example",
                )

                base = _per_op(lambda: client.get_manifest(*repos["legacy"]))
                rows = [("manifest fetch (baseline)", base)]
                for form, (repo, digest) in repos.items():
                    rows.append(
                        (
                            f"verify key, {form} form",
                            _per_op(
                                lambda r=repo, d=digest: verify_digest(  # type: ignore[misc]
                                    reader=store, repository=r, digest=d, policy=by_key, key=pub
                                )
                            ),
                        )
                    )
                rows.append(
                    (
                        "verify keyless, both forms + tlog",
                        _per_op(
                            lambda: verify_digest(
                                reader=store,
                                repository=krepo,
                                digest=kdigest,
                                policy=keyless,
                                trusted_root=root,
                            )
                        ),
                    )
                )
                encrypted = keys.encrypt_private_key(key, "pw")
                rows.append(
                    (
                        "decrypt cosign.key (scrypt)",
                        _per_op(
                            lambda: keys.load_private_key(encrypted, password="pw", source="k"), 1.0
                        ),
                    )
                )
        finally:
            reg.stop()
    for label, seconds in rows:
        print(f"{label:40s} {seconds * 1000:8.2f} ms/op  x{seconds / base:6.2f} of baseline")
