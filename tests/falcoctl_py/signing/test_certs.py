"""Trusted roots, certificate chains and Fulcio identities."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509

from falcoctl_py.errors import ConfigError, VerificationError
from falcoctl_py.signing import certs
from tests.falcoctl_py.signing.standins import (
    NOW,
    FulcioStandIn,
    RekorStandIn,
    new_key,
    trusted_root_json,
)


def test_trusted_root_is_parsed() -> None:
    fulcio, rekor = FulcioStandIn(), RekorStandIn()
    root = certs.parse_trusted_root(trusted_root_json([fulcio], [rekor]), source="r.json")
    [ca] = root.authorities
    assert ca.chain == [fulcio.intermediate, fulcio.root]
    [log] = root.logs
    assert log.log_id == rekor.log_id
    assert root.log_for(rekor.log_id, rekor.time) is log
    assert root.log_for(b"x" * 32, rekor.time) is None


@pytest.mark.parametrize(
    "data", [b"not json", b"[]", json.dumps({"tlogs": [{"publicKey": {}}]}).encode()]
)
def test_malformed_trusted_root_is_a_config_error(data: bytes) -> None:
    with pytest.raises(ConfigError, match="not a Sigstore trusted root"):
        certs.parse_trusted_root(data, source="r.json")


def test_identity_from_san_and_issuer_extensions() -> None:
    fulcio = FulcioStandIn()
    cert = fulcio.issue(
        new_key().public_key(),
        identity="https://github.com/o/r/w@refs/x",
        issuer="https://token.actions.githubusercontent.com",
    )
    ident = certs.identity(cert)
    assert ident.subjects == ["https://github.com/o/r/w@refs/x"]
    assert ident.issuer == "https://token.actions.githubusercontent.com"


def test_chain_check_at_the_signed_time() -> None:
    fulcio = FulcioStandIn()
    root = certs.parse_trusted_root(trusted_root_json([fulcio], []), source="r")
    cert = fulcio.issue(new_key().public_key(), identity="a@b.c", issuer="https://i")
    assert certs.verify_chain(cert, root, NOW).chain[-1] == fulcio.root
    with pytest.raises(VerificationError, match="not valid at the signing time"):
        certs.verify_chain(cert, root, NOW + dt.timedelta(hours=1))
    rogue = FulcioStandIn(name="rogue").issue(
        new_key().public_key(), identity="a@b.c", issuer="https://i"
    )
    with pytest.raises(VerificationError, match="does not chain"):
        certs.verify_chain(rogue, root, NOW)


def test_load_certificate_accepts_pem_and_der_and_refuses_garbage() -> None:
    from cryptography.hazmat.primitives import serialization

    cert = FulcioStandIn().root
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert certs.load_certificate(pem) == cert == certs.load_certificate(der)
    with pytest.raises(VerificationError):
        certs.load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert isinstance(cert, x509.Certificate)


def test_untrusted_intermediates_help_only_up_to_a_trusted_root() -> None:
    fulcio = FulcioStandIn()
    doc = json.loads(trusted_root_json([fulcio], []))
    doc["certificateAuthorities"][0]["certChain"]["certificates"].pop(0)  # root only
    root = certs.parse_trusted_root(json.dumps(doc).encode(), source="r")
    cert = fulcio.issue(new_key().public_key(), identity="a@b.c", issuer="https://i")
    with pytest.raises(VerificationError, match="does not chain"):
        certs.verify_chain(cert, root, NOW)
    assert certs.verify_chain(cert, root, NOW, [fulcio.intermediate, fulcio.root])
    rogue = FulcioStandIn(name="rogue")
    bad = rogue.issue(new_key().public_key(), identity="a@b.c", issuer="https://i")
    with pytest.raises(VerificationError, match="does not chain"):
        certs.verify_chain(bad, root, NOW, [rogue.intermediate, rogue.root, fulcio.intermediate])
