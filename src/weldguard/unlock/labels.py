"""Machine labels that cannot be forged (赋码).

The QR code on a machine holds a URL::

    {public_base_url}/s/{machine_code}.{sig}        e.g. …/s/WG3K9ABCDE.1MZXW6YTBOI3GK

``sig`` is one version character followed by the first 8 bytes of
HMAC-SHA256(key, "weldguard-label|{version}|{code}") in RFC 4648 base32 without
padding (13 characters). 64 bits are plenty here: a guess can only be tried
online, one request at a time, and every failure is logged and counted. The
whole URL stays short enough for a QR code of version 4 at error correction M
(33×33 modules), which still reads from a phone at arm's length on a small label.

**Versions and key rotation.** The version character chooses the key:
version ``1`` uses ``derive_key(secret, b"label-v1")``. To rotate, add version
``2`` with a new purpose (or a new secret) to :data:`LABEL_KEY_PURPOSES` and make
it :data:`CURRENT_VERSION`: new labels are printed with ``2`` while the labels
already on the machines keep verifying under ``1``, until ``1`` is removed once
they have been reprinted. A signature of a version that is not listed is
rejected as ``unknown_version``. Changing ``WELDGUARD_SECRET_KEY`` invalidates
every label (and every session and encrypted ID number), so it is not the way
to rotate labels.

A signature is compared as its canonical text, in constant time: base32's
unused trailing bits cannot be flipped to make a second valid spelling of the
same signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING

from weldguard.crypto import derive_key

if TYPE_CHECKING:
    from weldguard.config import Settings

log = logging.getLogger(__name__)

LABEL_PATH_PREFIX = "/s/"
CURRENT_VERSION = "1"
# version character -> HKDF purpose of its key
LABEL_KEY_PURPOSES: Mapping[str, bytes] = {"1": b"label-v1"}
MAC_BYTES = 8
MAC_CHARS = 13  # ceil(8 * 8 / 5)
# Machine codes are the platform's own ("WG" + 8 Crockford base32 characters);
# any upper-case code of the column's length is accepted so that older codes sign too.
CODE_PATTERN = re.compile(r"[0-9A-Z]{4,16}")
SIG_PATTERN = re.compile(rf"[0-9][A-Z2-7]{{{MAC_CHARS}}}")
MAX_TOKEN_CHARS = 16 + 1 + 1 + MAC_CHARS


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    UNKNOWN_VERSION = "unknown_version"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_MACHINE = "unknown_machine"

    @property
    def label(self) -> str:
        return {
            "malformed": "格式错误",
            "unknown_version": "未知的标签版本",
            "bad_signature": "签名不符",
            "unknown_machine": "焊机不存在",
        }[self.value]


class LabelRejected(ValueError):
    """A label token that is malformed, of an unknown version or not signed by us."""

    def __init__(self, reason: RejectReason, code: str | None = None) -> None:
        super().__init__(reason.label)
        self.reason = reason
        # The machine code as read, only when it has the shape of one (safe to log).
        self.code = code


@dataclass(frozen=True)
class ParsedLabel:
    code: str
    sig: str

    @property
    def version(self) -> str:
        return self.sig[0]


class LabelSigner:
    """Signs and checks machine labels under keys derived from the platform secret."""

    def __init__(
        self,
        secret: str,
        public_base_url: str,
        *,
        purposes: Mapping[str, bytes] = LABEL_KEY_PURPOSES,
        current_version: str = CURRENT_VERSION,
    ) -> None:
        if current_version not in purposes:
            raise ValueError(f"no key for label version {current_version!r}")
        self._keys = {version: derive_key(secret, purpose) for version, purpose in purposes.items()}
        self._current = current_version
        self.public_base_url = public_base_url.rstrip("/")

    def _mac(self, version: str, code: str) -> str:
        message = f"weldguard-label|{version}|{code}".encode()
        digest = hmac.new(self._keys[version], message, hashlib.sha256).digest()
        return base64.b32encode(digest[:MAC_BYTES]).decode().rstrip("=")

    def sign(self, code: str) -> str:
        """The signature printed after the dot: version character + MAC."""
        if not CODE_PATTERN.fullmatch(code):
            raise ValueError("machine codes are 4–16 upper-case letters and digits")
        return self._current + self._mac(self._current, code)

    def label_token(self, code: str) -> str:
        return f"{code}.{self.sign(code)}"

    def label_url(self, code: str) -> str:
        return f"{self.public_base_url}{LABEL_PATH_PREFIX}{self.label_token(code)}"

    def verify_label(self, code: str, sig: str) -> bool:
        """True when ``sig`` is this platform's signature of ``code`` (constant time)."""
        if not CODE_PATTERN.fullmatch(code) or not SIG_PATTERN.fullmatch(sig):
            return False
        version = sig[0]
        if version not in self._keys:
            return False
        expected = version + self._mac(version, code)
        return hmac.compare_digest(expected.encode(), sig.encode())

    def parse_label_token(self, token: str) -> ParsedLabel:
        """``CODE.SIG`` -> the verified label; :class:`LabelRejected` with the reason
        otherwise. Nothing is normalised: a label is read exactly as printed."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise LabelRejected(RejectReason.MALFORMED)
        code, sig = token.split(".")
        if not CODE_PATTERN.fullmatch(code):
            raise LabelRejected(RejectReason.MALFORMED)
        if not SIG_PATTERN.fullmatch(sig):
            raise LabelRejected(RejectReason.MALFORMED, code)
        if sig[0] not in self._keys:
            raise LabelRejected(RejectReason.UNKNOWN_VERSION, code)
        if not self.verify_label(code, sig):
            raise LabelRejected(RejectReason.BAD_SIGNATURE, code)
        return ParsedLabel(code, sig)

    def parse_label_path(self, path: str) -> ParsedLabel:
        """``/s/CODE.SIG`` (the path of a scanned label's URL) -> the verified label."""
        if not path.startswith(LABEL_PATH_PREFIX):
            raise LabelRejected(RejectReason.MALFORMED)
        return self.parse_label_token(path[len(LABEL_PATH_PREFIX) :])


@lru_cache(maxsize=8)
def _cached_signer(secret: str, public_base_url: str) -> LabelSigner:
    return LabelSigner(secret, public_base_url)


def signer_for(settings: Settings) -> LabelSigner:
    """The platform's signer (its keys derived once per secret and address)."""
    return _cached_signer(settings.resolved_secret_key(), settings.public_base_url)


class RejectionCounter:
    """Rejected label scans since the process started, by reason. The persisted
    scan record (with the person, place and time) comes with the scan page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RejectReason] = Counter()

    def record(self, rejected: LabelRejected, client: str | None = None) -> None:
        with self._lock:
            self._counts[rejected.reason] += 1
        # No signature in the log: a code (when it has the shape of one), a reason
        # and where the request came from.
        log.warning(
            "rejected label scan: reason=%s code=%s client=%s",
            rejected.reason.value,
            rejected.code or "-",
            client or "-",
        )

    def counts(self) -> dict[RejectReason, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


REJECTED_SCANS = RejectionCounter()
