"""cosign keys: ECDSA P-256 public keys (PEM), ``cosign.key`` private keys, sign and verify.

``cosign.key`` is a PEM block ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older: ``ENCRYPTED COSIGN
PRIVATE KEY``) whose body is JSON: ``{"kdf": {"name": "scrypt", "params": {"N", "r", "p"},
"salt"}, "cipher": {"name": "nacl/secretbox", "nonce"}, "ciphertext"}``; the plaintext is the
PKCS#8 DER of the key. An unencrypted PKCS#8 PEM (``PRIVATE KEY`` / ``EC PRIVATE KEY``) is
accepted too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from falcoctl_py.bounded import loads_json
from falcoctl_py.errors import ConfigError, VerificationError

MAX_KEY_FILE = 256 * 1024  # a key, certificate or cosign.key file is a few kilobytes

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

ENCRYPTED_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1


@dataclass(frozen=True, slots=True)
class PemBlock:
    type: str
    der: bytes


def pem_blocks(data: bytes) -> list[PemBlock]:
    """Every PEM block of ``data``, in order."""
    blocks = []
    for match in _PEM_RE.finditer(data):
        body = b"".join(line for line in match.group(2).split() if b":" not in line)
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            continue
        blocks.append(PemBlock(match.group(1).decode(), der))
    return blocks


def load_public_key(data: bytes, *, source: str) -> PublicKey:
    """A PEM public key (cosign.pub); ECDSA P-256 is cosign's default."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as err:
        raise ConfigError(
            "not a PEM public key",
            path=source,
            hint="pass the cosign public key file (cosign.pub, '-----BEGIN PUBLIC KEY-----')",
        ) from err
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"unsupported public key type {type(key).__name__}", path=source)
    return key


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> str:
    """A short fingerprint: sha256 of the DER SubjectPublicKeyInfo, hex."""
    return hashlib.sha256(public_key_der(key)).hexdigest()


def _scrypt_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password)


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: str) -> bytes:
    """``key`` as a cosign.key PEM (scrypt + nacl/secretbox), the format ``cosign`` writes."""
    from nacl.secret import SecretBox

    salt, nonce = os.urandom(32), os.urandom(24)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    box = SecretBox(_scrypt_key(password.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    sealed = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    body = base64.encodebytes(json.dumps(doc).encode()).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    pem_type = ENCRYPTED_PEM_TYPES[0]
    text = f"-----BEGIN {pem_type}-----\n" + "\n".join(lines) + f"\n-----END {pem_type}-----\n"
    return text.encode()


def _decrypt(doc: dict[str, Any], password: str, source: str) -> bytes:
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        kdf, cipher = doc["kdf"], doc["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise ConfigError(
                f"unsupported key encryption {kdf['name']}/{cipher['name']}", path=source
            )
        params = kdf["params"]
        key = _scrypt_key(
            password.encode(),
            base64.b64decode(kdf["salt"]),
            int(params["N"]),
            int(params["r"]),
            int(params["p"]),
        )
        nonce, sealed = base64.b64decode(cipher["nonce"]), base64.b64decode(doc["ciphertext"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError("malformed cosign private key", path=source) from err
    try:
        return SecretBox(key).decrypt(sealed, nonce)
    except CryptoError as err:
        raise ConfigError(
            "cannot decrypt the cosign private key: wrong password",
            path=source,
            hint="set COSIGN_PASSWORD to the password given to `cosign generate-key-pair`",
        ) from err


def load_private_key(
    data: bytes, *, password: str | None, source: str
) -> ec.EllipticCurvePrivateKey:
    """A cosign.key (encrypted) or a plain PKCS#8/SEC1 PEM ECDSA private key."""
    blocks = pem_blocks(data)
    if not blocks:
        raise ConfigError("no PEM block in the private key file", path=source)
    block = blocks[0]
    if block.type in ENCRYPTED_PEM_TYPES:
        try:
            doc = loads_json(block.der, where=source)
        except ValueError as err:
            raise ConfigError("malformed cosign private key", path=source) from err
        der = _decrypt(doc, password or "", source)
        key = serialization.load_der_private_key(der, None)
    else:
        try:
            key = serialization.load_pem_private_key(
                data, password.encode() if password and "ENCRYPTED" in block.type else None
            )
        except (ValueError, TypeError) as err:
            raise ConfigError(f"cannot load the private key: {err}", path=source) from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(
            f"unsupported private key type {type(key).__name__}",
            path=source,
            hint="use an ECDSA P-256 key (cosign generate-key-pair)",
        )
    return key


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """An ASN.1 ECDSA signature over sha256(data)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify(key: PublicKey, signature: bytes, data: bytes, *, prehashed: bool = False) -> bool:
    """Whether ``signature`` is valid for ``data`` (or for the sha256 digest ``data``)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if prehashed:
                return False
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algo: Any = Prehashed(hashes.SHA256()) if prehashed else hashes.SHA256()
            key.verify(signature, data, ec.ECDSA(algo))
        else:
            algo = Prehashed(hashes.SHA256()) if prehashed else hashes.SHA256()
            key.verify(signature, data, PKCS1v15(), algo)
    except (InvalidSignature, ValueError):
        return False
    return True


def b64decode(text: object, what: str) -> bytes:
    """Strict base64, raising a VerificationError naming ``what``."""
    if not isinstance(text, str):
        raise VerificationError(f"{what} is missing or not a string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as err:
        raise VerificationError(f"{what} is not valid base64") from err
