"""Ingest benchmark: raw broker pass-through against the full pipeline, same run,
same publishers (docs/architecture.md "Ingest", issue "Chips talk to the platform").

    .venv/bin/python bench/ingest.py [--messages 300000] [--publishers 2] [--rate 50000]

Starts its own Mosquitto on a free port with its own configuration (written to a
temporary directory; the settings are those docs/architecture.md recommends), so
the figures do not depend on /etc/mosquitto; ``--broker mqtt://host:port`` uses an
existing broker instead. Needs PostgreSQL next to WELDGUARD_BENCH_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/test): a private database is
created there and dropped at the end.

Phases, each at QoS 0 and then QoS 1, each with fresh device ids (10,000):
  raw       a plain gmqtt subscriber counting messages (the ceiling);
  pipeline  IngestWorker: decode, validate, dedupe, live state, COPY into
            PostgreSQL, commit; at QoS 1 every PUBACK waits for the commit.
Publishers are separate processes writing pre-built MQTT 3.1.1 PUBLISH packets to
a socket, paced at the offered rate (QoS 1: a window of unacknowledged packets),
so that on two cores they take as little CPU as possible from the broker, the
worker and PostgreSQL. The clock runs from the first message received to the
last one counted (raw) or committed (pipeline); rows are counted in PostgreSQL
afterwards. CPU seconds of each party are read from /proc over each phase.

Then: live-state memory per device (tracemalloc over 100,000 devices) and the
offline detection delay for 100,000 devices with 30 s heartbeats (± 10 % jitter,
as docs/protocol.md § 6.3 allows), on a simulated clock checked every 250 ms
like the worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import logging
import multiprocessing as mp
import random
import time
import tracemalloc
import uuid
from typing import Any

import orjson
from _common import (
    _cpu_s,
    _machine_busy_s,
    _postgres_pids,
    _private_database,
    own_mosquitto,
)
from gmqtt import Client
from sqlalchemy import make_url, text

from weldguard.db import make_engine
from weldguard.device.ingest import IngestWorker
from weldguard.device.live_state import LiveStates
from weldguard.device.mqtt_url import parse_mqtt_url
from weldguard.migrate import upgrade

DEVICES = 10_000
T0 = int(time.time() * 1000)


# ---------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU seconds per party over a phase: this process (subscriber or worker),
    the broker, the publishers (reported by themselves) and every PostgreSQL process."""

    def __init__(self, broker_pid: int | None, database: str | None = None) -> None:
        self.broker_pid = broker_pid
        self.database = database
        self.started = time.monotonic()
        self.me = time.process_time()
        self.broker = _cpu_s(broker_pid) if broker_pid else 0.0
        self.pg = {pid: _cpu_s(pid) for pid in _postgres_pids(database)}
        self.machine = _machine_busy_s()

    def stop(self, publishers_cpu: float) -> dict[str, float]:
        wall = time.monotonic() - self.started
        pg = sum(_cpu_s(pid) - self.pg.get(pid, 0.0) for pid in _postgres_pids(self.database))
        out = {
            "wall": wall,
            "worker": time.process_time() - self.me,
            "broker": (_cpu_s(self.broker_pid) - self.broker) if self.broker_pid else 0.0,
            "publishers": publishers_cpu,
            "postgres": pg,
        }
        # Whatever else ran meanwhile (other jobs on a shared machine): figures
        # taken while this is large are not the machine's capacity.
        ours = sum(v for k, v in out.items() if k != "wall")
        out["others"] = max(0.0, _machine_busy_s() - self.machine - ours)
        return out


def _cpu_line(cpu: dict[str, float]) -> str:
    wall = max(cpu["wall"], 1e-9)
    parts = [
        f"{k} {cpu[k] / wall * 100:.0f}%"
        for k in ("worker", "broker", "publishers", "postgres", "others")
    ]
    return f"CPU (% of one core over {wall:.1f} s, 2 cores = 200%): " + ", ".join(parts)


