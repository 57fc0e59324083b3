"""The reference chip: a pure state machine that speaks device protocol v1.

No I/O and no clock reads: the transport passes the host clock in (``now_ms``) and
publishes what the core returns. The core keeps its own device clock as an offset
from the host clock, so a chip can start unsynchronised and be set by a ``time``
command, exactly as a real chip would.

The canonical form used to verify command signatures is implemented here
independently of ``weldguard.device.protocol`` on purpose: the chip is written
from the specification alone, so the tests that compare the two prove the
specification rather than a shared bug.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

log = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1
UP_KINDS: Final = ("hello", "hb", "tel", "evt", "ack")

# Ack codes (protocol v1).
OK: Final = 0
BAD_SIGNATURE: Final = 1
EXPIRED: Final = 2
REPLAYED_NONCE: Final = 3
WRONG_DEVICE: Final = 4
UNSUPPORTED_COMMAND: Final = 5
BAD_ARGUMENTS: Final = 6
BUSY: Final = 7
CLOCK_UNSYNCED: Final = 8
INTERNAL_ERROR: Final = 9

MAX_LIFETIME_MS: Final = 10 * 60 * 1000
NONCE_MEMORY: Final = 64
ACK_MEMORY: Final = 16
BUFFER_MAX: Final = 10_000
REPLAY_PER_S: Final = 50
UINT32_MAX: Final = 2**32 - 1
MAX_SAFE_INT: Final = 2**53 - 1
MAX_PAYLOAD: Final = 4096
HB_THIN_MS: Final = 10 * 60 * 1000
_HEX: Final = frozenset("0123456789abcdef")
COMMANDS: Final = frozenset({"unlock", "lock", "config", "ping", "time"})

LOCKED: Final = "locked"
UNLOCKED: Final = "unlocked"

# One micro-degree of latitude in metres (mean Earth radius 6,371,008.8 m).
M_PER_UDEG: Final = 6_371_008.8 * math.pi / 180 / 1_000_000

Message = dict[str, Any]
Outgoing = tuple[str, Message]


# --------------------------------------------------------------------------- canonical form


class CanonicalError(ValueError):
    """The value cannot be put in canonical form (a float, a non-str key...)."""


_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _canon_str(s: str) -> str:
    parts = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            parts.append(esc)
        elif ch < " ":
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def _canon(value: object, out: list[str]) -> None:
    # bool before int: True is an int in Python but a literal in JSON.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        # Beyond ±(2^53 − 1) a JSON number is not portable (doubles on the other side).
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise CanonicalError("integer outside ±(2^53 - 1)")
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_canon_str(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _canon(item, out)
        out.append("]")
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CanonicalError("object keys must be strings")
        # The spec orders keys by their UTF-8 bytes, not by Python's code points
        # (the two agree for valid text, but say what the spec says).
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(_canon_str(key))
            out.append(":")
            _canon(value[key], out)
        out.append("}")
    else:
        raise CanonicalError(f"type {type(value).__name__} is not allowed (integers only)")


def canonical_bytes(command: dict[str, Any]) -> bytes:
    """The command without ``sig`` in protocol v1 canonical form, as UTF-8 bytes."""
    out: list[str] = []
    _canon({k: v for k, v in command.items() if k != "sig"}, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be signed
        raise CanonicalError(str(exc)) from exc


def sign(command: dict[str, Any], secret_hex: str) -> str:
    return hmac.new(bytes.fromhex(secret_hex), canonical_bytes(command), hashlib.sha256).hexdigest()


def verify(command: dict[str, Any], secret_hex: str) -> bool:
    sig = command.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        expected = sign(command, secret_hex)
    except (CanonicalError, ValueError):
        return False
    return hmac.compare_digest(expected, sig)


# --------------------------------------------------------------------------- configuration


@dataclass
class Misbehaviour:
    """What a dishonest or broken machine does. All off for an honest chip."""

    weld_while_locked: bool = False  # bypassed relay: arcs although locked
    tamper: bool = False  # enclosure opened / chip removed now and then
    wander: bool = False  # the machine leaves its site
    go_offline: bool = False  # network outages of tens of seconds to minutes
    stop_heartbeats: bool = False  # hung firmware: connected but silent heartbeats
    overcurrent: bool = False  # current above the machine's rating

    def any(self) -> bool:
        return any(vars(self).values())


@dataclass
class ChipConfig:
    device_id: str
    secret_hex: str
    imei: str = "860000000000001"
    iccid: str = "89860000000000000001"
    rated_a: int = 400
    fw: str = "wg-sim/1.0"
    home_lat_udeg: int = 31_220_000  # 上海市长宁区
    home_lon_udeg: int = 121_420_000
    hb_s: int = 30
    tel_s: int = 10
    arc_threshold_da: int = 50
    clock_synced: bool = True
    clock_skew_ms: int = 0  # device clock minus host clock before any sync
    buffer_max: int = BUFFER_MAX
    stagger: bool = False  # random first-heartbeat phase (fleets)
    seed: int | None = None
    misbehaviour: Misbehaviour = field(default_factory=Misbehaviour)

    def __post_init__(self) -> None:
        key = bytes.fromhex(self.secret_hex)
        if len(key) != 32:
            raise ValueError("the device secret is 64 hex digits (32 bytes)")
        if self.rated_a <= 0:
            raise ValueError("rated_a must be positive")


class CommandRejected(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------- the chip


@dataclass
class _Window:
    """Running statistics of the arc over one telemetry interval."""

    start_ms: int
    dur_ms: int = 0
    i_dt: float = 0.0  # deciampere-milliseconds
    u_dt: float = 0.0  # decivolt-milliseconds
    i_max: int = 0
    e_j: float = 0.0


class ChipCore:
    """One chip. Call :meth:`on_connect` / :meth:`on_disconnect` when the link
    changes, :meth:`handle_command` for each message on ``down/cmd`` and
    :meth:`tick` often (the fleet ticks every second, a single chip ten times a
    second); publish every returned ``(kind, message)`` on ``up/{kind}``."""

    def __init__(self, config: ChipConfig, now_ms: int) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.key = bytes.fromhex(config.secret_hex)
        self.flags = config.misbehaviour
        self.hb_s = config.hb_s
        self.tel_s = config.tel_s
        self.arc_threshold_da = config.arc_threshold_da
        self.clock_offset_ms = config.clock_skew_ms
        self.clock_synced = config.clock_synced

        self.seq = 0
        self.connected = False
        # The hello of the current boot until it is sent: held aside, not buffered,
        # because it goes first on the next connection, before any replay (§ 2).
        self._boot_hello: Message | None = None
        self.boots = 1
        self.buffer: deque[Message] = deque()
        self._buffered_kinds: deque[str] = deque()
        self.replay_tokens = float(REPLAY_PER_S)
        self.dropped = 0  # buffered messages thinned away because the buffer was full

        self.lock = LOCKED
        self.sess: str | None = None
        self.welder: str | None = None
        self.until_ms: int | None = None
        self.fence: dict[str, int] | None = None
        self.outside_fence = False

        self.nonces: OrderedDict[str, int] = OrderedDict()  # nonce -> exp
        self.acks: OrderedDict[str, Message] = OrderedDict()  # command id -> ack body

        # Position: home plus a few metres of jitter; ``drift`` is where a wandering
        # machine has been carried to, in micro-degrees.
        self.drift_lat = 0.0
        self.drift_lon = 0.0
        self.heading = self.rng.uniform(0, 2 * math.pi)
        self.rssi = self.rng.randint(-95, -60)

        # Arc simulation.
        self.arc_on = False
        self.arc_start_ms = 0
        self.arc_end_ms = 0
        self.arc_target_da = 0
        self.arc_overcurrent_sent = False
        self.pause_end_ms = 0
        self.window: _Window | None = None

        dnow = self.device_now(now_ms)
        self.last_tick_ms = dnow
        self.last_replay_ms = now_ms
        phase = self.rng.uniform(0, self.hb_s * 1000) if config.stagger else 0
        self.next_hb_ms = dnow + int(phase)
        self.pause_end_ms = dnow + self.rng.randint(2_000, 15_000)
        self.next_tamper_ms = dnow + self.rng.randint(10_000, 120_000)
        self.link_up_until = dnow + self.rng.randint(60_000, 300_000)
        self.link_down_until = 0

        self._out: list[Outgoing] = []
        self._reached_args = False
        self.time_floor_ms = 0  # latest synchronised time known (persisted on a real chip)
        # The boot hello is the first message of a boot, seq 1; it waits until the
        # first connection if the chip boots offline.
        self._boot_hello = self._stamp(self._hello_body(boot=True), dnow)

    # ------------------------------------------------------------------ clock

    def device_now(self, now_ms: int) -> int:
        return now_ms + self.clock_offset_ms

    # ------------------------------------------------------------------ link

    def on_connect(self, now_ms: int) -> list[Outgoing]:
        """The link is up: send the hello first, then replay (paced by tick)."""
        self._out = []
        self.connected = True
        dnow = self.device_now(now_ms)
        if self._boot_hello is not None:
            boot, self._boot_hello = self._boot_hello, None
            boot["buf_count"] = len(self.buffer)
            self._out.append(("hello", boot))
        else:
            self._emit("hello", self._hello_body(boot=False), dnow)
        self.replay_tokens = float(REPLAY_PER_S)
        self.last_replay_ms = now_ms
        self._replay(now_ms)
        return self._take()

    def on_disconnect(self) -> None:
        self.connected = False

    def reboot(self, now_ms: int, *, keep_clock: bool = False) -> None:
        """A power cycle or reset (the transport drops the link first and connects
        again afterwards). What a real chip keeps in non-volatile memory survives:
        the seq counter, the offline buffer, the nonce and command-id memories, the
        time floor and the settings of ``config``. Everything else starts over; in
        particular the chip starts **locked** (§ 6.5) and, if it was unlocked,
        publishes ``locked`` with ``reason`` ``boot`` naming the session it lost.
        That event is produced before the first connection, so it goes out from
        the buffer, after the boot hello, as a replay.

        ``keep_clock``: a battery-backed RTC that may count as synchronised after a
        restart (§ 9.1); by default the clock runs on but is unsynchronised until
        the platform's ``time`` command, so other commands get code 8 until then.
        """
        dnow = self.device_now(now_ms)
        self.connected = False
        self.boots += 1
        was_unlocked, sess = self.lock == UNLOCKED, self.sess
        # Power gone: the relay is open, an arc in progress simply stops and its
        # unfinished window (RAM) is lost.
        self.lock, self.sess, self.welder, self.until_ms, self.fence = (
            LOCKED,
            None,
            None,
            None,
            None,
        )
        self.outside_fence = False
        self.arc_on = False
        self.window = None
        self.pause_end_ms = dnow + self.rng.randint(2_000, 15_000)
        self.clock_synced = keep_clock
        self.last_tick_ms = dnow
        self._out = []
        self._boot_hello = self._stamp(self._hello_body(boot=True), dnow)
        if was_unlocked:
            self._evt(dnow, "locked", sess=sess, reason="boot")

    def link_wanted(self, now_ms: int) -> bool:
        """False during the outages of a ``go_offline`` machine: the transport then
        drops the connection, and reconnects when this turns True again."""
        if not self.flags.go_offline:
            return True
        dnow = self.device_now(now_ms)
        if self.link_down_until and dnow < self.link_down_until:
            return False
        if self.link_down_until and dnow >= self.link_down_until:
            self.link_down_until = 0
            self.link_up_until = dnow + self.rng.randint(60_000, 300_000)
        if dnow >= self.link_up_until:
            self.link_down_until = dnow + self.rng.randint(20_000, 120_000)
            return False
        return True

    # ------------------------------------------------------------------ emit

    def _take(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def _stamp(self, body: Message, dnow: int) -> Message:
        """``body`` with the common fields and the next seq."""
        self.seq = self.seq + 1 if self.seq < UINT32_MAX else 1
        msg: Message = {"v": PROTOCOL_VERSION, "seq": self.seq, "ts": dnow, "buf": False}
        msg.update(body)
        return msg

    def _emit(self, kind: str, body: Message, dnow: int) -> None:
        msg = self._stamp(body, dnow)
        if self.connected:
            self._out.append((kind, msg))
        else:
            self._buffer(kind, msg)

    def _buffer(self, kind: str, msg: Message) -> None:
        if len(self.buffer) >= self.cfg.buffer_max:
            self._thin()
        self.buffer.append(msg)
        self._buffered_kinds.append(kind)

    def _thin(self) -> None:
        """Make room (§ 8): first thin heartbeats to one per 10 minutes, then drop the
        oldest ``tel``, then the oldest ``hb``; an ``evt``/``ack``/``hello`` goes only
        when nothing else is left."""
        kept: deque[Message] = deque()
        kinds: deque[str] = deque()
        last_hb_ts: int | None = None
        removed = 0
        for msg, kind in zip(self.buffer, self._buffered_kinds, strict=True):
            if kind == "hb":
                if last_hb_ts is not None and msg["ts"] - last_hb_ts < HB_THIN_MS:
                    removed += 1
                    continue
                last_hb_ts = msg["ts"]
            kept.append(msg)
            kinds.append(kind)
        if removed == 0:
            for victim in ("tel", "hb", None):
                idx = next((i for i, k in enumerate(kinds) if victim is None or k == victim), None)
                if idx is not None:
                    del kept[idx]
                    del kinds[idx]
                    removed = 1
                    break
        self.buffer, self._buffered_kinds = kept, kinds
        self.dropped += removed

    def _replay(self, now_ms: int) -> None:
        elapsed = max(0, now_ms - self.last_replay_ms)
        self.last_replay_ms = now_ms
        self.replay_tokens = min(
            float(REPLAY_PER_S), self.replay_tokens + elapsed * REPLAY_PER_S / 1000
        )
        while self.buffer and self.replay_tokens >= 1:
            msg = self.buffer.popleft()
            kind = self._buffered_kinds.popleft()
            msg["buf"] = True
            self._out.append((kind, msg))
            self.replay_tokens -= 1

    # ------------------------------------------------------------------ messages

    def _hello_body(self, *, boot: bool) -> Message:
        return {
            "fw": self.cfg.fw,
            "imei": self.cfg.imei,
            "iccid": self.cfg.iccid,
            "rated_a": self.cfg.rated_a,
            "boot": boot,
            "buf_count": len(self.buffer),
        }

    def position(self, dnow: int) -> tuple[int, int]:
        # A few metres of jitter around home (1 µdeg of latitude ≈ 0.11 m).
        lat = self.cfg.home_lat_udeg + self.drift_lat + self.rng.gauss(0, 20)
        lon = self.cfg.home_lon_udeg + self.drift_lon + self.rng.gauss(0, 25)
        return round(lat), round(lon)

    def _hb_body(self, dnow: int) -> Message:
        self.rssi = max(-120, min(-40, self.rssi + self.rng.randint(-3, 3)))
        lat, lon = self.position(dnow)
        return {
            "interval_s": self.hb_s,
            "lock": self.lock,
            "sess": self.sess,
            "rssi": self.rssi,
            "gps": {"lat": lat, "lon": lon, "acc_m": self.rng.randint(3, 10), "fix_ts": dnow},
            "vin": self.rng.randint(221_000, 232_000),  # the machine's 230 V supply
            "temp_c10": self.rng.randint(300, 450),
        }

    def _evt(self, dnow: int, type_: str, **fields: Any) -> None:
        body: Message = {"type": type_}
        body.update({k: v for k, v in fields.items() if v is not None})
        self._emit("evt", body, dnow)

    # ------------------------------------------------------------------ commands

    def handle_command(self, payload: bytes, now_ms: int) -> list[Outgoing]:
        """Verify and execute one command; always returns its ack when the command
        carries an id (a payload without one cannot be answered and is dropped)."""
        self._out = []
        dnow = self.device_now(now_ms)
        # Step 1: no answer is possible without an id, so such payloads are dropped.
        if len(payload) > MAX_PAYLOAD:
            log.warning("chip %s: command of %d bytes dropped", self.cfg.device_id, len(payload))
            return []
        try:
            command = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            log.warning("chip %s: undecodable command %.200r", self.cfg.device_id, payload)
            return []
        cmd_id = command.get("id") if isinstance(command, dict) else None
        if not isinstance(cmd_id, str) or not 1 <= len(cmd_id) <= 36:
            log.warning("chip %s: command without usable id %.200r", self.cfg.device_id, payload)
            return []
        self._reached_args = False
        seq_before = self.seq
        try:
            cached = self._check(command, dnow)
            if cached is not None:
                # The platform retried a command already executed: the same answer.
                self._emit("ack", dict(cached), dnow)
                return self._take()
            self._execute(command, dnow)
            code, reason = OK, None
        except CommandRejected as exc:
            code, reason = exc.code, exc.reason
        except Exception:  # a chip must answer, never crash on a command
            log.exception("chip %s: command %s failed", self.cfg.device_id, cmd_id)
            code, reason = INTERNAL_ERROR, "internal_error"
        ack: Message = {"id": cmd_id, "ok": code == OK, "code": code, "state": self.lock}
        if self._reached_args and code in (OK, BAD_ARGUMENTS, INTERNAL_ERROR):
            # Remembered (§ 12.2): an identical retry gets this very answer, and the
            # nonce cannot be used again. Codes 1–5, 7 and 8 are not remembered, so
            # the platform's retry succeeds once the cause is gone.
            self._remember_nonce(command["nonce"], command["exp"], dnow)
            self._remember_ack(cmd_id, ack)
        if code != OK:
            log.info("chip %s: rejected %s: code %d %s", self.cfg.device_id, cmd_id, code, reason)
        if self.connected and seq_before < self.seq < UINT32_MAX - 64:
            # The ack goes first so that the platform's wait ends as early as
            # possible; the events the command caused follow it, renumbered so that
            # seq still increases in publication order without gaps.
            events = self._out
            self._out = []
            self.seq = seq_before
            self._emit("ack", ack, dnow)
            for _, msg in events:
                self.seq += 1
                msg["seq"] = self.seq
            self._out.extend(events)
        else:
            self._emit("ack", ack, dnow)
        return self._take()

    def _remember_ack(self, cmd_id: str, ack: Message) -> None:
        self.acks[cmd_id] = dict(ack)
        self.acks.move_to_end(cmd_id)
        while len(self.acks) > ACK_MEMORY:
            self.acks.popitem(last=False)

    def _check(self, c: dict[str, Any], dnow: int) -> Message | None:
        """Steps 2–8 of docs/protocol.md § 12.1, in that order; returns the
        remembered ack when the command id was seen before (step 4)."""
        # 2. signature (a missing or malformed sig, or a payload with no canonical
        # form, cannot verify).
        if not verify(c, self.cfg.secret_hex):
            raise CommandRejected(BAD_SIGNATURE, "signature does not verify")
        # 3. addressee
        if c.get("dev") != self.cfg.device_id:
            raise CommandRejected(WRONG_DEVICE, f"for device {c.get('dev')!r:.40}")
        # 4. a retry of a command already answered gets the same answer
        cached = self.acks.get(c["id"])
        if cached is not None:
            return cached
        # 5. version and command
        if c.get("v") != PROTOCOL_VERSION or c.get("cmd") not in COMMANDS:
            raise CommandRejected(
                UNSUPPORTED_COMMAND, f"v {c.get('v')!r:.10} cmd {c.get('cmd')!r:.20}"
            )
        is_time = c["cmd"] == "time"
        # 6. clock
        if not self.clock_synced and not is_time:
            raise CommandRejected(CLOCK_UNSYNCED, "clock not synchronised")
        # 7. lifetime and expiry; an unsynchronised chip cannot judge expiry and
        # checks a ``time`` command against its time floor instead.
        iat, exp = c.get("iat"), c.get("exp")
        if not _is_int(iat) or not _is_int(exp) or not iat <= exp <= iat + MAX_LIFETIME_MS:
            raise CommandRejected(EXPIRED, "lifetime outside 0 … 10 min")
        if self.clock_synced:
            if dnow > exp:
                raise CommandRejected(EXPIRED, f"expired {dnow - exp} ms ago")
        else:
            now = c.get("args", {}).get("now") if isinstance(c.get("args"), dict) else None
            if not _is_int(now) or now < self.time_floor_ms:
                raise CommandRejected(EXPIRED, "time below the time floor")
        # 8. nonce
        nonce = c.get("nonce")
        if isinstance(nonce, str) and nonce in self.nonces:
            raise CommandRejected(REPLAYED_NONCE, "nonce seen before")
        # From here on the command is remembered (codes 0, 6 and 9).
        self._reached_args = True
        if not isinstance(nonce, str) or len(nonce) != 32 or not _HEX.issuperset(nonce):
            raise CommandRejected(BAD_ARGUMENTS, "nonce is not 32 lowercase hex")
        if not isinstance(c.get("args"), dict):
            raise CommandRejected(BAD_ARGUMENTS, "args is not an object")
        return None

    def _remember_nonce(self, nonce: str, exp: int, dnow: int) -> None:
        self.nonces[nonce] = exp
        # Keep at least the last 64 and every one that has not expired yet: an
        # expired command is refused anyway, so its nonce can go.
        while len(self.nonces) > NONCE_MEMORY:
            oldest, oldest_exp = next(iter(self.nonces.items()))
            if oldest_exp >= dnow:
                break
            del self.nonces[oldest]

    def _execute(self, c: dict[str, Any], dnow: int) -> None:
        cmd: str = c["cmd"]
        args: dict[str, Any] = c["args"]
        if cmd == "unlock":
            self._cmd_unlock(c["id"], args, dnow)
        elif cmd == "lock":
            reason = args.get("reason")
            if reason is not None and (not isinstance(reason, str) or len(reason) > 64):
                raise CommandRejected(BAD_ARGUMENTS, "reason must be a string of ≤ 64")
            self._lock(dnow, reason=reason, cmd_id=c["id"])
        elif cmd == "config":
            self._cmd_config(args)
        elif cmd == "ping":
            pass
        elif cmd == "time":
            now = args.get("now")
            if not _is_int(now) or not c["iat"] <= now <= c["exp"]:
                raise CommandRejected(BAD_ARGUMENTS, "time needs now within [iat, exp]")
            self.clock_offset_ms += now - dnow
            self.clock_synced = True
            self.time_floor_ms = max(self.time_floor_ms, now)

    def _cmd_unlock(self, cmd_id: str, args: dict[str, Any], dnow: int) -> None:
        sess, welder, until = args.get("sess"), args.get("welder"), args.get("until")
        if not isinstance(sess, str) or not sess:
            raise CommandRejected(BAD_ARGUMENTS, "sess")
        if not isinstance(welder, str) or not welder:
            raise CommandRejected(BAD_ARGUMENTS, "welder")
        if not _is_int(until) or until <= dnow:
            raise CommandRejected(BAD_ARGUMENTS, "until must be in the future")
        fence = args.get("fence")
        if fence is not None:
            if not isinstance(fence, dict) or not {"lat", "lon", "r_m"} <= set(fence):
                raise CommandRejected(BAD_ARGUMENTS, "fence")
            if not all(_is_int(fence[k]) for k in ("lat", "lon", "r_m")) or fence["r_m"] <= 0:
                raise CommandRejected(BAD_ARGUMENTS, "fence")
        for text, limit in ((sess, 36), (welder, 32)):
            if len(text) > limit or not text.isascii() or not text.isprintable():
                raise CommandRejected(BAD_ARGUMENTS, "sess/welder must be printable ASCII")
        # An unlock while unlocked replaces the session, until and fence (§ 10.2).
        self.lock, self.sess, self.welder, self.until_ms = UNLOCKED, sess, welder, until
        self.fence = {k: fence[k] for k in ("lat", "lon", "r_m")} if fence else None
        self.outside_fence = False
        self._evt(dnow, "unlocked", sess=sess, cmd_id=cmd_id)
        self._extra_hb(dnow)
        # A welder starts soon after the machine is unlocked.
        if not self.arc_on:
            self.pause_end_ms = dnow + self.rng.randint(1_000, 5_000)

    def _cmd_config(self, args: dict[str, Any]) -> None:
        limits = {"hb_s": (10, 300), "arc_threshold_da": (1, 30_000), "tel_s": (1, 3600)}
        for name, (low, high) in limits.items():
            value = args.get(name, low)
            if not _is_int(value) or not low <= value <= high:
                raise CommandRejected(BAD_ARGUMENTS, f"{name} out of range")
        self.hb_s = args.get("hb_s", self.hb_s)
        self.arc_threshold_da = args.get("arc_threshold_da", self.arc_threshold_da)
        self.tel_s = args.get("tel_s", self.tel_s)

    def _lock(self, dnow: int, *, reason: str | None, cmd_id: str | None) -> None:
        if self.lock == LOCKED:
            return
        # The relay opens: an arc in progress is cut and reported first.
        if self.arc_on and not self.flags.weld_while_locked:
            self._end_arc(dnow)
        sess = self.sess
        self.lock, self.sess, self.welder, self.until_ms, self.fence = (
            LOCKED,
            None,
            None,
            None,
            None,
        )
        self._evt(dnow, "locked", sess=sess, cmd_id=cmd_id, reason=reason)
        self._extra_hb(dnow)

    def _extra_hb(self, dnow: int) -> None:
        """A heartbeat right after a lock change or geofence event (§ 6.3), so the
        platform sees the new state and position at once."""
        if not self.flags.stop_heartbeats:
            self._emit("hb", self._hb_body(dnow), dnow)
            self.next_hb_ms = dnow + self.hb_s * 1000

    # ------------------------------------------------------------------ time passes

    def tick(self, now_ms: int) -> list[Outgoing]:
        self._out = []
        dnow = self.device_now(now_ms)
        dt = max(0, min(dnow - self.last_tick_ms, 60_000))
        self.last_tick_ms = dnow

        if self.lock == UNLOCKED and self.until_ms is not None and dnow >= self.until_ms:
            self._lock(dnow, reason="until", cmd_id=None)

        self._move(dt)
        self._check_fence(dnow)
        self._arc(dnow, dt)

        if self.flags.tamper and dnow >= self.next_tamper_ms:
            what = self.rng.choice(("enclosure_open", "chip_removed"))
            self._evt(dnow, "tamper", what=what, sess=self.sess)
            self.next_tamper_ms = dnow + self.rng.randint(600_000, 1_800_000)

        if dnow >= self.next_hb_ms:
            if not self.flags.stop_heartbeats:
                self._emit("hb", self._hb_body(dnow), dnow)
            self.next_hb_ms = dnow + self.hb_s * 1000

        if self.connected:
            self._replay(now_ms)
        return self._take()

    def _move(self, dt: int) -> None:
        if not self.flags.wander or dt <= 0:
            return
        # Walk away at about 1.5 m/s with a slowly turning heading.
        self.heading += self.rng.gauss(0, 0.05)
        step_udeg = 1.5 * dt / 1000 / M_PER_UDEG
        self.drift_lat += step_udeg * math.cos(self.heading)
        lat_rad = math.radians(self.cfg.home_lat_udeg / 1e6)
        self.drift_lon += step_udeg * math.sin(self.heading) / max(0.01, math.cos(lat_rad))

    def distance_m(self, lat_udeg: int, lon_udeg: int, lat2: int, lon2: int) -> float:
        # Equirectangular: exact enough for geofences of metres to kilometres.
        lat_rad = math.radians((lat_udeg + lat2) / 2 / 1e6)
        dy = (lat_udeg - lat2) * M_PER_UDEG
        dx = (lon_udeg - lon2) * M_PER_UDEG * math.cos(lat_rad)
        return math.hypot(dx, dy)

    def _check_fence(self, dnow: int) -> None:
        if self.fence is None:
            return
        lat = round(self.cfg.home_lat_udeg + self.drift_lat)
        lon = round(self.cfg.home_lon_udeg + self.drift_lon)
        d = self.distance_m(lat, lon, self.fence["lat"], self.fence["lon"])
        outside = d > self.fence["r_m"]
        if outside != self.outside_fence:
            self.outside_fence = outside
            self._evt(dnow, "geofence_exit" if outside else "geofence_enter", sess=self.sess)
            self._extra_hb(dnow)

    # ------------------------------------------------------------------ arcs

    def _arc(self, dnow: int, dt: int) -> None:
        allowed = self.lock == UNLOCKED or self.flags.weld_while_locked
        if self.arc_on:
            self._sample(dt)
            if dnow >= self.arc_end_ms or not allowed:
                self._end_arc(dnow)
            elif self.window and dnow - self.window.start_ms >= self.tel_s * 1000:
                self._flush_window(dnow, arc=True)
        elif allowed and dnow >= self.pause_end_ms:
            self._start_arc(dnow)

    def _start_arc(self, dnow: int) -> None:
        rated_da = self.cfg.rated_a * 10
        share = self.rng.uniform(1.1, 1.3) if self.flags.overcurrent else self.rng.uniform(0.6, 0.9)
        self.arc_target_da = round(rated_da * share)
        self.arc_on = True
        self.arc_start_ms = dnow
        self.arc_end_ms = dnow + self.rng.randint(5_000, 120_000)
        self.arc_overcurrent_sent = False
        self.window = _Window(start_ms=dnow)
        if self.lock == LOCKED:
            # The relay is open but current flows: the chip's current clamp sees it.
            self._evt(dnow, "arc_while_locked", i_max_da=self.arc_target_da)
        # An empty window at once, so that the platform learns of the arc within a
        # second (§ 6.4); it carries the first sample's figures and no energy.
        i_da = self.current_da()
        first: Message = {
            "arc": True,
            "sess": self.sess,
            "start_ts": dnow,
            "dur_ms": 0,
            "i_avg_da": i_da,
            "i_max_da": i_da,
            "u_avg_dv": round(200 + 0.04 * i_da),
            "e_j": 0,
        }
        self._emit("tel", first, dnow)

    def current_da(self) -> int:
        rated_da = self.cfg.rated_a * 10
        i = self.arc_target_da * (1 + self.rng.gauss(0, 0.03))
        cap = rated_da * 2 if self.flags.overcurrent else rated_da
        return max(self.arc_threshold_da + 1, min(cap, round(i)))

    def _sample(self, dt: int) -> None:
        w = self.window
        if w is None or dt <= 0:
            return
        i_da = self.current_da()
        # Arc voltage of manual/MIG arc welding: U ≈ 20 V + 0.04 V/A · I.
        u_dv = 200 + 0.04 * i_da + self.rng.gauss(0, 3)
        w.dur_ms += dt
        w.i_dt += i_da * dt
        w.u_dt += u_dv * dt
        w.i_max = max(w.i_max, i_da)
        w.e_j += (u_dv / 10) * (i_da / 10) * dt / 1000
        if i_da > self.cfg.rated_a * 10 and not self.arc_overcurrent_sent and self.lock == UNLOCKED:
            self.arc_overcurrent_sent = True
            self._evt(self.last_tick_ms, "overcurrent", i_max_da=i_da, sess=self.sess)

    def _flush_window(self, dnow: int, *, arc: bool) -> None:
        w = self.window
        if w is None:
            return
        dur = max(w.dur_ms, 1)
        body: Message = {
            "arc": arc,
            "sess": self.sess,
            "start_ts": w.start_ms,
            "dur_ms": w.dur_ms,
            "i_avg_da": round(w.i_dt / dur) if w.dur_ms else 0,
            "i_max_da": w.i_max,
            "u_avg_dv": round(w.u_dt / dur) if w.dur_ms else 0,
            "e_j": round(w.e_j),
        }
        self._emit("tel", body, dnow)
        self.window = _Window(start_ms=dnow) if arc else None

    def _end_arc(self, dnow: int) -> None:
        self._flush_window(dnow, arc=False)
        self.arc_on = False
        self.pause_end_ms = dnow + self.rng.randint(5_000, 90_000)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
