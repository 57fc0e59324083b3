"""Device protocol v1 codec: the examples of docs/protocol.md are accepted, bad input is
rejected with the right code. Pure tests, no database, no broker."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weldguard.device.protocol import (
    ACK_CODES,
    FUTURE_SKEW_MS,
    MAX_BUFFER_AGE_MS,
    MAX_COMMAND_TTL_MS,
    MAX_PAYLOAD,
    AckCode,
    ProtocolError,
    UpKind,
    canonical_bytes,
    classify_ts,
    command_topic,
    decode_command,
    decode_up,
    encode_up,
    is_device_id,
    load_schema,
    parse_topic,
    up_topic,
    validate_command,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
EXAMPLE_RE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)\n```", re.DOTALL)
WORKED_SECRET = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KINDS = [k.value for k in UpKind]


def doc_examples() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in EXAMPLE_RE.finditer(DOC)]


def example(kind: str, index: int = 0) -> dict[str, Any]:
    found = [json.loads(text) for k, text in doc_examples() if k == kind]
    return copy.deepcopy(found[index])


def payload(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def rejects(kind: str, obj_or_bytes: Any) -> ProtocolError:
    data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else payload(obj_or_bytes)
    with pytest.raises(ProtocolError) as info:
        decode_up(kind, data)
    err = info.value
    assert len(err.detail) <= 200
    return err


# ---------------------------------------------------------------- examples of the doc


def test_doc_has_examples_for_every_message() -> None:
    kinds = {k for k, _ in doc_examples()}
    assert kinds == {*KINDS, "cmd"}
    assert len(doc_examples()) >= 15


@pytest.mark.parametrize(("kind", "text"), [e for e in doc_examples() if e[0] != "cmd"])
def test_doc_up_examples_decode(kind: str, text: str) -> None:
    obj = decode_up(kind, text.encode("utf-8"))
    assert obj == json.loads(text)
    assert len(text.encode("utf-8")) <= MAX_PAYLOAD


@pytest.mark.parametrize("text", [t for k, t in doc_examples() if k == "cmd"])
def test_doc_command_examples_are_valid_and_signed(text: str) -> None:
    raw = text.encode("utf-8")
    cmd = decode_command(raw)
    assert cmd["dev"] == "WG0001A7"
    assert verify(cmd, WORKED_SECRET)
    # published in canonical form, sig included
    assert canonical_bytes(cmd) + b"" != raw  # (sig is excluded from canonical_bytes)
    from weldguard.device.protocol import encode_command

    assert encode_command(cmd) == raw


def test_doc_examples_are_one_line_compact_json() -> None:
    for _, text in doc_examples():
        assert "\n" not in text


def test_worked_example_in_doc_matches_vectors() -> None:
    vectors = json.loads((ROOT / "docs" / "protocol-vectors.json").read_text(encoding="utf-8"))
    worked = vectors["vectors"][0]
    canon = re.search(r"<!-- worked-example: canonical -->\s*```text\n(.*?)\n```", DOC, re.DOTALL)
    sig = re.search(r"<!-- worked-example: sig -->\s*```text\n(.*?)\n```", DOC, re.DOTALL)
    assert canon and sig
    assert canon.group(1) == worked["canonical"]
    assert sig.group(1) == worked["sig"]
    assert worked["secret"] == WORKED_SECRET
    assert f"({len(worked['canonical'].encode())} bytes" in DOC
    assert f"({len(worked['payload'].encode())} bytes)" in DOC
    assert worked["secret"] in DOC


def test_error_code_table_in_doc_matches_ack_codes() -> None:
    for code, (name, label) in ACK_CODES.items():
        assert f"| {code} | `{name}` |" in DOC
        assert AckCode(code).name.lower() == name
        assert label
    assert sorted(ACK_CODES) == list(range(10))


# ---------------------------------------------------------------- topics


@pytest.mark.parametrize("kind", KINDS)
def test_parse_topic_up(kind: str) -> None:
    assert parse_topic(f"wg/v1/WG0001A7/up/{kind}") == ("WG0001A7", UpKind(kind))
    assert parse_topic(up_topic("a_b-", kind)) == ("a_b-", UpKind(kind))


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "wg/v1/WG0001A7/down/cmd",  # the down topic is not an up topic
        "wg/v2/WG0001A7/up/hb",
        "wg/v1/WG0001A7/up/foo",
        "wg/v1/WG0001A7/up/HB",
        "wg/v1/WG0001A7/up/",
        "wg/v1/WG0001A7/up",
        "wg/v1/WG0001A7/up/hb/",
        "wg/v1/WG0001A7/up/hb/extra",
        "/wg/v1/WG0001A7/up/hb",
        "wg/v1//up/hb",
        "wg/v1/abc/up/hb",  # too short
        "wg/v1/" + "a" * 33 + "/up/hb",  # too long
        "wg/v1/WG 0001/up/hb",
        "wg/v1/WG.0001/up/hb",
        "wg/v1/+/up/hb",
        "wg/v1/#",
        "wg/v1/WG0001A7/up/#",
        "wg/v1/WG0001A7/up/+",
        "wg/v1/设备0001/up/hb",
        "wg/v1/other/WG0001A7/up/hb",  # another device's topic shape, nested
        "WG/v1/WG0001A7/up/hb",
        "wg/v1/WG0001A7/UP/hb",
        "wg/v1/WG0001A7/dn/hb",
    ],
)
def test_parse_topic_rejects(topic: str) -> None:
    assert parse_topic(topic) is None


def test_topic_builders() -> None:
    assert command_topic("WG0001A7") == "wg/v1/WG0001A7/down/cmd"
    assert up_topic("WG0001A7", UpKind.EVT) == "wg/v1/WG0001A7/up/evt"
    longest = "x" * 32
    assert len(up_topic(longest, "hello")) == 47
    assert len(command_topic(longest)) == 47
    for bad in ["abc", "x" * 33, "a/bcd", "ab+cd", "ab cd", ""]:
        with pytest.raises(ValueError):
            command_topic(bad)
        with pytest.raises(ValueError):
            up_topic(bad, "hb")
    with pytest.raises(ValueError):
        up_topic("WG0001A7", "foo")


@given(st.text(max_size=60))
def test_parse_topic_never_raises(topic: str) -> None:
    result = parse_topic(topic)
    if result is not None:
        device_id, kind = result
        assert is_device_id(device_id)
        assert up_topic(device_id, kind) == topic


@given(st.from_regex(r"\A[A-Za-z0-9_-]{4,32}\Z"), st.sampled_from(KINDS))
def test_parse_topic_round_trip(device_id: str, kind: str) -> None:
    assert parse_topic(up_topic(device_id, kind)) == (device_id, UpKind(kind))


# ---------------------------------------------------------------- malformed payloads


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"v":1,',
        b"{'v':1}",
        b'{"v":1}x',
        b'{"v":NaN}',
        b'{"v":Infinity}',
        b'{"v":1,"fw":"\xff\xfe"}',  # invalid UTF-8
        b"\xef\xbb\xbf{}",  # byte order mark
        b'{"v":01}',
        b'{"v":+1}',
    ],
)
def test_bad_json(raw: bytes) -> None:
    assert rejects("hb", raw).code == "bad_json"


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"hb"', b"null", b"true", b"[{}]"])
def test_not_object(raw: bytes) -> None:
    assert rejects("hb", raw).code == "not_object"


@pytest.mark.parametrize("kind", KINDS)
def test_oversized_payload(kind: str) -> None:
    msg = example(kind)
    msg["pad"] = ""
    base = len(payload(msg))
    msg["pad"] = "x" * (MAX_PAYLOAD - base)
    assert len(payload(msg)) == MAX_PAYLOAD
    assert decode_up(kind, payload(msg))["pad"]  # exactly at the limit: fine
    msg["pad"] += "x"
    assert rejects(kind, msg).code == "too_large"
    assert rejects(kind, b" " * (MAX_PAYLOAD + 1)).code == "too_large"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("v", [0, 2, 99, -1, 2.0])
def test_wrong_version(kind: str, v: Any) -> None:
    msg = example(kind)
    msg["v"] = v
    assert rejects(kind, msg).code == "bad_version"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("v", ["1", True, None, [1], {"v": 1}])
def test_version_wrong_type(kind: str, v: Any) -> None:
    msg = example(kind)
    msg["v"] = v
    assert rejects(kind, msg).code == "schema"


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        decode_up("foo", b"{}")


# ---------------------------------------------------------------- schema violations


def required_fields(kind: str) -> list[str]:
    return list(load_schema(kind)["required"])


@pytest.mark.parametrize(
    ("kind", "field"),
    [(k, f) for k in KINDS for f in ["v", "seq", "ts", *required_fields(k)] if f != "v"],
)
def test_missing_field(kind: str, field: str) -> None:
    msg = example(kind)
    msg.pop(field, None)
    err = rejects(kind, msg)
    assert err.code == "schema"
    assert field in err.detail


def test_missing_v_is_schema_error() -> None:
    msg = example("hb")
    del msg["v"]
    err = rejects("hb", msg)
    assert err.code == "schema" and "v" in err.detail


WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("hello", "fw", 142),
    ("hello", "imei", 861234567890123),
    ("hello", "iccid", None),
    ("hello", "rated_a", "315"),
    ("hello", "boot", 1),
    ("hello", "boot", "true"),
    ("hello", "buf_count", True),
    ("hello", "seq", "1024"),
    ("hello", "ts", "2025-01-01T00:00:00Z"),
    ("hb", "interval_s", "30"),
    ("hb", "lock", True),
    ("hb", "sess", 5),
    ("hb", "rssi", "-71"),
    ("hb", "gps", [31220400, 121424500]),
    ("hb", "gps", "31.2204,121.4245"),
    ("hb", "vin", None),
    ("hb", "temp_c10", "41.2"),
    ("hb", "buf", "false"),
    ("hb", "buf", 0),
    ("tel", "arc", "on"),
    ("tel", "start_ts", None),
    ("tel", "dur_ms", "12500"),
    ("tel", "i_avg_da", [1650]),
    ("tel", "e_j", {"j": 1}),
    ("evt", "type", 3),
    ("evt", "sess", 1),
    ("evt", "cmd_id", 12),
    ("evt", "reason", False),
    ("ack", "id", 7),
    ("ack", "ok", "true"),
    ("ack", "code", "0"),
    ("ack", "state", 1),
]


@pytest.mark.parametrize(("kind", "field", "value"), WRONG_TYPES)
def test_wrong_type(kind: str, field: str, value: Any) -> None:
    msg = example(kind)
    msg[field] = value
    err = rejects(kind, msg)
    assert err.code == "schema"
    assert field in err.detail


OUT_OF_RANGE: list[tuple[str, str, Any]] = [
    ("hello", "seq", 0),
    ("hello", "seq", 2**32),
    ("hello", "seq", -1),
    ("hello", "ts", -1),
    ("hello", "fw", ""),
    ("hello", "fw", "x" * 33),
    ("hello", "imei", "86123456789012"),
    ("hello", "imei", "8612345678901234"),
    ("hello", "imei", "86123456789012a"),
    ("hello", "imei", "86123456789012\n"),
    ("hello", "iccid", "898601234567890123"),
    ("hello", "iccid", "898601234567890123456"),
    ("hello", "iccid", "8986012345678901234F"),
    ("hello", "rated_a", 0),
    ("hello", "rated_a", 2001),
    ("hello", "buf_count", -1),
    ("hb", "interval_s", 9),
    ("hb", "interval_s", 301),
    ("hb", "lock", "open"),
    ("hb", "sess", ""),
    ("hb", "sess", "s" * 37),
    ("hb", "rssi", 1),
    ("hb", "rssi", -121),
    ("hb", "vin", -1),
    ("hb", "vin", 500001),
    ("hb", "temp_c10", -551),
    ("hb", "temp_c10", 2001),
    ("tel", "dur_ms", -1),
    ("tel", "dur_ms", 3600001),
    ("tel", "i_avg_da", 30001),
    ("tel", "i_max_da", -5),
    ("tel", "u_avg_dv", 2001),
    ("tel", "e_j", -1),
    ("tel", "e_j", 2**32),
    ("evt", "type", "exploded"),
    ("evt", "reason", "r" * 65),
    ("evt", "cmd_id", "c" * 37),
    ("ack", "code", -1),
    ("ack", "code", 256),
    ("ack", "state", "half"),
    ("ack", "id", ""),
    ("ack", "id", "i" * 37),
]


@pytest.mark.parametrize(("kind", "field", "value"), OUT_OF_RANGE)
def test_out_of_range(kind: str, field: str, value: Any) -> None:
    msg = example(kind)
    msg[field] = value
    err = rejects(kind, msg)
    assert err.code == "schema"
    assert field in err.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lat", 90000001),
        ("lat", -90000001),
        ("lon", 180000001),
        ("lon", -180000001),
        ("acc_m", -1),
        ("fix_ts", "now"),
        ("lat", 31.2204),
    ],
)
def test_gps_bounds_name_the_nested_field(field: str, value: Any) -> None:
    msg = example("hb")
    msg["gps"][field] = value
    err = rejects("hb", msg)
    assert err.code == "schema"
    assert f"gps.{field}" in err.detail


@pytest.mark.parametrize("field", ["lat", "lon", "acc_m", "fix_ts"])
def test_gps_missing_member(field: str) -> None:
    msg = example("hb")
    del msg["gps"][field]
    assert rejects("hb", msg).code == "schema"


@pytest.mark.parametrize(
    ("kind", "field", "raw"),
    [
        ("hb", "rssi", "-71.0"),
        ("hb", "vin", "2.298e5"),
        ("tel", "e_j", "54862.0"),
        ("hello", "seq", "1024.0"),
        ("hello", "v", "1.0"),
        ("ack", "code", "0E0"),
    ],
)
def test_floats_are_rejected_even_when_integral(kind: str, field: str, raw: str) -> None:
    msg = example(kind)
    text = payload(msg).decode()
    text = re.sub(rf'"{field}": ?-?\d+', f'"{field}":{raw}', text, count=1)
    assert raw in text
    err = rejects(kind, text.encode())
    assert err.code == "schema"
    assert field in err.detail


def test_float_in_unknown_member_is_rejected() -> None:
    msg = example("hb")
    msg["x_vendor"] = {"deep": [1, 2.5]}
    err = rejects("hb", msg)
    assert err.code == "schema" and "x_vendor" in err.detail


def test_evt_conditional_fields() -> None:
    tamper = {"v": 1, "seq": 5, "ts": 1735689600000, "type": "tamper"}
    assert "what" in rejects("evt", tamper).detail
    assert decode_up("evt", payload({**tamper, "what": "chip_removed"}))
    assert rejects("evt", {**tamper, "what": "lid"}).code == "schema"

    gas = {"v": 1, "seq": 5, "ts": 1735689600000, "type": "gas_alarm"}
    assert rejects("evt", gas).code == "schema"
    assert decode_up("evt", payload({**gas, "ppm": 5000}))
    assert decode_up("evt", payload({**gas, "lel_pm": 1000}))
    assert rejects("evt", {**gas, "lel_pm": 1001}).code == "schema"

    for t, field in [
        ("temp_alarm", "temp_c10"),
        ("arc_while_locked", "i_max_da"),
        ("overcurrent", "i_max_da"),
    ]:
        msg = {"v": 1, "seq": 5, "ts": 1735689600000, "type": t}
        assert field in rejects("evt", msg).detail
        assert decode_up("evt", payload({**msg, field: 1500}))

    for t in ["unlocked", "locked", "power_loss", "power_restored", "geofence_exit"]:
        assert decode_up("evt", payload({"v": 1, "seq": 5, "ts": 1, "type": t}))


def test_last_will_rules() -> None:
    assert decode_up("evt", b'{"v":1,"type":"power_loss","lwt":true}')
    # only the last will may omit seq/ts, and it is always power_loss
    assert rejects("evt", {"v": 1, "type": "power_loss"}).code == "schema"
    assert rejects("evt", {"v": 1, "type": "power_loss", "lwt": False}).code == "schema"
    assert rejects("evt", {"v": 1, "type": "tamper", "what": "chip_removed", "lwt": True})
    assert rejects("evt", {"v": 1, "type": "power_loss", "lwt": "yes"}).code == "schema"
    # a last will must not appear on other kinds
    assert rejects("hb", {"v": 1, "type": "power_loss", "lwt": True}).code == "schema"


def test_ack_ok_and_code_agree() -> None:
    ack = example("ack")
    assert rejects("ack", {**ack, "ok": True, "code": 1}).code == "schema"
    assert rejects("ack", {**ack, "ok": False, "code": 0}).code == "schema"
    assert decode_up("ack", payload({**ack, "ok": False, "code": 200}))  # reserved codes


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_members_are_ignored(kind: str) -> None:
    msg = example(kind)
    msg["x_future"] = {"a": [1, "b", None, True]}
    msg["zz"] = "新字段"
    assert decode_up(kind, payload(msg)) == msg


def test_optional_members_may_be_absent() -> None:
    hello = example("hello")
    del hello["rated_a"]
    decode_up("hello", payload(hello))
    hb = example("hb")
    del hb["temp_c10"]
    decode_up("hb", payload(hb))
    ack = example("ack")
    del ack["state"]
    decode_up("ack", payload(ack))
    assert "buf" not in example("hb", 0)


def test_decode_accepts_bytes_like() -> None:
    raw = payload(example("hb"))
    assert decode_up(UpKind.HB, bytearray(raw)) == decode_up("hb", memoryview(raw))


def test_error_detail_is_truncated() -> None:
    msg = example("hello")
    msg["fw"] = "x" * 500
    err = rejects("hello", msg)
    assert len(err.detail) <= 200
    assert str(err).startswith("schema: ")
    long = ProtocolError("bad_json", "y" * 1000)
    assert len(long.detail) == 200
    assert isinstance(long, ValueError)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_error(raw: bytes) -> None:
    for kind in KINDS:
        with contextlib.suppress(ProtocolError):
            decode_up(kind, raw)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_any = st.recursive(
    json_leaf,
    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=5), ch, max_size=3),
    max_leaves=8,
)


FIELD_NAMES = ["v", "seq", "ts", "buf", "type", "gps", "lock", "sess", "id", "ok", "code", "arc"]


@settings(max_examples=300)
@given(st.sampled_from(KINDS), st.dictionaries(st.sampled_from(FIELD_NAMES), json_any, max_size=8))
def test_random_objects_never_crash(kind: str, obj: dict[str, Any]) -> None:
    try:
        out = decode_up(kind, orjson.dumps(obj))
    except ProtocolError as err:
        assert err.code in {"schema", "bad_version", "too_large"}
    else:
        assert out["v"] == 1 and type(out["v"]) is int


@given(
    seq=st.integers(1, 2**32 - 1),
    ts=st.integers(0, 253402300799999),
    interval=st.integers(10, 300),
    locked=st.booleans(),
    rssi=st.integers(-120, 0),
    lat=st.integers(-90_000_000, 90_000_000),
    lon=st.integers(-180_000_000, 180_000_000),
    vin=st.integers(0, 500_000),
    has_gps=st.booleans(),
    buf=st.none() | st.booleans(),
)
def test_generated_heartbeats_round_trip(
    seq: int,
    ts: int,
    interval: int,
    locked: bool,
    rssi: int,
    lat: int,
    lon: int,
    vin: int,
    has_gps: bool,
    buf: bool | None,
) -> None:
    msg: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "ts": ts,
        "interval_s": interval,
        "lock": "locked" if locked else "unlocked",
        "sess": None if locked else "s-1",
        "rssi": rssi,
        "gps": {"lat": lat, "lon": lon, "acc_m": 3, "fix_ts": ts} if has_gps else None,
        "vin": vin,
    }
    if buf is not None:
        msg["buf"] = buf
    assert decode_up("hb", encode_up("hb", msg)) == msg


def test_encode_up_validates() -> None:
    with pytest.raises(ProtocolError):
        encode_up("hb", {"v": 1})
    msg = example("tel")
    msg["pad"] = "x" * MAX_PAYLOAD
    with pytest.raises(ProtocolError) as info:
        encode_up("tel", msg)
    assert info.value.code == "too_large"


# ---------------------------------------------------------------- commands (codec side)


def worked_command() -> dict[str, Any]:
    return example("cmd", -1)


def test_decode_command_rejects() -> None:
    good = worked_command()
    validate_command(good)
    cases: list[tuple[str, Any]] = [
        ("nonce", "9F86D081884C7D659A2FEAA0C55AD015"),
        ("nonce", "9f86d081"),
        ("sig", "A" * 64),
        ("sig", "0" * 63),
        ("cmd", "reboot"),
        ("dev", "WG"),
        ("dev", "WG/0001"),
        ("id", ""),
        ("id", "x" * 37),
        ("id", "has space"),
        ("args", []),
        ("iat", 1.5),
        ("exp", "soon"),
    ]
    for field, value in cases:
        bad = {**good, field: value}
        with pytest.raises(ProtocolError) as info:
            validate_command(bad)
        assert info.value.code == "schema", (field, value)
    for missing in ["v", "id", "cmd", "dev", "iat", "exp", "nonce", "args", "sig"]:
        bad = dict(good)
        del bad[missing]
        with pytest.raises(ProtocolError):
            validate_command(bad)
    with pytest.raises(ProtocolError) as info:
        validate_command({**good, "v": 2})
    assert info.value.code == "bad_version"


def test_command_lifetime() -> None:
    good = worked_command()
    validate_command({**good, "exp": good["iat"] + MAX_COMMAND_TTL_MS})
    validate_command({**good, "exp": good["iat"]})
    for exp in [good["iat"] + MAX_COMMAND_TTL_MS + 1, good["iat"] - 1]:
        with pytest.raises(ProtocolError) as info:
            validate_command({**good, "exp": exp})
        assert "exp - iat" in info.value.detail


@pytest.mark.parametrize(
    ("cmd", "args"),
    [
        ("unlock", {}),
        ("unlock", {"sess": "s", "welder": "w"}),
        ("unlock", {"sess": "s", "welder": "310105199001011234 张三", "until": 1}),
        ("unlock", {"sess": "s" * 37, "welder": "w", "until": 1}),
        ("unlock", {"sess": "s", "welder": "w" * 33, "until": 1}),
        ("unlock", {"sess": "s", "welder": "w", "until": 1, "fence": {"lat": 1, "lon": 2}}),
        (
            "unlock",
            {"sess": "s", "welder": "w", "until": 1, "fence": {"lat": 1, "lon": 2, "r_m": 0}},
        ),
        ("lock", {"reason": "r" * 65}),
        ("lock", {"reason": 5}),
        ("config", {"hb_s": 9}),
        ("config", {"hb_s": 301}),
        ("config", {"tel_s": 0}),
        ("config", {"arc_threshold_da": 0}),
        ("config", {"arc_threshold_da": 30001}),
        ("time", {}),
        ("time", {"now": "now"}),
        ("ping", []),
    ],
)
def test_command_args_rejected(cmd: str, args: Any) -> None:
    bad = {**worked_command(), "cmd": cmd, "args": args}
    with pytest.raises(ProtocolError) as info:
        validate_command(bad)
    assert "args" in info.value.detail


def test_decode_command_payload_errors() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(b"x" * (MAX_PAYLOAD + 1))
    assert info.value.code == "too_large"
    with pytest.raises(ProtocolError) as info:
        decode_command(b"[1]")
    assert info.value.code == "not_object"


# ---------------------------------------------------------------- time rules


def test_classify_ts() -> None:
    r = 1_735_689_600_000
    assert classify_ts(r, False, r) == "ok"
    assert classify_ts(r + FUTURE_SKEW_MS, False, r) == "ok"
    assert classify_ts(r + FUTURE_SKEW_MS + 1, False, r) == "clock_ahead"
    assert classify_ts(r + FUTURE_SKEW_MS + 1, True, r) == "clock_ahead"
    assert classify_ts(r - 600_000, False, r) == "ok"
    assert classify_ts(r - 600_001, False, r) == "late"
    assert classify_ts(r - 600_001, True, r) == "ok"
    assert classify_ts(r - MAX_BUFFER_AGE_MS, True, r) == "ok"
    assert classify_ts(r - MAX_BUFFER_AGE_MS - 1, True, r) == "too_old"
    assert classify_ts(0, False, r) == "late"  # live data is never dropped for its clock
    assert MAX_BUFFER_AGE_MS == 30 * 86_400_000


# ---------------------------------------------------------------- fast accept path


@pytest.mark.parametrize(("kind", "text"), [e for e in doc_examples() if e[0] != "cmd"])
def test_fast_path_accepts_the_doc_examples(kind: str, text: str) -> None:
    from weldguard.device.protocol import codec

    assert codec._UP_FAST[kind](json.loads(text))  # the hot path is taken for real traffic


mutation_value = st.none() | st.booleans() | st.integers(-(2**33), 2**33) | st.text(max_size=40)
mutation_value |= st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    ["locked", "unlocked", "tamper", "gas_alarm", "power_loss", "chip_removed", 0, 1, True]
)
mutation_value |= st.dictionaries(st.sampled_from(["lat", "lon", "acc_m", "fix_ts", "x"]), json_any)


@settings(max_examples=1500)
@given(st.data())
def test_fast_path_never_accepts_what_the_schema_rejects(data: st.DataObject) -> None:
    """Soundness of the generated fast check: whatever it accepts, fastjsonschema
    accepts and holds no float. (When it declines, the full validator decides.)"""
    import fastjsonschema

    from weldguard.device.protocol import codec

    kind, text = data.draw(st.sampled_from([e for e in doc_examples() if e[0] != "cmd"]))
    obj = json.loads(text)
    keys = sorted({*obj, *load_schema(kind)["properties"], "lwt", "x_new"})
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()) and key in obj:
            del obj[key]
        elif key == "gps" and isinstance(obj.get("gps"), dict) and data.draw(st.booleans()):
            sub = data.draw(st.sampled_from(["lat", "lon", "acc_m", "fix_ts", "extra"]))
            obj["gps"][sub] = data.draw(mutation_value)
        else:
            obj[key] = data.draw(mutation_value)
    if codec._UP_FAST[kind](obj):
        try:
            codec._UP_VALIDATORS[kind](obj)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise AssertionError(f"fast path accepted an invalid {kind}: {obj}") from exc
        assert codec._find_float(obj) is None