# ---------------------------------------------------------------- publishers


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _publish_packet(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (mid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + _varlen(len(body)) + body


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    # MQTT 3.1.1, clean session, keepalive 0 (the bench never idles long).
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(cid).to_bytes(2, "big") + cid
    return b"\x10" + _varlen(len(body)) + body


def _messages(prefix: str, index: int, publishers: int, per_device: int) -> list[tuple[str, bytes]]:
    """This publisher's share: its devices, each with seq 1..per_device in order;
    heartbeats and arc telemetry as a chip sends them."""
    rnd = random.Random(index)
    devices = [f"{prefix}{n:05d}" for n in range(index, DEVICES, publishers)]
    out = []
    now = int(time.time() * 1000)
    for seq in range(1, per_device + 1):
        for dev in devices:
            ts = now - (per_device - seq) * 1000
            if seq % 3:
                kind = "tel"
                body: dict[str, Any] = {
                    "v": 1,
                    "seq": seq,
                    "ts": ts,
                    "arc": True,
                    "sess": "S-20261122-0001",
                    "start_ts": ts - 8000,
                    "dur_ms": 8000,
                    "i_avg_da": rnd.randint(900, 1800),
                    "i_max_da": rnd.randint(1800, 2200),
                    "u_avg_dv": rnd.randint(200, 280),
                    "e_j": rnd.randint(100_000, 300_000),
                }
            else:
                kind = "hb"
                body = {
                    "v": 1,
                    "seq": seq,
                    "ts": ts,
                    "interval_s": 30,
                    "lock": "unlocked",
                    "sess": "S-20261122-0001",
                    "rssi": rnd.randint(-100, -60),
                    "gps": {
                        "lat": 31_200_000 + rnd.randint(-50_000, 50_000),
                        "lon": 121_400_000 + rnd.randint(-50_000, 50_000),
                        "acc_m": 8,
                        "fix_ts": ts - 2000,
                    },
                    "vin": 12_300,
                }
            out.append((f"wg/v1/{dev}/up/{kind}", orjson.dumps(body)))
    return out


def _publisher(
    index: int,
    publishers: int,
    prefix: str,
    per_device: int,
    qos: int,
    rate: int,
    broker: tuple[str, int],
    go: Any,
    ready: Any,
    cpu: Any,
) -> None:
    spent = asyncio.run(
        _publish(index, publishers, prefix, per_device, qos, rate, broker, go, ready)
    )
    cpu.put(spent)


async def _publish(
    index: int,
    publishers: int,
    prefix: str,
    per_device: int,
    qos: int,
    rate: int,
    broker: tuple[str, int],
    go: Any,
    ready: Any,
) -> float:
    """Returns the CPU seconds spent from the start signal on."""
    items = _messages(prefix, index, publishers, per_device)
    # Packet ids cycle through 1..65535; the window keeps far fewer in flight.
    packets = [
        _publish_packet(topic, payload, qos, i % 65535 + 1)
        for i, (topic, payload) in enumerate(items)
    ]
    reader, writer = await asyncio.open_connection(*broker)
    writer.write(_connect_packet(f"bench-pub-{prefix}-{index}"))
    connack = await reader.readexactly(4)
    if connack[3] != 0:
        raise RuntimeError(f"CONNACK refused: {connack!r}")
    acked = 0
    acks_done = asyncio.Event()
    room = asyncio.Event()  # the QoS 1 window has room again

    async def count_acks() -> None:
        nonlocal acked
        buf = b""
        while acked < len(packets):
            data = await reader.read(65536)
            if not data:
                return
            buf += data
            # PUBACKs are four bytes each (0x40 0x02 id id); nothing else comes.
            whole = len(buf) // 4 * 4
            acked += whole // 4
            buf = buf[whole:]
            room.set()
        acks_done.set()

    ready.release()
    while not go.is_set():
        await asyncio.sleep(0.01)
    cpu_start = time.process_time()
    acker = asyncio.create_task(count_acks()) if qos else None
    # Paced in 10 ms slices: a flood beyond what any subscriber drains only
    # measures the broker's queue, and the publishers must leave CPU to the rest.
    slice_n = max(1, rate // 100)
    window = 2000
    started = time.perf_counter()
    sent = 0
    while sent < len(packets):
        n = slice_n
        if qos:
            n = min(n, window - (sent - acked))
            if n <= 0:
                room.clear()
                await room.wait()
                continue
        writer.write(b"".join(packets[sent : sent + n]))
        sent += n
        await writer.drain()
        ahead = started + sent / rate - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
    if acker is not None:
        await asyncio.wait_for(acks_done.wait(), 120)
    else:
        await asyncio.sleep(0.5)  # let the socket drain before closing
    writer.write(b"\xe0\x00")  # DISCONNECT
    await writer.drain()
    writer.close()
    return time.process_time() - cpu_start


class Publishers:
    def __init__(
        self,
        count: int,
        prefix: str,
        per_device: int,
        qos: int,
        rate: int,
        broker: tuple[str, int],
    ) -> None:
        ctx = mp.get_context("fork")
        self.go = ctx.Event()
        self.ready = ctx.Semaphore(0)
        self.cpu_q = ctx.Queue()
        self.procs = [
            ctx.Process(
                target=_publisher,
                args=(
                    i,
                    count,
                    prefix,
                    per_device,
                    qos,
                    rate // count,
                    broker,
                    self.go,
                    self.ready,
                    self.cpu_q,
                ),
                daemon=True,
            )
            for i in range(count)
        ]
        self.sent = DEVICES * per_device
        self.cpu = 0.0

    async def start(self) -> None:
        for p in self.procs:
            p.start()
        for _ in self.procs:
            await asyncio.to_thread(self.ready.acquire, True, 60)
        self.go.set()

    async def join(self) -> None:
        for p in self.procs:
            await asyncio.to_thread(p.join, 150)
        self.cpu = sum(self.cpu_q.get(timeout=5) for _ in self.procs)


# ---------------------------------------------------------------- phases


async def raw_phase(
    broker: tuple[str, int],
    broker_pid: int | None,
    qos: int,
    per_device: int,
    publishers: int,
    rate: int,
) -> dict[str, Any]:
    prefix = f"R{qos}{uuid.uuid4().hex[:4]}"
    count = 0
    first = last = 0.0

    def on_message(client: Any, topic: str, payload: bytes, qos_: int, props: Any) -> int:
        nonlocal count, first, last
        if not count:
            first = time.perf_counter()
        count += 1
        last = time.perf_counter()
        return 0

    sub = Client(f"bench-raw-{prefix}")
    sub.on_message = on_message
    await sub.connect(*broker)
    sub.subscribe("wg/v1/+/up/+", qos=qos)
    await asyncio.sleep(0.3)
    pubs = Publishers(publishers, prefix, per_device, qos, rate, broker)
    await pubs.start()
    meter = CpuMeter(broker_pid)
    deadline = time.monotonic() + 90
    while count < pubs.sent and time.monotonic() < deadline:
        idle_since = last
        await asyncio.sleep(1.0)
        if count and last == idle_since and count < pubs.sent:
            break  # nothing for a second: the rest is lost
    await pubs.join()
    cpu = meter.stop(pubs.cpu)
    await sub.disconnect()
    elapsed = max(last - first, 1e-9)
    return {
        "sent": pubs.sent,
        "received": count,
        "seconds": elapsed,
        "rate": count / elapsed,
        "cpu": cpu,
    }


async def pipeline_phase(
    broker: tuple[str, int],
    broker_pid: int | None,
    db_url: str,
    qos: int,
    per_device: int,
    publishers: int,
    batch_size: int,
    rate: int,
    state_flush_ms: int,
) -> dict[str, Any]:
    prefix = f"P{qos}{uuid.uuid4().hex[:4]}"
    worker = IngestWorker(
        database=db_url,
        host=broker[0],
        port=broker[1],
        client_id=f"bench-ingest-{prefix}",
        batch_size=batch_size,
        state_flush_ms=state_flush_ms,
        mqtt_version=5,
    )
    first = 0.0
    original = worker._accept

    def first_message(*args: Any) -> None:
        # Times the first message, then steps aside (no cost per message).
        nonlocal first
        first = time.perf_counter()
        del worker._accept
        original(*args)

    worker._accept = first_message  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    await worker.wait_ready(10)
    # The worker subscribes at QoS 1; at QoS 0 the publishers' QoS decides.
    pubs = Publishers(publishers, prefix, per_device, qos, rate, broker)
    await pubs.start()
    meter = CpuMeter(broker_pid, make_url(db_url).database)
    deadline = time.monotonic() + 120
    last_stored, last_change = 0, time.monotonic()
    done_at = 0.0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if worker.stored != last_stored:
            last_stored, last_change = worker.stored, time.monotonic()
            done_at = time.perf_counter()
        if worker.stored >= pubs.sent:
            break
        if worker.stored and time.monotonic() - last_change > 3:
            break  # stalled: the rest is lost
    stats = worker.stats()
    await pubs.join()
    cpu = meter.stop(pubs.cpu)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(*) FROM device_message WHERE device_id LIKE :p"),
            {"p": prefix + "%"},
        ).scalar_one()
    engine.dispose()
    elapsed = max(done_at - first, 1e-9)
    return {
        "sent": pubs.sent,
        "stored": stats["stored"],
        "rows": rows,
        "seconds": elapsed,
        "rate": stats["stored"] / elapsed,
        "batches": stats["batches"],
        "avg_batch": stats["stored"] / max(stats["batches"], 1),
        "last_batch_ms": stats["last_batch_ms"],
        "bad": stats["bad"],
        "duplicates": stats["duplicates"],
        "cpu": cpu,
    }


# ---------------------------------------------------------------- live state


def _hb(seq: int, ts: int) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": seq,
        "ts": ts,
        "interval_s": 30,
        "lock": "locked",
        "sess": None,
        "rssi": -85,
        "gps": {"lat": 31_200_123, "lon": 121_400_456, "acc_m": 8, "fix_ts": ts - 1500},
        "vin": 12_310,
    }


def memory_per_device(n: int = 100_000) -> float:
    """Bytes of live state per device: the DeviceLive, its dict slot, its heap entry
    and dirty-set slot (the id strings exist anyway: they come with every topic)."""
    ids = [f"WG{n:08d}" for n in range(n)]
    messages = [_hb(1000 + i % 7, T0) for i in range(n)]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    live = LiveStates()
    for i, dev in enumerate(ids):
        live.apply(dev, "hb", messages[i], T0 + i)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return total / n


def offline_delay(
    n: int = 100_000,
    interval_s: int = 30,
    factor: float = 1.0,
    grace_ms: int | None = None,
    check_ms: int = 250,
) -> dict[str, float]:
    """Simulated clock: n chips heartbeat every interval ± 10 % (uniform, the
    protocol's promise) with random phase; 1,000 of them go silent at random
    moments; the loop checks the deadline heap every ``check_ms``. Delay =
    detection time - the chip's last heartbeat. A chip flagged offline while
    still heartbeating is a false offline."""
    rnd = random.Random(7)
    live = LiveStates(offline_factor=factor, offline_grace_ms=grace_ms)
    interval = interval_s * 1000
    jitter = interval // 10
    events = [(T0 + rnd.randrange(interval), i) for i in range(n)]
    heapq.heapify(events)
    dies = {i: T0 + 60_000 + rnd.randrange(120_000) for i in rnd.sample(range(n), 1000)}
    ids = [f"WG{i:08d}" for i in range(n)]
    seqs = [0] * n
    last_hb: dict[str, int] = {}
    detected: dict[str, int] = {}
    false_offline = 0
    end = T0 + 6 * 60_000
    clock = T0
    check_cost = 0.0
    started = time.perf_counter()
    while clock < end:
        clock += check_ms
        while events and events[0][0] <= clock:
            t, i = heapq.heappop(events)
            if t >= dies.get(i, end + 1):
                continue
            seqs[i] += 1
            live.apply(ids[i], "hb", _hb(seqs[i], t), t)
            last_hb[ids[i]] = t
            heapq.heappush(events, (t + interval + rnd.randint(-jitter, jitter), i))
        c0 = time.perf_counter()
        for dev in live.due_offline(clock):
            if dev in detected or int(dev[2:]) not in dies:
                false_offline += 1
            detected.setdefault(dev, clock)
        check_cost = max(check_cost, time.perf_counter() - c0)
    wall = time.perf_counter() - started
    dead = [ids[i] for i in dies]
    delays = sorted((detected[d] - last_hb[d]) / 1000 for d in dead if d in detected)
    return {
        "detected": len(delays),
        "of": len(dead),
        "false_offline": false_offline,
        "p50_s": delays[len(delays) // 2],
        "max_s": delays[-1],
        "slowest_check_ms": check_cost * 1000,
        "wall_s": wall,
        "deadline_s": live.offline_after_ms(interval_s) / 1000,
    }


# ---------------------------------------------------------------- main


async def run_phases(
    args: argparse.Namespace, url: str, broker: tuple[str, int], broker_pid: int | None
) -> None:
    per_device = {0: args.messages // DEVICES, 1: args.messages_qos1 // DEVICES}
    for qos in args.qos:
        n = DEVICES * per_device[qos]
        rate = args.rate if qos == 0 else args.rate_qos1
        print(
            f"\n== QoS {qos}: {n:,} messages, {DEVICES:,} devices, {args.publishers} publishers, "
            f"offered {rate:,} msg/s"
        )
        raw = await raw_phase(broker, broker_pid, qos, per_device[qos], args.publishers, rate)
        print(
            f"raw pass-through   {raw['rate']:>9,.0f} msg/s  "
            f"({raw['received']:,}/{raw['sent']:,} in {raw['seconds']:.2f} s)"
        )
        print("  " + _cpu_line(raw["cpu"]))
        pipe = await pipeline_phase(
            broker,
            broker_pid,
            url,
            qos,
            per_device[qos],
            args.publishers,
            args.batch_size,
            rate,
            args.state_flush_ms,
        )
        lost = pipe["sent"] - pipe["rows"]
        print(
            f"ingest pipeline    {pipe['rate']:>9,.0f} msg/s  "
            f"({pipe['stored']:,} committed in {pipe['seconds']:.2f} s; "
            f"{pipe['batches']} batches, avg {pipe['avg_batch']:.0f} rows, "
            f"last {pipe['last_batch_ms']:.0f} ms)"
        )
        print("  " + _cpu_line(pipe["cpu"]))
        # CPU per message holds up better than rates when other jobs share the machine.
        per = 1e6 / max(pipe["stored"], 1)
        print(
            f"  CPU per message: worker {pipe['cpu']['worker'] * per:.1f} µs "
            f"(raw subscriber {raw['cpu']['worker'] * 1e6 / max(raw['received'], 1):.1f} µs), "
            f"PostgreSQL {pipe['cpu']['postgres'] * per:.1f} µs, "
            f"broker {pipe['cpu']['broker'] * per:.1f} µs"
        )
        target = 40_000 if qos == 0 else 20_000
        ratio = pipe["rate"] / raw["rate"] if raw["rate"] else 0.0
        print(
            f"ratio pipeline/raw {ratio:>9.2f}      target ≥ {target:,}/s"
            + (" and ≥ 0.80 of raw" if qos == 0 else "")
        )
        print(
            f"rows in PostgreSQL {pipe['rows']:>9,}      lost {lost:,}; "
            f"bad {pipe['bad'] or 0}; duplicates {pipe['duplicates']}"
        )


def live_state_figures() -> None:
    print("\n== live state")
    print(f"memory per device  {memory_per_device():>9.0f} bytes (tracemalloc, 100,000 devices)")
    for label, factor, grace in (("before: 2.5 x interval", 2.5, 0), ("protocol rule", 1.0, None)):
        r = offline_delay(factor=factor, grace_ms=grace)
        print(
            f"offline delay, {label} (deadline {r['deadline_s']:.0f} s after the last message): "
            f"p50 {r['p50_s']:.1f} s, max {r['max_s']:.1f} s; "
            f"{r['detected']}/{r['of']} detected, {r['false_offline']} false offline; "
            f"slowest check {r['slowest_check_ms']:.1f} ms"
        )


async def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    if args.qos:
        url, drop = _private_database()
        try:
            upgrade(url)
            if args.broker:
                address = parse_mqtt_url(args.broker)
                host, port = address.host, address.port
                await run_phases(args, url, (host, port), None)
            else:
                with own_mosquitto() as (host, port, pid):
                    print(f"own mosquitto on {host}:{port} (pid {pid})")
                    await run_phases(args, url, (host, port), pid)
        finally:
            drop()
    if not args.skip_live:
        live_state_figures()
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300_000, help="QoS 0 messages")
    parser.add_argument("--messages-qos1", type=int, default=200_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=50_000, help="offered msg/s at QoS 0")
    parser.add_argument("--rate-qos1", type=int, default=25_000, help="offered msg/s at QoS 1")
    parser.add_argument("--state-flush-ms", type=int, default=1000)
    parser.add_argument("--qos", type=int, nargs="*", default=[0, 1], choices=[0, 1])
    parser.add_argument("--broker", help="mqtt://host:port of an existing broker (default: own)")
    parser.add_argument("--skip-live", action="store_true", help="no live-state figures")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
