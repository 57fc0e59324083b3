"""Command signing: the published test vectors are reproduced, the canonical form is the
one docs/protocol.md defines, and the reference validator (jsonschema) agrees with the
fast one (fastjsonschema) on the documented examples."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
import re
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from weldguard.device.protocol import (
    MAX_COMMAND_TTL_MS,
    ProtocolError,
    build_command,
    canonical_bytes,
    canonical_json,
    decode_command,
    encode_command,
    load_schema,
    new_nonce,
    sign,
    validate_command,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "protocol-vectors.json").read_text(encoding="utf-8"))[
    "vectors"
]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
EXAMPLE_RE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)\n```", re.DOTALL)
KINDS = ["hello", "hb", "tel", "evt", "ack", "cmd"]
SECRET = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
NOW = 1_735_689_600_000


# ---------------------------------------------------------------- vectors


def test_vector_file_covers_the_required_cases() -> None:
    assert len(VECTORS) >= 6
    canon = [v["canonical"] for v in VECTORS]
    assert any('"fence":{' in c for c in canon)  # nested args
    assert any('"args":{}' in c for c in canon)  # empty args
    assert any(not c.isascii() and "\\u" not in c.split('"x_ext"')[0] for c in canon)  # raw UTF-8
    assert any('\\"' in c and "\\n" in c for c in canon)  # quote and newline
    assert any("\\u0001" in c and "\\u001f" in c and "\x7f" in c for c in canon)
    assert {v["command"]["cmd"] for v in VECTORS} == {"unlock", "lock", "config", "ping", "time"}
    assert len({v["secret"] for v in VECTORS}) >= 6


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_reproduced(vector: dict[str, Any]) -> None:
    command, secret = vector["command"], vector["secret"]
    assert "sig" not in command
    canonical = vector["canonical"].encode("utf-8")
    assert canonical_bytes(command) == canonical
    # independent HMAC over the published canonical bytes
    expected = hmac.new(bytes.fromhex(secret), canonical, hashlib.sha256).hexdigest()
    assert vector["sig"] == expected
    assert sign(command, secret) == expected
    full = {**command, "sig": vector["sig"]}
    assert verify(full, secret)
    assert encode_command(full) == vector["payload"].encode("utf-8")
    # the chip's shortcut: the payload minus the 73-byte sig member is the signed text
    payload = vector["payload"].encode("utf-8")
    member = b'"sig":"' + vector["sig"].encode() + b'",'
    assert len(member) == 73 and payload.count(member) == 1
    assert payload.replace(member, b"") == canonical
    decoded = decode_command(payload)
    assert decoded == full
    validate_command(decoded)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_payload_rejects_every_single_byte_change(vector: dict[str, Any]) -> None:
    payload = vector["payload"].encode("utf-8")
    rng = random.Random(vector["name"])
    for i in range(len(payload)):
        mutated = bytearray(payload)
        mutated[i] ^= 1 << rng.randrange(8)
        try:
            cmd = json.loads(bytes(mutated).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # the chip drops it
        if not isinstance(cmd, dict):
            continue
        try:
            ok = verify(cmd, vector["secret"])
        except ValueError:
            ok = False
        if ok:
            # only a change that leaves the JSON value identical may still verify,
            # e.g. a letter case flip inside an escape: \u001f -> \u001F
            assert cmd == json.loads(payload)


def test_vectors_fail_under_another_secret() -> None:
    for v in VECTORS:
        other = VECTORS[(VECTORS.index(v) + 1) % len(VECTORS)]["secret"]
        assert not verify({**v["command"], "sig": v["sig"]}, other)


# ---------------------------------------------------------------- schemas agree


def doc_examples() -> list[tuple[str, Any]]:
    return [(m.group(1), json.loads(m.group(2))) for m in EXAMPLE_RE.finditer(DOC)]


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_are_valid_draft7(kind: str) -> None:
    schema = load_schema(kind)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is True
    for name, prop in schema["properties"].items():
        assert "type" in prop, name


def _mutations(kind: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in list(obj):
        for value in [None, "x", -1, 10**12, [], {}, True]:
            m = copy.deepcopy(obj)
            m[key] = value
            out.append(m)
        m = copy.deepcopy(obj)
        del m[key]
        out.append(m)
    return out


def test_jsonschema_agrees_with_fastjsonschema() -> None:
    checked = 0
    for kind, obj in doc_examples():
        schema = load_schema(kind)
        reference = jsonschema.Draft7Validator(schema)
        fast = fastjsonschema.compile(schema)
        assert reference.is_valid(obj), (kind, list(reference.iter_errors(obj)))
        fast(obj)
        for m in _mutations(kind, obj):
            try:
                fast(m)
                fast_ok = True
            except fastjsonschema.JsonSchemaValueException:
                fast_ok = False
            assert reference.is_valid(m) == fast_ok, (kind, m)
            checked += 1
    assert checked > 500


# ---------------------------------------------------------------- canonical form

# Strings of any Unicode scalar value (no lone surrogates), keys included.
text = st.text(st.characters(codec="utf-8"), max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | text
values = st.recursive(
    scalars,
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(text, ch, max_size=5),
    max_leaves=25,
)


@settings(max_examples=500)
@given(values)
def test_canonical_equals_json_dumps_oracle(value: Any) -> None:
    """Proof by oracle: Python's json with sort_keys, compact separators and
    ensure_ascii=False emits exactly the escapes the spec lists (lowercase \\u00XX), and
    sorting str keys by code point equals sorting their UTF-8 bytes."""
    oracle = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == oracle.encode("utf-8")
    assert json.loads(canonical_json(value)) == value


def test_canonical_string_escapes_exactly() -> None:
    every_control = "".join(chr(c) for c in range(0x20))
    got = canonical_json(every_control + '"\\/\x7f\u2028é😀').decode("utf-8")
    expected = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028é😀"'
    )
    assert got == expected


def test_canonical_key_order_is_utf8_bytewise() -> None:
    obj = {"😀": 1, "～": 2, "a": 3, "B": 4, "_": 5, "ab": 6, "a b": 7, "": 8, "é": 9}
    assert canonical_json(obj).decode() == (
        '{"":8,"B":4,"_":5,"a":3,"a b":7,"ab":6,"é":9,"～":2,"😀":1}'
    )


def test_canonical_scalars() -> None:
    assert canonical_json(0) == b"0"
    assert canonical_json(-7) == b"-7"
    assert canonical_json(2**53 - 1) == b"9007199254740991"
    assert canonical_json([True, False, None, {}, []]) == b"[true,false,null,{},[]]"
    assert canonical_bytes({"sig": "x", "a": {"sig": "kept"}}) == b'{"a":{"sig":"kept"}}'


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(st.dictionaries(text, values, max_size=8), st.randoms())
def test_canonical_independent_of_insertion_order(obj: dict[str, Any], rng: random.Random) -> None:
    assert canonical_json(_shuffled(obj, rng)) == canonical_json(obj)


@pytest.mark.parametrize(
    "bad",
    [
        1.0,
        0.5,
        float("nan"),
        {"a": 1.0},
        {"a": {"b": [1, 2.0]}},
        {1: "x"},
        {"a": {None: 1}},
        {"a": b"bytes"},
        {"a": {1, 2}},
        2**53,
        -(2**53),
        "\ud800",
        {"\udfff": 1},
    ],
)
def test_canonical_rejects(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)


@given(
    st.dictionaries(text, values, max_size=4),
    st.floats(allow_nan=False),
    st.lists(text, min_size=1, max_size=3),
)
def test_floats_rejected_anywhere(args: dict[str, Any], f: float, path: list[str]) -> None:
    nested: Any = f
    for key in reversed(path):
        nested = {key: nested}
    command = {"v": 1, "cmd": "ping", "args": {**args, **nested}}
    with pytest.raises(ValueError):
        canonical_bytes(command)
    with pytest.raises(ValueError):
        sign(command, SECRET)


# ---------------------------------------------------------------- sign / verify


secrets_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)
json_args = st.dictionaries(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8), values, max_size=5
)


@given(secrets_hex, json_args, st.integers(0, 2**40))
def test_sign_verify_round_trip(secret: str, args: dict[str, Any], iat: int) -> None:
    command = {
        "v": 1,
        "id": "c-1",
        "cmd": "ping",
        "dev": "WG0001A7",
        "iat": iat,
        "exp": iat + 1000,
        "nonce": "0" * 32,
        "args": args,
    }
    sig = sign(command, secret)
    assert re.fullmatch(r"[0-9a-f]{64}", sig)
    assert verify({**command, "sig": sig}, secret)
    # re-decoding the published payload (what the chip receives) still verifies
    assert verify(json.loads(encode_command({**command, "sig": sig})), secret)


def _change(value: Any, data: st.DataObject) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + data.draw(st.sampled_from([1, -1, 1000]))
    if isinstance(value, str):
        return value + "x" if not value else value[:-1] + ("y" if value[-1] != "y" else "z")
    if isinstance(value, dict):
        if value and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(value)))
            return {**value, key: _change(value[key], data)}
        return {**value, "extra": 0} if "extra" not in value else {**value, "extra2": 0}
    if value is None:
        return 0
    raise AssertionError(value)


def _signed_unlock() -> dict[str, Any]:
    return build_command(
        "WG0001A7",
        "unlock",
        {
            "sess": "s-1",
            "welder": "wd-1",
            "until": NOW + 3_600_000,
            "fence": {"lat": 31220400, "lon": 121424500, "r_m": 10},
        },
        SECRET,
        NOW,
        60_000,
    )


@given(st.data())
def test_any_single_change_breaks_verification(data: st.DataObject) -> None:
    command = _signed_unlock()
    key = data.draw(st.sampled_from(sorted(command)))
    mutated = dict(command)
    action = data.draw(st.sampled_from(["change", "remove", "add"]))
    if action == "remove":
        del mutated[key]
    elif action == "add":
        mutated["zz_" + key] = data.draw(scalars)
    else:
        mutated[key] = _change(command[key], data)
    assume(mutated != command)
    assert not verify(mutated, SECRET)


def test_every_field_and_every_sig_character_matters() -> None:
    command = _signed_unlock()
    assert verify(command, SECRET)
    for key in command:
        if key == "sig":
            continue
        m = copy.deepcopy(command)
        del m[key]
        assert not verify(m, SECRET), key
    for key in command["args"]:
        m = copy.deepcopy(command)
        del m["args"][key]
        assert not verify(m, SECRET), key
    for key in command["args"]["fence"]:
        m = copy.deepcopy(command)
        m["args"]["fence"][key] += 1
        assert not verify(m, SECRET), key
    sig = command["sig"]
    for i in range(64):
        for c in "0123456789abcdef":
            if c != sig[i]:
                assert not verify({**command, "sig": sig[:i] + c + sig[i + 1 :]}, SECRET)
                break


def test_verify_rejects_malformed_sig() -> None:
    command = _signed_unlock()
    for bad in [None, "", command["sig"].upper(), command["sig"][:-1], command["sig"] + "0", 5]:
        m = {**command, "sig": bad}
        assert not verify(m, SECRET)
    no_sig = dict(command)
    del no_sig["sig"]
    assert not verify(no_sig, SECRET)
    assert not verify({**command, "args": {"x": 1.5}}, SECRET)  # no canonical form


@pytest.mark.parametrize("secret", ["", "00" * 31, "00" * 33, "zz" * 32, "0" * 63])
def test_bad_secret(secret: str) -> None:
    with pytest.raises(ValueError):
        sign({"v": 1}, secret)
    with pytest.raises(ValueError):
        verify({"v": 1, "sig": "0" * 64}, secret)


# ---------------------------------------------------------------- build_command


def test_build_command_defaults() -> None:
    cmd = build_command("WG0001A7", "ping", {}, SECRET, NOW, 30_000)
    assert cmd["v"] == 1 and cmd["cmd"] == "ping" and cmd["dev"] == "WG0001A7"
    assert cmd["iat"] == NOW and cmd["exp"] == NOW + 30_000
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", cmd["id"]
    )
    assert re.fullmatch(r"[0-9a-f]{32}", cmd["nonce"])
    assert verify(cmd, SECRET)
    validate_command(cmd)
    other = build_command("WG0001A7", "ping", {}, SECRET, NOW, 30_000)
    assert other["id"] != cmd["id"] and other["nonce"] != cmd["nonce"]


def test_build_command_reproduces_worked_example() -> None:
    v = VECTORS[0]
    c = v["command"]
    built = build_command(
        c["dev"],
        c["cmd"],
        c["args"],
        v["secret"],
        c["iat"],
        c["exp"] - c["iat"],
        command_id=c["id"],
        nonce=c["nonce"],
    )
    assert built["sig"] == v["sig"]
    assert encode_command(built) == v["payload"].encode()


def test_build_command_caps_ttl() -> None:
    cmd = build_command("WG0001A7", "lock", {}, SECRET, NOW, 3_600_000)
    assert cmd["exp"] - cmd["iat"] == MAX_COMMAND_TTL_MS


@pytest.mark.parametrize(
    ("device_id", "cmd", "args", "ttl"),
    [
        ("WG", "ping", {}, 1000),
        ("WG0001A7", "reboot", {}, 1000),
        ("WG0001A7", "ping", {}, 0),
        ("WG0001A7", "ping", {}, -5),
        ("WG0001A7", "unlock", {"sess": "s"}, 1000),
        ("WG0001A7", "unlock", {"sess": "s", "welder": "身份证 310105", "until": NOW + 1}, 1000),
        ("WG0001A7", "config", {"hb_s": 5}, 1000),
        ("WG0001A7", "time", {"now": 1.5}, 1000),
    ],
)
def test_build_command_rejects(device_id: str, cmd: str, args: dict[str, Any], ttl: int) -> None:
    with pytest.raises(ValueError):
        build_command(device_id, cmd, args, SECRET, NOW, ttl)


def test_build_command_schema_error_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        build_command("WG0001A7", "config", {"hb_s": 5}, SECRET, NOW, 1000)


def test_new_nonce() -> None:
    nonces = {new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)
