"""The reference chip's pure core: command verification, state, telemetry and the
offline buffer, driven by a fake clock."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest

from weldguard.sim.chip import (
    ACK_MEMORY,
    ChipConfig,
    ChipCore,
    Misbehaviour,
    Outgoing,
    canonical_bytes,
    verify,
)

T0 = 1_750_000_000_000  # 2025-06-15, device ms
SECRET = "a1" * 32
DEV = "WG-TEST-0001"
REPO = Path(__file__).resolve().parents[2]


def spec_canonical(command: dict[str, Any]) -> bytes:
    """The spec's canonical form through the standard library, as a second,
    independent reading of the spec to test the chip's own serialiser against."""
    body = {k: v for k, v in command.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed(
    dev: str,
    secret: str,
    cmd: str,
    args: dict[str, Any],
    now: int,
    *,
    ttl: int = 60_000,
    iat: int | None = None,
    exp: int | None = None,
    cmd_id: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    iat = now if iat is None else iat
    command: dict[str, Any] = {
        "v": 1,
        "id": cmd_id or uuid.uuid4().hex,
        "cmd": cmd,
        "dev": dev,
        "iat": iat,
        "exp": iat + ttl if exp is None else exp,
        "nonce": nonce or secrets.token_hex(16),
        "args": args,
    }
    command["sig"] = hmac.new(
        bytes.fromhex(secret), spec_canonical(command), hashlib.sha256
    ).hexdigest()
    return command


def enc(command: dict[str, Any]) -> bytes:
    return json.dumps(command, ensure_ascii=False).encode()


def make_chip(now: int = T0, **kw: Any) -> ChipCore:
    misbehaviour = kw.pop("misbehaviour", Misbehaviour())
    cfg = ChipConfig(device_id=DEV, secret_hex=SECRET, seed=42, misbehaviour=misbehaviour, **kw)
    chip = ChipCore(cfg, now)
    chip.on_connect(now)
    return chip


def acks(out: list[Outgoing]) -> list[dict[str, Any]]:
    return [m for k, m in out if k == "ack"]


def one_ack(out: list[Outgoing]) -> dict[str, Any]:
    found = acks(out)
    assert len(found) == 1, out
    return found[0]


def run(chip: ChipCore, start: int, seconds: int, step_ms: int = 1000) -> list[Outgoing]:
    out: list[Outgoing] = []
    for t in range(start + step_ms, start + seconds * 1000 + 1, step_ms):
        out += chip.tick(t)
    return out


def unlock_cmd(now: int, until: int | None = None, **kw: Any) -> dict[str, Any]:
    args = {"sess": "sess-1", "welder": "welder-1", "until": until or now + 3_600_000}
    return signed(DEV, SECRET, "unlock", args, now, **kw)


# --------------------------------------------------------------------------- canonical form


@pytest.mark.parametrize(
    "command",
    [
        {"b": 1, "a": {"z": True, "y": None, "x": [3, -2, "s"]}, "sig": "dropped"},
        {"k": 'quote " backslash \\ \b\f\n\r\t \x00\x1f\x7f end'},
        {"中": "焊工 张三", "é": "ü", "a": "é", "\U0001f525": "火"},
        {"n": 2**53 - 1, "neg": -(2**53 - 1), "empty": {}, "list": []},
    ],
)
def test_canonical_form_matches_spec_reading(command: dict[str, Any]) -> None:
    assert canonical_bytes(command) == spec_canonical(command)


def test_canonical_form_refuses_unportable_integers() -> None:
    assert verify({"n": 2**53, "sig": "0" * 64}, SECRET) is False


def test_canonical_form_bytes() -> None:
    got = canonical_bytes({"é": 1, "z": 2, "A": "\x01\n", "sig": "x", "中": False})
    # Keys ordered by UTF-8 bytes: "A" (41) < "z" (7a) < "é" (c3 a9) < "中" (e4 b8 ad).
    assert got == '{"A":"\\u0001\\n","z":2,"é":1,"中":false}'.encode()
    assert b"\\u001f" in canonical_bytes({"a": "\x1f"})  # lowercase hex


def test_canonical_form_refuses_floats() -> None:
    cmd = {"v": 1, "args": {"x": 1.5}, "sig": "00"}
    assert verify(cmd, SECRET) is False


def _protocol_module(name: str) -> Any:
    try:
        return importlib.import_module(f"weldguard.device.protocol.{name}")
    except ImportError:
        pytest.skip("weldguard.device.protocol is not there yet")


def test_agrees_with_platform_signing() -> None:
    signing = _protocol_module("signing")
    chip = make_chip()
    for cmd_name, args in [
        ("unlock", {"sess": "sess-1", "welder": "w-1", "until": T0 + 60_000}),
        ("lock", {"reason": '下班 "收工"\n\x01'}),
        ("config", {"hb_s": 60}),
    ]:
        cmd = signing.build_command(DEV, cmd_name, args, SECRET, T0, 60_000)
        assert canonical_bytes(cmd) == signing.canonical_bytes(cmd)
        assert verify(cmd, SECRET) and signing.verify(cmd, SECRET)
        payload = signing.encode_command(cmd)  # what the platform publishes
        assert one_ack(chip.handle_command(payload, T0))["code"] == 0, cmd_name
    mine = signed(DEV, SECRET, "ping", {"x": "é中"}, T0)
    assert signing.verify(mine, SECRET)


def test_protocol_vectors() -> None:
    """docs/protocol.md § 11.6: a conforming chip verifies every payload and rejects
    it after any single byte changes."""
    path = REPO / "docs" / "protocol-vectors.json"
    if not path.exists():
        pytest.skip("docs/protocol-vectors.json is not there yet")
    vectors = json.loads(path.read_text("utf-8"))["vectors"]
    assert vectors
    for vector in vectors:
        command, secret = vector["command"], vector["secret"]
        assert canonical_bytes(command).decode() == vector["canonical"], vector["name"]
        payload = vector["payload"].encode()
        decoded = json.loads(payload)
        assert verify(decoded, secret), vector["name"]
        assert decoded["sig"] == vector["sig"]
        for pos in range(0, len(payload), max(1, len(payload) // 40)):
            mutated = bytearray(payload)
            mutated[pos] ^= 0x01
            try:
                altered = json.loads(bytes(mutated))
            except ValueError:
                continue  # no longer JSON: dropped before any check
            if isinstance(altered, dict) and altered != decoded:
                assert not verify(altered, secret), (vector["name"], pos)


def test_outputs_conform_to_platform_schemas() -> None:
    codec = _protocol_module("codec")
    chip = make_chip(misbehaviour=Misbehaviour(tamper=True, wander=True, overcurrent=True))
    fence = {"lat": 31_220_000, "lon": 121_420_000, "r_m": 50}
    args = {"sess": "sess-1", "welder": "w-1", "until": T0 + 900_000, "fence": fence}
    out = chip.handle_command(enc(signed(DEV, SECRET, "unlock", args, T0)), T0)
    out += run(chip, T0, 1200)
    out += chip.handle_command(enc(signed(DEV, SECRET, "nope", {}, T0)), T0 + 1_200_000)
    chip.on_disconnect()
    run(chip, T0 + 1_200_000, 100)
    out += chip.on_connect(T0 + 1_300_000) + run(chip, T0 + 1_300_000, 10)
    kinds = {k for k, _ in out}
    assert kinds == {"hello", "hb", "tel", "evt", "ack"}
    for kind, msg in out:
        codec.decode_up(kind, json.dumps(msg).encode())


# --------------------------------------------------------------------------- verification


def test_valid_command_accepted() -> None:
    chip = make_chip()
    ack = one_ack(chip.handle_command(enc(signed(DEV, SECRET, "ping", {}, T0)), T0))
    assert ack["ok"] is True and ack["code"] == 0 and ack["state"] == "locked"


def test_forged_signature_rejected() -> None:
    chip = make_chip()
    cmd = unlock_cmd(T0)
    cmd["args"]["until"] += 1  # tampered after signing
    ack = one_ack(chip.handle_command(enc(cmd), T0))
    assert (ack["ok"], ack["code"], ack["state"]) == (False, 1, "locked")
    other_key = signed(DEV, "b2" * 32, "unlock", {"sess": "s", "welder": "w", "until": T0 + 9}, T0)
    assert one_ack(chip.handle_command(enc(other_key), T0))["code"] == 1
    assert chip.lock == "locked"


def test_expired_rejected() -> None:
    chip = make_chip()
    cmd = unlock_cmd(T0 - 120_000, ttl=60_000)
    assert one_ack(chip.handle_command(enc(cmd), T0))["code"] == 2
    assert chip.lock == "locked"


def test_replayed_nonce_rejected() -> None:
    chip = make_chip()
    first = signed(DEV, SECRET, "ping", {}, T0, nonce="0" * 32)
    again = signed(DEV, SECRET, "ping", {}, T0, nonce="0" * 32)  # new id, same nonce
    assert one_ack(chip.handle_command(enc(first), T0))["code"] == 0
    assert one_ack(chip.handle_command(enc(again), T0 + 10))["code"] == 3


def test_nonce_memory_keeps_unexpired_beyond_64() -> None:
    chip = make_chip()
    nonces = [secrets.token_hex(16) for _ in range(200)]
    for n in nonces:
        chip.handle_command(enc(signed(DEV, SECRET, "ping", {}, T0, nonce=n)), T0)
    # All 200 are unexpired: a replay of the very first is still caught.
    replay = signed(DEV, SECRET, "ping", {}, T0, nonce=nonces[0])
    assert one_ack(chip.handle_command(enc(replay), T0 + 1))["code"] == 3
    # Once they have expired, only the last 64 need to be remembered.
    later = T0 + 3_600_000
    chip.handle_command(enc(signed(DEV, SECRET, "ping", {}, later)), later)
    assert 64 <= len(chip.nonces) <= 65


def test_wrong_device_rejected() -> None:
    chip = make_chip()
    cmd = signed("WG-OTHER", SECRET, "unlock", {"sess": "s", "welder": "w", "until": T0 + 9}, T0)
    assert one_ack(chip.handle_command(enc(cmd), T0))["code"] == 4


def test_unknown_command_rejected() -> None:
    chip = make_chip()
    assert (
        one_ack(chip.handle_command(enc(signed(DEV, SECRET, "selfdestruct", {}, T0)), T0))["code"]
        == 5
    )


def test_over_long_lifetime_rejected() -> None:
    # docs/protocol.md § 12.1 step 7: a lifetime over 10 minutes is code 2.
    chip = make_chip()
    cmd = unlock_cmd(T0, ttl=10 * 60_000 + 1)
    assert one_ack(chip.handle_command(enc(cmd), T0))["code"] == 2
    negative = unlock_cmd(T0, ttl=-1)
    assert one_ack(chip.handle_command(enc(negative), T0))["code"] == 2
    ok = unlock_cmd(T0, ttl=10 * 60_000)
    assert one_ack(chip.handle_command(enc(ok), T0))["code"] == 0


@pytest.mark.parametrize(
    "args",
    [
        {"sess": "s", "welder": "w"},  # no until
        {"sess": "s", "welder": "w", "until": T0 - 1},  # until in the past
        {"sess": "", "welder": "w", "until": T0 + 9},
        {"sess": "s", "welder": "w", "until": T0 + 9, "fence": {"lat": 1}},
        {"sess": "s", "welder": "w", "until": True},
    ],
)
def test_bad_unlock_arguments(args: dict[str, Any]) -> None:
    chip = make_chip()
    assert (
        one_ack(chip.handle_command(enc(signed(DEV, SECRET, "unlock", args, T0)), T0))["code"] == 6
    )
    assert chip.lock == "locked"


def test_repeated_id_gets_same_ack() -> None:
    chip = make_chip()
    cmd = unlock_cmd(T0)
    first = chip.handle_command(enc(cmd), T0)
    retry = chip.handle_command(enc(cmd), T0 + 2_000)
    a, b = one_ack(first), one_ack(retry)
    strip = ("seq", "ts", "buf", "v")
    assert {k: v for k, v in a.items() if k not in strip} == {
        k: v for k, v in b.items() if k not in strip
    }
    assert a["code"] == 0 and b["seq"] > a["seq"]
    # The retry is not executed twice: no second "unlocked" event.
    assert not [m for k, m in retry if k == "evt"]
    # Only the last 16 ids are kept.
    for _ in range(ACK_MEMORY):
        chip.handle_command(enc(signed(DEV, SECRET, "ping", {}, T0)), T0)
    assert cmd["id"] not in chip.acks


def test_unsynced_clock_answers_8_until_time_command() -> None:
    chip = make_chip(clock_synced=False, clock_skew_ms=-86_400_000)
    unlock = unlock_cmd(T0)
    assert one_ack(chip.handle_command(enc(unlock), T0))["code"] == 8
    timecmd = signed(DEV, SECRET, "time", {"now": T0}, T0)
    assert one_ack(chip.handle_command(enc(timecmd), T0))["code"] == 0
    # A replayed old time command cannot set the clock back (time floor).
    old = signed(DEV, SECRET, "time", {"now": T0 - 5_000}, T0 - 5_000)
    chip.clock_synced = False
    assert one_ack(chip.handle_command(enc(old), T0))["code"] == 2
    chip.clock_synced = True
    assert chip.device_now(T0) == T0
    # The very same unlock, retried, now works: code 8 did not consume its nonce.
    ack = one_ack(chip.handle_command(enc(unlock), T0 + 5))
    assert ack["code"] == 0 and ack["state"] == "unlocked"


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[1,2]", b'{"no":"id"}', b"\xff\xfe", b'{"id": 5}'],
)
def test_garbage_is_dropped_quietly(payload: bytes) -> None:
    chip = make_chip()
    assert chip.handle_command(payload, T0) == []


def test_altered_command_with_id_gets_1_and_is_not_cached() -> None:
    chip = make_chip()
    cmd = unlock_cmd(T0)
    broken = {k: v for k, v in cmd.items() if k != "nonce"}
    assert one_ack(chip.handle_command(enc(broken), T0))["code"] == 1
    # An unsigned message must not poison the answer for the real command's id.
    assert one_ack(chip.handle_command(enc(cmd), T0))["code"] == 0


# --------------------------------------------------------------------------- behaviour


def test_unlock_heartbeat_and_arcs_within_rating() -> None:
    chip = make_chip(rated_a=315, hb_s=30, tel_s=10)
    out = chip.handle_command(enc(unlock_cmd(T0)), T0)
    kinds = [k for k, _ in out]
    assert kinds == ["ack", "evt", "hb"]
    assert out[1][1]["type"] == "unlocked" and out[1][1]["sess"] == "sess-1"
    later = run(chip, T0, 600)
    hbs = [m for k, m in later if k == "hb"]
    assert hbs and all(m["lock"] == "unlocked" and m["sess"] == "sess-1" for m in hbs)
    tels = [m for k, m in later if k == "tel"]
    arcs = [m for m in tels if m["dur_ms"] > 0]
    assert len(arcs) >= 5
    assert any(m["arc"] is False for m in tels), "arcs end"
    for m in arcs:
        assert m["sess"] == "sess-1"
        assert 0.55 * 3150 <= m["i_avg_da"] <= m["i_max_da"] <= 3150
        volts = m["u_avg_dv"] / 10
        assert abs(volts - (20 + 0.04 * m["i_avg_da"] / 10)) < 1.5
        expected_j = volts * m["i_avg_da"] / 10 * m["dur_ms"] / 1000
        assert abs(m["e_j"] - expected_j) <= 0.05 * expected_j + 1
        assert all(isinstance(v, int | bool | str) for v in m.values())
    # GPS jitter of a few metres around home.
    for hb in hbs:
        assert abs(hb["gps"]["lat"] - 31_220_000) < 150
        assert abs(hb["gps"]["lon"] - 121_420_000) < 200


def test_auto_lock_at_until() -> None:
    chip = make_chip()
    chip.handle_command(enc(unlock_cmd(T0, until=T0 + 30_000)), T0)
    out = run(chip, T0, 40)
    locked = [m for k, m in out if k == "evt" and m["type"] == "locked"]
    assert len(locked) == 1 and locked[0]["sess"] == "sess-1"
    assert T0 + 30_000 <= locked[0]["ts"] <= T0 + 31_000
    assert chip.lock == "locked"
    after = [m for k, m in out if m["ts"] > locked[0]["ts"]]
    assert not [m for m in after if m.get("arc") is True]


def test_lock_command_cuts_arc() -> None:
    chip = make_chip()
    chip.handle_command(enc(unlock_cmd(T0)), T0)
    chip.pause_end_ms = 0  # the welder strikes an arc now
    run(chip, T0, 3)
    t = T0 + 3_000
    assert chip.arc_on
    out = chip.handle_command(enc(signed(DEV, SECRET, "lock", {"reason": "x"}, t)), t)
    assert [k for k, _ in out] == ["ack", "tel", "evt", "hb"]
    assert out[1][1]["arc"] is False and out[2][1]["type"] == "locked"
    seqs = [m["seq"] for _, m in out]
    assert seqs == sorted(seqs)


def test_locked_honest_chip_never_arcs() -> None:
    chip = make_chip()
    out = run(chip, T0, 600)
    assert not [m for k, m in out if k == "tel"]


def test_weld_while_locked() -> None:
    chip = make_chip(misbehaviour=Misbehaviour(weld_while_locked=True))
    out = run(chip, T0, 300)
    evts = [m for k, m in out if k == "evt" and m["type"] == "arc_while_locked"]
    tels = [m for k, m in out if k == "tel"]
    assert evts and evts[0]["i_max_da"] > 0
    assert any(m["arc"] for m in tels) and all(m["sess"] is None for m in tels)
    assert all(m["lock"] == "locked" for k, m in out if k == "hb")


def test_tamper_and_wander_and_geofence() -> None:
    chip = make_chip(misbehaviour=Misbehaviour(tamper=True, wander=True))
    fence = {"lat": 31_220_000, "lon": 121_420_000, "r_m": 100}
    args = {"sess": "s", "welder": "w", "until": T0 + 7_200_000, "fence": fence}
    chip.handle_command(enc(signed(DEV, SECRET, "unlock", args, T0)), T0)
    out = run(chip, T0, 600)
    types = [m["type"] for k, m in out if k == "evt"]
    assert "tamper" in types
    assert "geofence_exit" in types
    last_hb = [m for k, m in out if k == "hb"][-1]
    moved = chip.distance_m(last_hb["gps"]["lat"], last_hb["gps"]["lon"], 31_220_000, 121_420_000)
    assert moved > 100


def test_stop_heartbeats() -> None:
    chip = make_chip(misbehaviour=Misbehaviour(stop_heartbeats=True))
    assert not [m for k, m in run(chip, T0, 300) if k == "hb"]


def test_overcurrent_event() -> None:
    chip = make_chip(misbehaviour=Misbehaviour(overcurrent=True))
    chip.handle_command(enc(unlock_cmd(T0)), T0)
    out = run(chip, T0, 120)
    assert [m for k, m in out if k == "evt" and m["type"] == "overcurrent"]


def test_config_command() -> None:
    chip = make_chip()
    cmd = signed(DEV, SECRET, "config", {"hb_s": 60, "tel_s": 5, "arc_threshold_da": 100}, T0)
    assert one_ack(chip.handle_command(enc(cmd), T0))["code"] == 0
    assert (chip.hb_s, chip.tel_s, chip.arc_threshold_da) == (60, 5, 100)
    bad = signed(DEV, SECRET, "config", {"hb_s": 1}, T0)
    assert one_ack(chip.handle_command(enc(bad), T0))["code"] == 6


# --------------------------------------------------------------------------- seq and buffer


def test_boot_hello_is_seq_1() -> None:
    chip = ChipCore(ChipConfig(device_id=DEV, secret_hex=SECRET, seed=1), T0)
    (kind, hello), *_ = chip.on_connect(T0)
    assert kind == "hello" and hello["seq"] == 1 and hello["boot"] is True
    assert hello["imei"] and hello["rated_a"] == 400 and hello["buf"] is False


def test_offline_buffer_replay() -> None:
    chip = make_chip()
    chip.handle_command(enc(unlock_cmd(T0)), T0)
    online = run(chip, T0, 60)
    chip.on_disconnect()
    assert run(chip, T0 + 60_000, 600) == []  # nothing goes out while offline
    buffered = len(chip.buffer)
    assert buffered > 20
    first_buffered_seq = chip.buffer[0]["seq"]

    t = T0 + 660_000
    out = chip.on_connect(t)
    kind, hello = out[0]
    assert kind == "hello" and hello["boot"] is False and hello["buf_count"] == buffered
    assert hello["buf"] is False
    replay_and_live = out[1:]
    step = 0
    while chip.buffer:
        step += 100
        replay_and_live += chip.tick(t + step)
    replayed = [m for _, m in replay_and_live if m["buf"]]
    live = [m for _, m in replay_and_live if not m["buf"]]
    assert len(replayed) == buffered
    assert replayed[0]["seq"] == first_buffered_seq
    assert [m["seq"] for m in replayed] == sorted(m["seq"] for m in replayed)
    assert all(m["seq"] < hello["seq"] for m in replayed)
    assert all(m["seq"] > hello["seq"] for m in live)
    assert all(m["ts"] <= t for m in replayed), "original timestamps kept"
    # At most 50 per second.
    assert step >= (buffered - 50) * 1000 / 50 - 100
    all_seq = [m["seq"] for _, m in online] + [hello["seq"]]
    assert all_seq == sorted(all_seq) and len(set(all_seq)) == len(all_seq)


def test_buffer_thins_heartbeats_when_full() -> None:
    chip = make_chip(buffer_max=100, hb_s=10, misbehaviour=Misbehaviour(tamper=True))
    chip.handle_command(enc(unlock_cmd(T0, until=T0 + 3_600_000)), T0)
    chip.on_disconnect()
    run(chip, T0, 5000, step_ms=5000)
    assert len(chip.buffer) <= 100
    assert chip.dropped > 0
    kinds = list(chip._buffered_kinds)
    # Events are never dropped while heartbeats or telemetry could be.
    evts = [m for k, m in zip(kinds, chip.buffer, strict=True) if k == "evt"]
    assert [m["type"] for m in evts].count("locked") == 1
    assert sum(1 for m in evts if m["type"] == "tamper") >= 2
    hb_ts = [m["ts"] for k, m in zip(kinds, chip.buffer, strict=True) if k == "hb"]
    assert hb_ts, "heartbeats thinned, not all dropped"
    seqs = [m["seq"] for m in chip.buffer]
    assert seqs == sorted(seqs)


def test_boot_offline_keeps_boot_hello_first() -> None:
    chip = ChipCore(ChipConfig(device_id=DEV, secret_hex=SECRET, seed=1), T0)
    run(chip, T0, 100)
    out = chip.on_connect(T0 + 100_000)
    kind, hello = out[0]
    assert kind == "hello" and hello["boot"] is True and hello["seq"] == 1
    assert hello["buf_count"] == len(chip.buffer) + len(out) - 1


def test_reboot_starts_locked_and_says_so_after_the_boot_hello() -> None:
    """§ 6.5: locked after a reset, with ``locked``/``boot`` naming the lost session;
    the boot hello still goes first (§ 2) and seq carries on (§ 7)."""
    chip = make_chip()
    chip.handle_command(enc(unlock_cmd(T0)), T0)
    run(chip, T0, 30)
    assert chip.lock == "unlocked"
    chip.on_disconnect()
    run(chip, T0 + 30_000, 5)  # a little offline before the power goes
    before = chip.seq
    chip.reboot(T0 + 40_000)
    assert (chip.lock, chip.sess, chip.arc_on) == ("locked", None, False)
    out = chip.on_connect(T0 + 45_000)
    kind, hello = out[0]
    assert kind == "hello" and hello["boot"] is True and hello["buf"] is False
    assert hello["seq"] == before + 1
    replayed = [m for _, m in out[1:] + run(chip, T0 + 45_000, 2) if m.get("buf")]
    (boot_lock,) = [m for m in replayed if m.get("type") == "locked"]
    assert boot_lock["sess"] == "sess-1" and boot_lock["reason"] == "boot"
    assert boot_lock["seq"] == before + 2 and boot_lock["ts"] == T0 + 40_000
    # Its clock is not synchronised any more: an unlock waits for the time command.
    assert one_ack(chip.handle_command(enc(unlock_cmd(T0 + 46_000)), T0 + 46_000))["code"] == 8
    time_cmd = signed(DEV, SECRET, "time", {"now": T0 + 46_500}, T0 + 46_500, ttl=30_000)
    assert one_ack(chip.handle_command(enc(time_cmd), T0 + 46_500))["code"] == 0
    ack = one_ack(chip.handle_command(enc(unlock_cmd(T0 + 47_000)), T0 + 47_000))
    assert (ack["code"], ack["state"], chip.sess) == (0, "unlocked", "sess-1")


def test_a_locked_chip_reboots_without_a_lock_event() -> None:
    chip = make_chip()
    chip.reboot(T0 + 1000, keep_clock=True)
    out = chip.on_connect(T0 + 2000) + run(chip, T0 + 2000, 3)
    assert out[0][0] == "hello" and out[0][1]["boot"] is True
    assert not [m for k, m in out if k == "evt"]
    assert chip.clock_synced


def test_seq_strictly_increasing_everywhere() -> None:
    chip = make_chip(misbehaviour=Misbehaviour(tamper=True, wander=True, go_offline=True))
    seqs: list[int] = []
    t = T0
    for i in range(1, 3000):
        t = T0 + i * 1000
        if i % 200 == 0:
            chip.on_disconnect()
        if i % 200 == 50:
            seqs += [m["seq"] for _, m in chip.on_connect(t)]
        if i % 97 == 0:
            seqs += [m["seq"] for _, m in chip.handle_command(enc(unlock_cmd(t)), t)]
        seqs += [m["seq"] for _, m in chip.tick(t)]
    seqs += [m["seq"] for _, m in chip.on_connect(t)]
    while chip.buffer:
        t += 1000
        seqs += [m["seq"] for _, m in chip.tick(t)]
    assert len(set(seqs)) == len(seqs), "no seq twice"
    # seq 1 is the boot hello, sent by make_chip.
    assert sorted(seqs) == list(range(2, max(seqs) + 1)), "no seq lost"


def test_go_offline_schedule() -> None:
    chip = make_chip(misbehaviour=Misbehaviour(go_offline=True))
    states = [chip.link_wanted(T0 + s * 1000) for s in range(0, 3600, 5)]
    assert False in states and True in states
