"""Codec for device protocol v1 (docs/protocol.md). Pure, no I/O after import.

The schemas in ``schemas/*.json`` are loaded with importlib.resources and compiled once,
at import: with fastjsonschema (the full validator, which explains failures) and into a
generated exact-type fast check (see "fast accept path"). ``decode_up`` is on the ingest
hot path: a size check, orjson, a version check, the fast check; only a message the fast
check declines pays for fastjsonschema and the float scan.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final, Literal

import fastjsonschema
import orjson

__all__ = [
    "ACK_CODES",
    "DEVICE_ID_MAX",
    "DEVICE_ID_MIN",
    "FUTURE_SKEW_MS",
    "LATE_LIVE_MS",
    "MAX_BUFFER_AGE_MS",
    "MAX_COMMAND_TTL_MS",
    "MAX_PAYLOAD",
    "MAX_TOPIC_LEN",
    "AckCode",
    "ProtocolError",
    "TsVerdict",
    "UpKind",
    "classify_ts",
    "command_topic",
    "decode_command",
    "decode_up",
    "encode_up",
    "is_device_id",
    "load_schema",
    "parse_topic",
    "up_topic",
    "validate_command",
    "validate_up",
]

MAX_PAYLOAD: Final = 4096
MAX_COMMAND_TTL_MS: Final = 600_000
FUTURE_SKEW_MS: Final = 300_000
LATE_LIVE_MS: Final = 600_000
MAX_BUFFER_AGE_MS: Final = 30 * 24 * 3600 * 1000
DEVICE_ID_MIN: Final = 4
DEVICE_ID_MAX: Final = 32
MAX_TOPIC_LEN: Final = 47  # "wg/v1/" + 32 + "/up/hello" or "/down/cmd"
_DETAIL_MAX = 200

TOPIC_PREFIX: Final = "wg/v1/"


class UpKind(enum.StrEnum):
    HELLO = "hello"
    HB = "hb"
    TEL = "tel"
    EVT = "evt"
    ACK = "ack"


class AckCode(enum.IntEnum):
    OK = 0
    BAD_SIGNATURE = 1
    EXPIRED = 2
    REPLAYED_NONCE = 3
    WRONG_DEVICE = 4
    UNSUPPORTED_COMMAND = 5
    BAD_ARGUMENTS = 6
    BUSY = 7
    CLOCK_UNSYNCED = 8
    INTERNAL_ERROR = 9


ACK_CODES: Final[Mapping[int, tuple[str, str]]] = {
    0: ("ok", "成功"),
    1: ("bad_signature", "签名无效"),
    2: ("expired", "指令已过期"),
    3: ("replayed_nonce", "重复指令（随机数已使用）"),
    4: ("wrong_device", "设备编号不符"),
    5: ("unsupported_command", "设备不支持该指令"),
    6: ("bad_arguments", "指令参数错误"),
    7: ("busy", "设备忙"),
    8: ("clock_unsynced", "设备时钟未同步"),
    9: ("internal_error", "设备内部错误"),
}


class ProtocolError(ValueError):
    """A message that does not conform to the protocol. ``code`` is one of
    too_large, bad_json, not_object, bad_version, schema; ``detail`` is at most 200
    characters and names the failing field."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail[:_DETAIL_MAX]
        super().__init__(f"{code}: {self.detail}")


# ---------------------------------------------------------------- device ids, topics

_ID_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_KINDS: Final[dict[str, UpKind]] = {k.value: k for k in UpKind}


def is_device_id(s: object) -> bool:
    """4–32 characters from [A-Za-z0-9_-]."""
    return (
        isinstance(s, str) and DEVICE_ID_MIN <= len(s) <= DEVICE_ID_MAX and _ID_CHARS.issuperset(s)
    )


