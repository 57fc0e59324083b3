"""Many reference chips in one process: one asyncio loop, one gmqtt client per chip.

gmqtt publishes QoS 1 several times faster than paho and costs a socket and a few
objects per chip, no thread, so a few thousand chips fit in one process. Every chip
keeps its own :class:`ChipCore`; one ticker task advances them all and publishes
what they return. TCP_NODELAY is set by asyncio on every TCP connection.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

from weldguard.sim.chip import ChipConfig, ChipCore, Misbehaviour, Outgoing, sign
from weldguard.sim.transport import (
    KEEPALIVE_S,
    BrokerAddress,
    command_topic,
    encode,
    parse_broker_url,
    up_topic,
)

log = logging.getLogger(__name__)

DEVICE_FIELDS = ("device_id", "secret", "imei", "iccid", "rated_a", "lat", "lon")
MISBEHAVIOURS = (
    "weld_while_locked",
    "tamper",
    "wander",
    "go_offline",
    "stop_heartbeats",
    "overcurrent",
)
# Demo sites (degrees): 上海市长宁区 and 郑州市中原区.
SITES = ((31.2200, 121.4200), (34.7480, 113.6120))
RATINGS = (160, 200, 250, 315, 400, 500, 630)
MAX_INFLIGHT_PER_CHIP = 200


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    secret: str
    imei: str
    iccid: str
    rated_a: int
    lat: float
    lon: float


def luhn_digit(digits: str) -> str:
    """Check digit of IMEIs and ICCIDs."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def generate_devices(
    n: int, *, prefix: str | None = None, seed: int | None = None
) -> list[DeviceSpec]:
    """N devices with random secrets; ids are unique per run so that fleets on a
    shared broker never share a client id."""
    rng = random.Random(seed)
    prefix = prefix or f"SIM{uuid.uuid4().hex[:6].upper()}-"
    devices = []
    for i in range(n):
        imei14 = "86" + "".join(str(rng.randint(0, 9)) for _ in range(12))
        iccid19 = "898600" + "".join(str(rng.randint(0, 9)) for _ in range(13))
        lat, lon = rng.choice(SITES)
        devices.append(
            DeviceSpec(
                device_id=f"{prefix}{i:05d}",
                secret=secrets.token_hex(32),
                imei=imei14 + luhn_digit(imei14),
                iccid=iccid19 + luhn_digit(iccid19),
                rated_a=rng.choice(RATINGS),
                lat=round(lat + rng.uniform(-0.04, 0.04), 6),
                lon=round(lon + rng.uniform(-0.05, 0.05), 6),
            )
        )
    return devices


