"""Keeping ID numbers (and certificate numbers derived from them) safe at rest.

A keyed HMAC finds a person without storing the number; Fernet ciphertext keeps
it recoverable for an authorised export; the mask is what screens show. Both
keys are derived from the one secret so that operators manage a single key."""

from __future__ import annotations

import hashlib
import hmac

from weldguard.crypto import SecretBox, derive_key


class IdentityVault:
    def __init__(self, secret: str) -> None:
        self._hash_key = derive_key(secret, b"weldguard id-number hash v1")
        self._box = SecretBox(secret, b"weldguard id-number enc v1")

    def lookup_hash(self, value: str) -> str:
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, value: str) -> bytes:
        return self._box.encrypt(value)

    def decrypt(self, token: bytes) -> str:
        return self._box.decrypt(token)


def mask_certificate_number(number: str) -> str:
    """Keeps the first 4 and last 4 characters, like the ID-number mask."""
    if len(number) <= 8:
        return number[:2] + "*" * max(0, len(number) - 2)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