def parse_topic(topic: str) -> tuple[str, UpKind] | None:
    """``wg/v1/{device_id}/up/{kind}`` → (device_id, kind); anything else → None
    (down topics, wildcards, other versions, extra or missing levels)."""
    if len(topic) > MAX_TOPIC_LEN or not topic.startswith(TOPIC_PREFIX):
        return None
    parts = topic.split("/")
    if len(parts) != 5 or parts[3] != "up":
        return None
    kind = _KINDS.get(parts[4])
    if kind is None:
        return None
    device_id = parts[2]
    if not (DEVICE_ID_MIN <= len(device_id) <= DEVICE_ID_MAX and _ID_CHARS.issuperset(device_id)):
        return None
    return device_id, kind


def _check_id(device_id: str) -> None:
    if not is_device_id(device_id):
        raise ValueError(f"invalid device id {device_id!r}")


def up_topic(device_id: str, kind: UpKind | str) -> str:
    _check_id(device_id)
    return f"{TOPIC_PREFIX}{device_id}/up/{UpKind(kind).value}"


def command_topic(device_id: str) -> str:
    _check_id(device_id)
    return f"{TOPIC_PREFIX}{device_id}/down/cmd"


# ---------------------------------------------------------------- schemas


def load_schema(name: str) -> dict[str, Any]:
    """One of hello, hb, tel, evt, ack, cmd, as shipped in the package."""
    text = resources.files(__package__).joinpath("schemas", f"{name}.json").read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema


def _compile(name: str) -> Any:
    return fastjsonschema.compile(load_schema(name), use_default=False, use_formats=False)


# ---------------------------------------------------------------- fast accept path
#
# fastjsonschema's generated code is general (floats as integers, Decimal, exceptions for
# if/then), which costs 10-40 µs per message here. For the hot path the same schema
# files are also compiled into a *sufficient* check: exact types (int is int, never
# float or bool), no unknown members on typed objects (so no float can hide). A message
# it accepts is valid; anything else goes through fastjsonschema and the float check,
# which decide and explain. Tests assert fast-accept implies full validity.

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default", "$comment"})
_TYPE_TESTS = {
    "integer": "type({v}) is int",
    "string": "type({v}) is str",
    "boolean": "({v} is True or {v} is False)",
    "null": "{v} is None",
    "object": "type({v}) is dict",
}
_DOLLAR = re.compile(r"(?<!\\)\$")


class _Unsupported(Exception):
    pass