def load_devices(path: Path) -> list[DeviceSpec]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(DEVICE_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        return [
            DeviceSpec(
                device_id=row["device_id"].strip(),
                secret=row["secret"].strip().lower(),
                imei=row["imei"].strip(),
                iccid=row["iccid"].strip(),
                rated_a=int(row["rated_a"]),
                lat=float(row["lat"]),
                lon=float(row["lon"]),
            )
            for row in reader
        ]


def write_devices(devices: Iterable[DeviceSpec], out: Any) -> None:
    writer = csv.writer(out)
    writer.writerow(DEVICE_FIELDS)
    for d in devices:
        writer.writerow([d.device_id, d.secret, d.imei, d.iccid, d.rated_a, d.lat, d.lon])


def assign_misbehaviour(n: int, share: float, rng: random.Random) -> list[Misbehaviour]:
    """A share of the fleet misbehaves, each such machine in one way, spread
    evenly over the kinds of misbehaviour."""
    bad = sorted(rng.sample(range(n), round(max(0.0, min(1.0, share)) * n)))
    kinds = [MISBEHAVIOURS[j % len(MISBEHAVIOURS)] for j in range(len(bad))]
    rng.shuffle(kinds)
    result = [Misbehaviour() for _ in range(n)]
    for i, kind in zip(bad, kinds, strict=True):
        setattr(result[i], kind, True)
    return result


# --------------------------------------------------------------------------- fleet


@dataclass
class FleetStats:
    published: int = 0
    commands: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    callback_errors: int = 0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.published / max(1e-9, time.monotonic() - self.started)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FleetChip:
    """One chip of the fleet: its core and its gmqtt client."""

    def __init__(self, spec: DeviceSpec, core: ChipCore, fleet: Fleet) -> None:
        self.spec = spec
        self.core = core
        self.fleet = fleet
        self.client: gmqtt.Client | None = None
        self.connected = False
        self.linking = False  # a connect or disconnect is under way
        self.next_attempt = 0.0
        self.backoff = 1.0
        self.self_unlock = False

    # gmqtt callbacks: never let an exception escape into the client.
    def on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        try:
            self.connected = True
            self.fleet.stats.connects += 1
            client.subscribe(command_topic(self.spec.device_id), qos=1)
            self.publish(self.core.on_connect(self.fleet.clock()))
        except Exception:
            self.fleet.stats.callback_errors += 1
            log.exception("chip %s: on_connect failed", self.spec.device_id)

    def on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        try:
            if self.connected:
                self.fleet.stats.disconnects += 1
            self.connected = False
            self.core.on_disconnect()
        except Exception:
            self.fleet.stats.callback_errors += 1
            log.exception("chip %s: on_disconnect failed", self.spec.device_id)

    def on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        try:
            self.fleet.stats.commands += 1
            self.publish(self.core.handle_command(payload, self.fleet.clock()))
        except Exception:
            self.fleet.stats.callback_errors += 1
            log.exception("chip %s: command failed: %.200r", self.spec.device_id, payload)
        return 0

    def publish(self, out: list[Outgoing]) -> None:
        client = self.client
        if client is None:
            return
        for kind, message in out:
            try:
                client.publish(up_topic(self.spec.device_id, kind), encode(message), qos=1)
                self.fleet.stats.published += 1
            except Exception:
                # gmqtt keeps QoS 1 messages it could not send for the next connection.
                log.debug("chip %s: publish failed", self.spec.device_id, exc_info=True)

    def inflight(self) -> int:
        client = self.client
        if client is None:
            return 0
        try:
            return len(client._persistent_storage.get_all())
        except Exception:
            return 0

    async def connect(self, addr: BrokerAddress, sem: asyncio.Semaphore) -> None:
        self.linking = True
        try:
            async with sem:
                if self.client is None:
                    client = gmqtt.Client(self.spec.device_id, clean_session=True)
                    client.set_auth_credentials(self.spec.device_id, self.spec.secret)
                    client.on_connect = self.on_connect
                    client.on_disconnect = self.on_disconnect
                    client.on_message = self.on_message
                    # gmqtt reconnects by itself after a lost connection.
                    client.reconnect_delay = self.fleet.rng.uniform(1.0, 5.0)
                    self.client = client
                # asyncio.timeout, never wait_for, in this module: on Python 3.11 a
                # wait_for cancelled just as what it awaits completes returns
                # normally, losing the cancellation (CPython gh-86296, fixed in
                # 3.12); close() cancels these tasks and must see them end so.
                async with asyncio.timeout(15):
                    await self.client.connect(
                        addr.host, addr.port, ssl=addr.tls, keepalive=KEEPALIVE_S, version=MQTTv311
                    )
            self.backoff = 1.0
        except Exception as exc:
            self.fleet.stats.connect_failures += 1
            log.info("chip %s: connect failed: %s", self.spec.device_id, exc)
            self.next_attempt = time.monotonic() + self.backoff * self.fleet.rng.uniform(0.5, 1.5)
            self.backoff = min(60.0, self.backoff * 2)
            await self._abandon_client()
        finally:
            self.linking = False

    async def _abandon_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                async with asyncio.timeout(2):
                    await client.disconnect()
            except Exception:
                log.debug("chip %s: disconnect after failure", self.spec.device_id, exc_info=True)
        self.connected = False
        self.core.on_disconnect()

    async def disconnect(self) -> None:
        self.linking = True
        try:
            client = self.client
            if client is not None:
                async with asyncio.timeout(5):
                    await client.disconnect()
        except Exception:
            log.debug("chip %s: disconnect failed", self.spec.device_id, exc_info=True)
        finally:
            self.connected = False
            self.core.on_disconnect()
            self.linking = False


class Fleet:
    def __init__(
        self,
        devices: list[DeviceSpec],
        broker_url: str,
        *,
        misbehaving: float = 0.1,
        self_unlock: float = 0.0,
        tick_s: float = 1.0,
        stress: bool = False,
        hb_s: int = 30,
        tel_s: int = 10,
        connect_concurrency: int = 64,
        seed: int | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.addr = parse_broker_url(broker_url)
        self.rng = random.Random(seed)
        self.clock = clock
        self.tick_s = tick_s
        self.stress = stress
        self.stats = FleetStats()
        self.connect_concurrency = connect_concurrency
        self._tasks: set[asyncio.Task[None]] = set()
        now = clock()
        flags = assign_misbehaviour(len(devices), misbehaving, self.rng)
        self.chips: list[FleetChip] = []
        for spec, misbehaviour in zip(devices, flags, strict=True):
            cfg = ChipConfig(
                device_id=spec.device_id,
                secret_hex=spec.secret,
                imei=spec.imei,
                iccid=spec.iccid,
                rated_a=spec.rated_a,
                home_lat_udeg=round(spec.lat * 1_000_000),
                home_lon_udeg=round(spec.lon * 1_000_000),
                hb_s=hb_s,
                tel_s=tel_s,
                stagger=True,
                seed=self.rng.randrange(2**32),
                misbehaviour=misbehaviour,
            )
            chip = FleetChip(spec, ChipCore(cfg, now), self)
            chip.self_unlock = not misbehaviour.any() and self.rng.random() < self_unlock
            self.chips.append(chip)

    @property
    def misbehaving(self) -> list[FleetChip]:
        return [c for c in self.chips if c.core.flags.any()]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _self_unlock(self, chip: FleetChip, now: int) -> None:
        """For a demo without the platform: sign an unlock with the chip's own key
        and hand it to the chip as if it had come from the platform."""
        core = chip.core
        if core.lock != "locked" or self.rng.random() > 0.05:
            return
        command: dict[str, Any] = {
            "v": 1,
            "id": str(uuid.uuid4()),
            "cmd": "unlock",
            "dev": chip.spec.device_id,
            "iat": now,
            "exp": now + 60_000,
            "nonce": secrets.token_hex(16),
            "args": {
                "sess": f"demo-{uuid.uuid4().hex[:12]}",
                "welder": f"demo-welder-{self.rng.randint(1, 999):03d}",
                "until": now + self.rng.randint(10, 60) * 60_000,
            },
        }
        command["sig"] = sign(command, chip.spec.secret)
        chip.publish(core.handle_command(encode(command), now))

    async def run(
        self, seconds: float | None = None, report: Callable[[str], None] | None = None
    ) -> FleetStats:
        sem = asyncio.Semaphore(self.connect_concurrency)
        self.stats = FleetStats()
        deadline = None if seconds is None else time.monotonic() + seconds
        next_report = time.monotonic() + 5
        last_published = 0
        try:
            while deadline is None or time.monotonic() < deadline:
                round_start = time.monotonic()
                await self._round(sem)
                if report is not None and time.monotonic() >= next_report:
                    online = sum(c.connected for c in self.chips)
                    done = self.stats.published - last_published
                    last_published = self.stats.published
                    report(
                        f"online {online}/{len(self.chips)}  published {self.stats.published}"
                        f"  ({done / 5:.0f}/s)  commands {self.stats.commands}"
                    )
                    next_report += 5
                elapsed = time.monotonic() - round_start
                await asyncio.sleep(max(0.0, self.tick_s - elapsed))
        finally:
            await self.close()
        return self.stats

    async def _round(self, sem: asyncio.Semaphore) -> None:
        mono = time.monotonic()
        for i, chip in enumerate(self.chips):
            now = self.clock()
            core = chip.core
            if not chip.linking:
                wanted = core.link_wanted(now)
                if (
                    wanted
                    and not chip.connected
                    and chip.client is None
                    and mono >= chip.next_attempt
                ):
                    self._spawn(chip.connect(self.addr, sem))
                elif wanted and not chip.connected and chip.client is not None:
                    pass  # gmqtt is reconnecting on its own
                elif not wanted and chip.client is not None:
                    client = chip.client
                    chip.client = None
                    self._spawn(self._drop(chip, client))
            if self.stress:
                if chip.inflight() > MAX_INFLIGHT_PER_CHIP:
                    continue  # back-pressure: let the broker catch up
                core.next_hb_ms = 0
            if chip.self_unlock and chip.connected:
                self._self_unlock(chip, now)
            chip.publish(core.tick(now))
            if i % 100 == 99:
                # Let the sockets breathe between slices of the fleet.
                await asyncio.sleep(0)

    async def _drop(self, chip: FleetChip, client: Any) -> None:
        chip.linking = True
        try:
            async with asyncio.timeout(5):
                await client.disconnect()
        except Exception:
            log.debug("chip %s: disconnect failed", chip.spec.device_id, exc_info=True)
        finally:
            chip.connected = False
            chip.core.on_disconnect()
            chip.linking = False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(
            *(c.disconnect() for c in self.chips if c.client), return_exceptions=True
        )


def run_fleet(
    fleet: Fleet, seconds: float | None, report: Callable[[str], None] | None
) -> FleetStats:
    return asyncio.run(fleet.run(seconds, report))
