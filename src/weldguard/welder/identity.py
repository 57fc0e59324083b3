"""Keeping ID numbers (and certificate numbers derived from them) safe at rest.

A keyed HMAC finds a person without storing the number; Fernet ciphertext keeps
it recoverable for an authorised export; the mask is what screens show. Both
keys are derived from the one secret so that operators manage a single key."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


class IdentityVault:
    def __init__(self, secret: str) -> None:
        self._hash_key = _derive(secret, b"weldguard id-number hash v1")
        self._fernet = Fernet(
            base64.urlsafe_b64encode(_derive(secret, b"weldguard id-number enc v1"))
        )

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def decrypt(self, token: bytes) -> str:
        return self._fernet.decrypt(token).decode()


def mask_certificate_number(number: str) -> str:
    """Keeps the first 4 and last 4 characters, like the ID-number mask."""
    if len(number) <= 8:
        return number[:2] + "*" * max(0, len(number) - 2)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