def _build_fast(schema: dict[str, Any]) -> Callable[[Any], bool]:
    counter = itertools.count()
    env: dict[str, Any] = {}
    funcs: list[str] = []

    def const(value: Any) -> str:
        name = f"_c{next(counter)}"
        env[name] = value
        return name

    def scalar_eq(v: str, value: Any) -> str:
        if value is True or value is False or value is None:
            return f"{v} is {value!r}"
        if type(value) in (int, str):
            return f"(type({v}) is {type(value).__name__} and {v} == {value!r})"
        raise _Unsupported(repr(value))

    def function(s: dict[str, Any], exact: bool) -> str:
        name = f"_f{next(counter)}"
        body: list[str] = []
        emit(s, "x", body, 1, exact)
        funcs.append("\n".join([f"def {name}(x):", *body, "    return True"]))
        return name

    def emit(s: dict[str, Any], v: str, out: list[str], ind: int, exact: bool) -> None:
        pad = "    " * ind
        unknown = set(s) - _ANNOTATIONS - {
            "type", "const", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
            "properties", "required", "additionalProperties", "allOf", "if", "then", "else", "not",
        }  # fmt: skip
        if unknown or s.get("additionalProperties", True) is not True:
            raise _Unsupported(str(unknown))
        types = s.get("type")
        tl = [types] if isinstance(types, str) else list(types or [])
        if tl:
            if any(t not in _TYPE_TESTS for t in tl):
                raise _Unsupported(str(tl))
            test = " or ".join(_TYPE_TESTS[t].format(v=v) for t in tl)
            out.append(f"{pad}if not ({test}): return False")
        if "const" in s:
            out.append(f"{pad}if not {scalar_eq(v, s['const'])}: return False")
        if "enum" in s:
            if not all(type(e) is str for e in s["enum"]):
                raise _Unsupported("enum")
            out.append(f"{pad}if not (type({v}) is str and {v} in {const(frozenset(s['enum']))}):")
            out.append(f"{pad}    return False")
        if "minimum" in s or "maximum" in s:
            lo, hi = s.get("minimum", -(2**63)), s.get("maximum", 2**63)
            out.append(f"{pad}if type({v}) is int and not ({lo} <= {v} <= {hi}): return False")
        if "minLength" in s or "maxLength" in s:
            lo, hi = s.get("minLength", 0), s.get("maxLength", 2**31)
            out.append(f"{pad}if type({v}) is str and not ({lo} <= len({v}) <= {hi}):")
            out.append(f"{pad}    return False")
        if "pattern" in s:
            rx = const(re.compile(_DOLLAR.sub(r"\\Z", s["pattern"])))
            out.append(f"{pad}if type({v}) is str and not {rx}.search({v}): return False")
        props: dict[str, Any] = s.get("properties", {})
        if "required" in s:
            req = const(frozenset(s["required"]))
            out.append(f"{pad}if type({v}) is dict and not {req} <= {v}.keys(): return False")
        if props or (not exact and "object" in tl):
            out.append(f"{pad}if type({v}) is dict:")
            if not exact and "object" in tl:
                known = const(frozenset(props))
                out.append(f"{pad}    if not {v}.keys() <= {known}: return False")
            for key, sub in props.items():
                var = f"_m{next(counter)}"
                out.append(f"{pad}    {var} = {v}.get({key!r}, _MISSING)")
                out.append(f"{pad}    if {var} is not _MISSING:")
                before = len(out)
                emit(sub, var, out, ind + 2, exact)
                if len(out) == before:
                    out.append(f"{pad}        pass")
        for sub in s.get("allOf", []):
            emit(sub, v, out, ind, exact)
        if "not" in s:
            out.append(f"{pad}if {function(s['not'], True)}({v}): return False")
        if "if" in s:
            out.append(f"{pad}if {function(s['if'], True)}({v}):")
            for branch in ("then", "else"):
                if branch == "else":
                    out.append(f"{pad}else:")
                out.append(f"{pad}    pass")
                emit(s.get(branch, {}), v, out, ind + 1, exact)

    top = function(schema, False)
    env["_MISSING"] = object()
    exec("\n\n".join(funcs), env)  # noqa: S102 - code generated from our own schema files
    fn: Callable[[Any], bool] = env[top]
    return fn


def _never(_: Any) -> bool:
    return False


def _fast(name: str) -> Callable[[Any], bool]:
    try:
        return _build_fast(load_schema(name))
    except _Unsupported:  # pragma: no cover - all shipped schemas are supported
        return _never


_UP_VALIDATORS: Final[dict[str, Any]] = {k.value: _compile(k.value) for k in UpKind}
_UP_FAST: Final[dict[str, Callable[[Any], bool]]] = {k.value: _fast(k.value) for k in UpKind}
_CMD_VALIDATOR: Final = _compile("cmd")
_CMD_FAST: Final = _fast("cmd")


def _schema_detail(exc: Exception) -> str:
    msg = str(getattr(exc, "message", exc))
    if msg.startswith("data."):
        msg = msg[5:]
    elif msg.startswith("data["):
        msg = msg[4:]
    elif msg.startswith("data "):
        msg = "message " + msg[5:]
    return msg


def _find_float(obj: Any) -> str | None:
    """Path of the first float anywhere in a decoded value (integers only in v1)."""
    if type(obj) is dict:
        for k, v in obj.items():
            t = type(v)
            if t is float:
                return str(k)
            if t is dict or t is list:
                sub = _find_float(v)
                if sub is not None:
                    return f"{k}.{sub}"
    elif type(obj) is list:
        for i, v in enumerate(obj):
            if type(v) is float:
                return f"[{i}]"
            if type(v) is dict or type(v) is list:
                sub = _find_float(v)
                if sub is not None:
                    return f"[{i}].{sub}"
    return None


