"""Command signing for device protocol v1 (docs/protocol.md, "Command signing").

Pure functions, no I/O. The canonical form is implemented here byte for byte instead of
relying on ``json.dumps``: members sorted by the UTF-8 bytes of their keys at every
level, no whitespace, only the JSON-mandatory string escapes, raw UTF-8 for everything
else, integers in plain decimal, no floats.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

MAX_COMMAND_TTL_MS = 600_000
MAX_SAFE_INT = 2**53 - 1
COMMANDS = frozenset({"unlock", "lock", "config", "ping", "time"})

_SHORT_ESCAPES = {
    0x22: '\\"',
    0x5C: "\\\\",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
}
# str.translate table: every character that JSON requires to be escaped.
_ESCAPE_TABLE: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPE_TABLE.update(_SHORT_ESCAPES)
_HEX = frozenset("0123456789abcdef")


def _string(s: str) -> str:
    return '"' + s.translate(_ESCAPE_TABLE) + '"'


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8")


def _emit(value: object, out: list[str]) -> None:
    # bool before int: bool is a subclass of int in Python.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):  # bool was handled above
        n = int(value)
        if not -MAX_SAFE_INT <= n <= MAX_SAFE_INT:
            raise ValueError(f"integer {n} outside the interoperable range ±(2^53-1)")
        out.append(str(n))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"object keys must be strings, got {type(key).__name__}")
        out.append("{")
        first = True
        for key in sorted(value, key=_key_bytes):
            if not first:
                out.append(",")
            first = False
            out.append(_string(key))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    elif isinstance(value, float):
        raise ValueError("floats are not allowed in the canonical form (use integers)")
    else:
        raise ValueError(f"type {type(value).__name__} is not allowed in the canonical form")


def canonical_json(value: object) -> bytes:
    """Canonical UTF-8 serialisation of any JSON value (objects, arrays, strings, ints,
    booleans, null). Raises ValueError for floats, non-string keys, other types, ints
    beyond ±(2^53-1) and strings that cannot be encoded (lone surrogates)."""
    out: list[str] = []
    _emit(value, out)
    return "".join(out).encode("utf-8")


def canonical_bytes(command: Mapping[str, object]) -> bytes:
    """The bytes that are signed: the command without its top-level ``sig`` member, in
    canonical form."""
    if not isinstance(command, Mapping):
        raise ValueError("a command is a JSON object")
    return canonical_json({k: v for k, v in command.items() if k != "sig"})


def _key(secret_hex: str) -> bytes:
    if not isinstance(secret_hex, str) or len(secret_hex) != 64:
        raise ValueError("a device secret is 64 hexadecimal characters")
    try:
        return bytes.fromhex(secret_hex)
    except ValueError:
        raise ValueError("a device secret is 64 hexadecimal characters") from None


def sign(command: Mapping[str, object], secret_hex: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``canonical_bytes(command)`` under the device key."""
    return hmac.new(_key(secret_hex), canonical_bytes(command), hashlib.sha256).hexdigest()


def verify(command_with_sig: Mapping[str, object], secret_hex: str) -> bool:
    """True when ``sig`` is the correct signature. Constant-time comparison; a missing
    or malformed ``sig`` or a command that has no canonical form gives False."""
    key = _key(secret_hex)
    if not isinstance(command_with_sig, Mapping):
        return False
    sig = command_with_sig.get("sig")
    if not isinstance(sig, str) or len(sig) != 64 or not _HEX.issuperset(sig):
        return False
    try:
        message = canonical_bytes(command_with_sig)
    except ValueError:
        return False
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii"))


def encode_command(command_with_sig: Mapping[str, object]) -> bytes:
    """The MQTT payload of a command: the canonical form of the COMPLETE object,
    including ``sig`` (the platform MUST publish commands this way, see the spec)."""
    return canonical_json(command_with_sig)


def new_nonce() -> str:
    """32 lowercase hex characters from the OS CSPRNG."""
    return secrets.token_hex(16)


def build_command(
    device_id: str,
    cmd: str,
    args: Mapping[str, object],
    secret_hex: str,
    now_ms: int,
    ttl_ms: int,
    command_id: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A complete signed command. ``ttl_ms`` is capped at MAX_COMMAND_TTL_MS (10 min).
    The result is validated against the cmd schema; raises ValueError (ProtocolError
    is one) for bad arguments."""
    from weldguard.device.protocol.codec import validate_command  # avoid import cycle

    if cmd not in COMMANDS:
        raise ValueError(f"unknown command {cmd!r}")
    if type(now_ms) is not int or type(ttl_ms) is not int:
        raise ValueError("now_ms and ttl_ms are integers (milliseconds)")
    if ttl_ms <= 0:
        raise ValueError("ttl_ms must be positive")
    ttl = min(ttl_ms, MAX_COMMAND_TTL_MS)
    command: dict[str, Any] = {
        "v": 1,
        "id": command_id if command_id is not None else str(uuid.uuid4()),
        "cmd": cmd,
        "dev": device_id,
        "iat": now_ms,
        "exp": now_ms + ttl,
        "nonce": nonce if nonce is not None else new_nonce(),
        "args": dict(args),
    }
    command["sig"] = sign(command, secret_hex)
    validate_command(command)
    return command
