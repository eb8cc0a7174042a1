"""cosign key files: the encrypted cosign.key format, plain PEM keys, sign/verify."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from falcoctl_py.errors import ConfigError
from falcoctl_py.signing import keys
from tests.falcoctl_py.signing.standins import new_key


def test_cosign_key_has_cosigns_fields_and_round_trips() -> None:
    key = new_key()
    pem = keys.encrypt_private_key(key, "pw")
    [block] = keys.pem_blocks(pem)
    assert block.type == "ENCRYPTED SIGSTORE PRIVATE KEY"
    doc = json.loads(block.der)
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    loaded = keys.load_private_key(pem, password="pw", source="cosign.key")
    assert loaded.private_numbers() == key.private_numbers()


def test_older_cosign_header_is_accepted() -> None:
    key = new_key()
    pem = keys.encrypt_private_key(key, "pw").replace(b"SIGSTORE", b"COSIGN")
    assert b"ENCRYPTED COSIGN PRIVATE KEY" in pem
    assert keys.load_private_key(pem, password="pw", source="k").private_numbers() == (
        key.private_numbers()
    )


def test_wrong_password_is_a_clear_error() -> None:
    pem = keys.encrypt_private_key(new_key(), "right")
    with pytest.raises(ConfigError, match="wrong password") as info:
        keys.load_private_key(pem, password="left", source="cosign.key")
    assert "left" not in info.value.one_line()


def test_unencrypted_pkcs8_pem_is_accepted() -> None:
    key = new_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert keys.load_private_key(pem, password=None, source="k").private_numbers() == (
        key.private_numbers()
    )


def test_non_ec_or_garbage_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="no PEM block"):
        keys.load_private_key(b"garbage", password=None, source="k")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        keys.load_public_key(b"garbage", source="cosign.pub")


def test_sign_and_verify_raw_and_prehashed() -> None:
    import hashlib

    key = new_key()
    pub = key.public_key()
    sig = keys.sign(key, b"payload")
    assert keys.verify(pub, sig, b"payload")
    assert not keys.verify(pub, sig, b"payload!")
    assert keys.verify(pub, sig, hashlib.sha256(b"payload").digest(), prehashed=True)
    assert not keys.verify(ec.generate_private_key(ec.SECP256R1()).public_key(), sig, b"payload")
    assert not keys.verify(pub, b"not a signature", b"payload")
