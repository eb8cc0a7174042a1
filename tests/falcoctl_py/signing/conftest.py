"""Fixtures of the signing tests: one real registry per module, a client, artifacts, keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from falcoctl_py.oci import RegistryClient
from falcoctl_py.signing import keys
from falcoctl_py.signing.store import SignatureStore
from tests.falcoctl_py.signing.standins import (
    FulcioStandIn,
    RekorStandIn,
    new_key,
    trusted_root_json,
)
from tests.realparts import Registry, start_registry

RULES_CONFIG = "application/vnd.cncf.falco.rulesfile.config.v1+json"
RULES_LAYER = "application/vnd.cncf.falco.rulesfile.layer.v1+tar+gzip"


@pytest.fixture(scope="module")
def sig_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One docker-registry for a whole test module (each test uses its own repository)."""
    reg = start_registry(tmp_path_factory.mktemp("sigreg"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def client(sig_registry: Registry) -> Iterator[RegistryClient]:
    with RegistryClient(plain_http=True) as c:
        yield c


@pytest.fixture
def store(client: RegistryClient) -> SignatureStore:
    return SignatureStore(client)


def push_artifact(client: RegistryClient, repository: str, content: bytes = b"rules") -> str:
    """Push a small Falco rulesfile artifact under tag 1.0.0; return its manifest digest."""
    config = json.dumps({"name": repository.rsplit("/", 1)[-1], "version": "1.0.0"}).encode()
    cdig = client.push_blob(repository, config)
    ldig = client.push_blob(repository, content)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": RULES_CONFIG, "digest": cdig, "size": len(config)},
            "layers": [{"mediaType": RULES_LAYER, "digest": ldig, "size": len(content)}],
        }
    ).encode()
    return client.push_manifest(
        repository, "1.0.0", manifest, "application/vnd.oci.image.manifest.v1+json"
    )


@dataclass
class Sigstore:
    """A Fulcio and a Rekor stand-in and the trusted root file naming them."""

    fulcio: FulcioStandIn
    rekor: RekorStandIn
    root_file: Path


@pytest.fixture
def sigstore(tmp_path: Path) -> Sigstore:
    fulcio, rekor = FulcioStandIn(), RekorStandIn()
    path = tmp_path / "trusted_root.json"
    path.write_bytes(trusted_root_json([fulcio], [rekor]))
    return Sigstore(fulcio, rekor, path)


@dataclass
class KeyPair:
    private: ec.EllipticCurvePrivateKey
    pub_file: Path
    key_file: Path
    password: str


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    """A cosign key pair on disk: cosign.key (encrypted, password 'test') and cosign.pub."""
    key = new_key()
    (tmp_path / "cosign.key").write_bytes(keys.encrypt_private_key(key, "test"))
    (tmp_path / "cosign.pub").write_bytes(keys.public_key_pem(key.public_key()))
    return KeyPair(key, tmp_path / "cosign.pub", tmp_path / "cosign.key", "test")
