"""Ingest benchmark: raw broker pass-through against the full pipeline, same run,
same publishers (docs/architecture.md, issue "Chips talk to the platform").

    .venv/bin/python bench/ingest.py [--messages 200000] [--publishers 3]

Needs Mosquitto at WELDGUARD_BENCH_MQTT_URL (default mqtt://127.0.0.1:1883) and
PostgreSQL next to WELDGUARD_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test): a private database is created there
and dropped at the end.

Phases, each at QoS 0 and then QoS 1, each with fresh device ids (~10,000):
  raw       a plain gmqtt subscriber counting messages (the ceiling);
  pipeline  IngestWorker: decode, validate, dedupe, COPY into PostgreSQL, commit;
            at QoS 1 every PUBACK waits for the commit.
Publishers are separate processes publishing with gmqtt, as fast as they can.
The clock runs from the first message received to the last one counted (raw) or
committed (pipeline). Then: live-state memory per device (tracemalloc over
100,000 devices) and offline detection delay for 100,000 devices with 30 s
heartbeats, on a simulated clock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import logging
import multiprocessing as mp
import os
import random
import time
import tracemalloc
import uuid
from typing import Any

import orjson
from gmqtt import Client
from sqlalchemy import make_url, text

from weldguard.db import make_engine
from weldguard.device.ingest import IngestWorker, parse_mqtt_url
from weldguard.device.live_state import LiveStates
from weldguard.migrate import upgrade

MQTT_URL = os.environ.get("WELDGUARD_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
DB_URL = os.environ.get("WELDGUARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DEVICES = 10_000
T0 = int(time.time() * 1000)


# ---------------------------------------------------------------- publishers


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
    go: Any,
    ready: Any,
) -> None:
    asyncio.run(_publish(index, publishers, prefix, per_device, qos, rate, go, ready))


async def _publish(
    index: int,
    publishers: int,
    prefix: str,
    per_device: int,
    qos: int,
    rate: int,
    go: Any,
    ready: Any,
) -> None:
    host, port, user, password = parse_mqtt_url(MQTT_URL)
    items = _messages(prefix, index, publishers, per_device)
    client = Client(f"bench-pub-{prefix}-{index}")
    if user:
        client.set_auth_credentials(user, password)
    await client.connect(host, port)
    ready.release()
    while not go.is_set():
        await asyncio.sleep(0.01)
    storage = client._persistent_storage
    # The broker's Receive Maximum (Mosquitto: max_inflight_messages, 20) caps the
    # QoS 1 messages in flight; gmqtt has that many packet ids.
    window = client._package_handler.id_generator._max - 2
    # Paced: on two cores, unpaced publishers would take the CPU the subscriber
    # needs, and a flood beyond what any subscriber drains only measures the
    # broker's queue limits (Mosquitto drops past max_queued_messages).
    chunk = max(1, rate // 100)
    started = time.perf_counter()
    for i, (topic, payload) in enumerate(items):
        if qos:
            while len(storage._messages) >= window:
                await asyncio.sleep(0)
        client.publish(topic, payload, qos=qos)
        if i % chunk == chunk - 1:
            ahead = started + (i + 1) / rate - time.perf_counter()
            await asyncio.sleep(max(ahead, 0))
    if qos:
        await asyncio.wait_for(storage.wait_empty(), 120)
    else:
        await asyncio.sleep(0.5)  # let the socket drain before closing
    await client.disconnect()


class Publishers:
    def __init__(self, count: int, prefix: str, per_device: int, qos: int, rate: int) -> None:
        ctx = mp.get_context("fork")
        self.go = ctx.Event()
        self.ready = ctx.Semaphore(0)
        self.procs = [
            ctx.Process(
                target=_publisher,
                args=(i, count, prefix, per_device, qos, rate // count, self.go, self.ready),
                daemon=True,
            )
            for i in range(count)
        ]
        self.sent = DEVICES * per_device

    async def start(self) -> None:
        for p in self.procs:
            p.start()
        for _ in self.procs:
            await asyncio.to_thread(self.ready.acquire, True, 60)
        self.go.set()

    async def join(self) -> None:
        for p in self.procs:
            await asyncio.to_thread(p.join, 150)


# ---------------------------------------------------------------- phases


async def raw_phase(qos: int, per_device: int, publishers: int, rate: int) -> dict[str, float]:
    host, port, user, password = parse_mqtt_url(MQTT_URL)
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
    if user:
        sub.set_auth_credentials(user, password)
    await sub.connect(host, port)
    sub.subscribe("wg/v1/+/up/+", qos=qos)
    await asyncio.sleep(0.3)
    pubs = Publishers(publishers, prefix, per_device, qos, rate)
    await pubs.start()
    deadline = time.monotonic() + 90
    while count < pubs.sent and time.monotonic() < deadline:
        idle_since = last
        await asyncio.sleep(1.0)
        if count and last == idle_since and count < pubs.sent:
            break  # nothing for a second: the rest is lost
    await pubs.join()
    await sub.disconnect()
    elapsed = max(last - first, 1e-9)
    return {"sent": pubs.sent, "received": count, "seconds": elapsed, "rate": count / elapsed}


async def pipeline_phase(
    db_url: str, qos: int, per_device: int, publishers: int, batch_size: int, rate: int
) -> dict[str, Any]:
    host, port, user, password = parse_mqtt_url(MQTT_URL)
    prefix = f"P{qos}{uuid.uuid4().hex[:4]}"
    worker = IngestWorker(
        database=db_url,
        host=host,
        port=port,
        username=user,
        password=password,
        client_id=f"bench-ingest-{prefix}",
        batch_size=batch_size,
        mqtt_version=5,
    )
    first = 0.0
    original = worker._on_message

    async def timed(client: Any, topic: str, payload: bytes, qos_: int, props: Any) -> int:
        nonlocal first
        if not first:
            first = time.perf_counter()
        return await original(client, topic, payload, qos_, props)

    worker._on_message = timed  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    await worker.wait_ready(10)
    # The worker subscribes at QoS 1; at QoS 0 the publishers' QoS decides.
    pubs = Publishers(publishers, prefix, per_device, qos, rate)
    await pubs.start()
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
    ids = [f"WG{n:08d}" for n in range(n)]  # the ids exist anyway (topics)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    live = LiveStates()
    for i, dev in enumerate(ids):
        live.apply(dev, "hb", _hb(1000 + i % 7, T0), T0 + i)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return total / n


def offline_delay(
    n: int = 100_000, interval_s: int = 30, factor: float = 2.5, grace_ms: int = 0
) -> dict[str, float]:
    """Simulated clock: n chips heartbeat every interval (random phase, ±1 s jitter),
    1,000 of them go silent at random moments; the worker's loop checks the
    deadline heap every second. Delay = detection time - the chip's last
    heartbeat, and detection time - its deadline."""
    rnd = random.Random(7)
    live = LiveStates(offline_factor=factor, offline_grace_ms=grace_ms)
    interval = interval_s * 1000
    events = [(T0 + rnd.randrange(interval), i) for i in range(n)]
    heapq.heapify(events)
    dies = {i: T0 + 60_000 + rnd.randrange(120_000) for i in rnd.sample(range(n), 1000)}
    ids = [f"WG{i:08d}" for i in range(n)]
    seqs = [0] * n
    last_hb: dict[str, int] = {}
    detected: dict[str, int] = {}
    end = T0 + 6 * 60_000
    clock = T0
    check_cost = 0.0
    started = time.perf_counter()
    while clock < end:
        clock += 1000
        while events and events[0][0] <= clock:
            t, i = heapq.heappop(events)
            if t >= dies.get(i, end + 1):
                continue
            seqs[i] += 1
            live.apply(ids[i], "hb", _hb(seqs[i], t), t)
            last_hb[ids[i]] = t
            heapq.heappush(events, (t + interval + rnd.randint(-1000, 1000), i))
        c0 = time.perf_counter()
        for dev in live.due_offline(clock):
            detected[dev] = clock
        check_cost = max(check_cost, time.perf_counter() - c0)
    wall = time.perf_counter() - started
    dead = [ids[i] for i in dies]
    delays = sorted((detected[d] - last_hb[d]) / 1000 for d in dead if d in detected)
    deadline_gap = sorted(
        (detected[d] - (last_hb[d] + int(interval * factor) + grace_ms)) / 1000
        for d in dead
        if d in detected
    )
    false_alarms = len(set(detected) - set(dead))
    return {
        "detected": len(delays),
        "of": len(dead),
        "false_offline": false_alarms,
        "p50_s": delays[len(delays) // 2],
        "max_s": delays[-1],
        "past_deadline_max_s": deadline_gap[-1],
        "slowest_check_ms": check_cost * 1000,
        "wall_s": wall,
    }


# ---------------------------------------------------------------- main


def _private_database() -> tuple[str, Any]:
    base = make_url(DB_URL)
    name = f"weldguard_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


async def main(args: argparse.Namespace) -> None:
    url, drop = _private_database()
    started = time.monotonic()
    try:
        upgrade(url)
        per_device = {0: args.messages // DEVICES, 1: args.messages_qos1 // DEVICES}
        for qos in (0, 1):
            n = DEVICES * per_device[qos]
            print(
                f"\n== QoS {qos}: {n:,} messages, {DEVICES:,} devices, {args.publishers} publishers"
            )
            rate = args.rate if qos == 0 else args.rate_qos1
            print(f"offered load {rate:,} msg/s")
            raw = await raw_phase(qos, per_device[qos], args.publishers, rate)
            print(
                f"raw pass-through   {raw['rate']:>9,.0f} msg/s  "
                f"({raw['received']:,}/{raw['sent']:,} in {raw['seconds']:.2f} s)"
            )
            pipe = await pipeline_phase(
                url, qos, per_device[qos], args.publishers, args.batch_size, rate
            )
            lost = pipe["sent"] - pipe["rows"]
            print(
                f"ingest pipeline    {pipe['rate']:>9,.0f} msg/s  "
                f"({pipe['stored']:,} committed in {pipe['seconds']:.2f} s; "
                f"{pipe['batches']} batches, avg {pipe['avg_batch']:.0f} rows, "
                f"last {pipe['last_batch_ms']:.0f} ms)"
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
        print("\n== live state")
        print(
            f"memory per device  {memory_per_device():>9.0f} bytes (tracemalloc, 100,000 devices)"
        )
        for factor, grace in ((2.5, 0), (1.0, 5000)):
            r = offline_delay(factor=factor, grace_ms=grace)
            print(
                f"offline delay, deadline = last + {factor} x 30 s + {grace // 1000} s: "
                f"p50 {r['p50_s']:.1f} s, max {r['max_s']:.1f} s after the last heartbeat "
                f"(≤ {r['past_deadline_max_s']:.1f} s past the deadline); "
                f"{r['detected']}/{r['of']} detected, {r['false_offline']} false; "
                f"slowest 1 s check {r['slowest_check_ms']:.1f} ms"
            )
    finally:
        drop()
        print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300_000, help="QoS 0 messages")
    parser.add_argument("--messages-qos1", type=int, default=200_000)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=50_000, help="offered msg/s at QoS 0")
    parser.add_argument("--rate-qos1", type=int, default=25_000, help="offered msg/s at QoS 1")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