def _load_object(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    size = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
    if size > MAX_PAYLOAD:
        raise ProtocolError("too_large", f"{size} bytes, limit {MAX_PAYLOAD}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("bad_json", str(exc)) from None
    if type(obj) is not dict:
        raise ProtocolError("not_object", f"top level is {type(obj).__name__}, not an object")
    v = obj.get("v")
    if v != 1 and type(v) in (int, float):
        raise ProtocolError("bad_version", f"v={v!r}, this platform speaks v=1")
    return obj


def _validate(validator: Any, obj: dict[str, Any]) -> None:
    try:
        validator(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ProtocolError("schema", _schema_detail(exc)) from None
    path = _find_float(obj)
    if path is not None:
        raise ProtocolError("schema", f"{path} must be an integer (no fraction, no exponent)")


def validate_up(kind: UpKind | str, obj: dict[str, Any]) -> None:
    """Schema-check an already decoded up message; raises ProtocolError."""
    if type(obj) is not dict:
        raise ProtocolError("not_object", "message is not an object")
    v = obj.get("v")
    if v != 1 and type(v) in (int, float):
        raise ProtocolError("bad_version", f"v={v!r}, this platform speaks v=1")
    fast = _UP_FAST.get(kind)
    if fast is None:
        raise ValueError(f"unknown up message kind {kind!r}")
    if not fast(obj):
        _validate(_UP_VALIDATORS[kind], obj)


def decode_up(kind: UpKind | str, payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode and validate one up message of the given kind (from ``parse_topic``).
    Returns the decoded object, unknown fields included; raises ProtocolError."""
    fast = _UP_FAST.get(kind)
    if fast is None:
        raise ValueError(f"unknown up message kind {kind!r}")
    obj = _load_object(payload)
    if not fast(obj):
        _validate(_UP_VALIDATORS[kind], obj)
    return obj


def encode_up(kind: UpKind | str, message: Mapping[str, Any]) -> bytes:
    """Validate and serialise an up message (reference chip, simulator, tests)."""
    obj = dict(message)
    validate_up(kind, obj)
    data = orjson.dumps(obj)
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError("too_large", f"{len(data)} bytes, limit {MAX_PAYLOAD}")
    return data


def validate_command(obj: Mapping[str, Any]) -> None:
    """Schema plus the lifetime rule (0 <= exp - iat <= 10 min); raises ProtocolError.
    Does not check the signature (see signing.verify)."""
    if not isinstance(obj, Mapping):
        raise ProtocolError("not_object", "command is not an object")
    d = dict(obj)
    v = d.get("v")
    if v != 1 and type(v) in (int, float):
        raise ProtocolError("bad_version", f"v={v!r}, this platform speaks v=1")
    if not _CMD_FAST(d):
        _validate(_CMD_VALIDATOR, d)
    lifetime = d["exp"] - d["iat"]
    if not 0 <= lifetime <= MAX_COMMAND_TTL_MS:
        raise ProtocolError("schema", f"exp - iat = {lifetime} ms, must be 0..{MAX_COMMAND_TTL_MS}")


def decode_command(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode and validate a command payload (chip side: reference chip, tests)."""
    obj = _load_object(payload)
    validate_command(obj)
    return obj


# ---------------------------------------------------------------- time rules

TsVerdict = Literal["ok", "late", "clock_ahead", "too_old"]


def classify_ts(ts: int, buf: bool, received_ms: int) -> TsVerdict:
    """Platform-side time rules (docs/protocol.md, "Time"):
    clock_ahead  ts more than 5 min after reception: keep, but use the receive time;
    too_old      buffered and more than 30 days old: drop and count;
    late         live (not buffered) and more than 10 min old: keep as history only;
    ok           otherwise."""
    if ts > received_ms + FUTURE_SKEW_MS:
        return "clock_ahead"
    age = received_ms - ts
    if buf:
        return "too_old" if age > MAX_BUFFER_AGE_MS else "ok"
    return "late" if age > LATE_LIVE_MS else "ok"
