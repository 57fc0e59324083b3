"""The ingest worker against a real broker and a real database: the embedded amqtt
broker always, Mosquitto too when WELDGUARD_TEST_MQTT_URL is set; SQLite always,
PostgreSQL when WELDGUARD_TEST_DATABASE_URL is set (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from gmqtt import Client as MQTTClient
from gmqtt.mqtt.constants import MQTTv311
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from tests.device.cancellation import cancel_after_turns
from tests.factories import NOW, World
from weldguard.device.gmqtt_compat import disable_own_reconnect, disconnect
from weldguard.device.ingest import IngestWorker, topic_filter
from weldguard.device.ingest_repository import IngestRepository, arc_threshold_da
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.models import DeviceMessage, DeviceState
from weldguard.device.mqtt_url import MqttAddress, parse_mqtt_url
from weldguard.machine.models import ChipBinding, Machine
from weldguard.machine.service import MachineService

MQTT_URL = os.environ.get("WELDGUARD_TEST_MQTT_URL")
BROKERS = ["embedded"] + (["mosquitto"] if MQTT_URL else [])
# amqtt keeps no session (and queues nothing) for anonymous clients, so the
# embedded broker runs with a user name required but not checked.
BROKER_USER = "ingest-test"
MOSQUITTO_PORT = parse_mqtt_url(MQTT_URL).port if MQTT_URL else -1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def broker(kind: str) -> AsyncIterator[tuple[str, int]]:
    if kind == "mosquitto":
        assert MQTT_URL
        address = parse_mqtt_url(MQTT_URL)
        host, port = address.host, address.port
        yield host, port
        return
    from amqtt.broker import Broker

    port = _free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}},
    }
    embedded = Broker(config)
    await embedded.start()
    try:
        yield "127.0.0.1", port
    finally:
        await embedded.shutdown()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hb(seq: int, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "ts": now_ms(),
        "interval_s": 30,
        "lock": "locked",
        "sess": None,
        "rssi": -71,
        "gps": {"lat": 31219000, "lon": 121420000, "acc_m": 8, "fix_ts": now_ms()},
        "vin": 12400,
    }
    message.update(extra)
    return message


def tel(seq: int, **extra: Any) -> dict[str, Any]:
    t = now_ms()
    message: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "ts": t,
        "arc": True,
        "sess": "S-1",
        "start_ts": t - 5000,
        "dur_ms": 5000,
        "i_avg_da": 1500,
        "i_max_da": 1800,
        "u_avg_dv": 240,
        "e_j": 180000,
    }
    message.update(extra)
    return message


Publication = tuple[str, bytes]


def up(device_id: str, kind: str, message: dict[str, Any] | bytes) -> Publication:
    payload = message if isinstance(message, bytes) else orjson.dumps(message)
    return f"wg/v1/{device_id}/up/{kind}", payload


def publish(host: str, port: int, items: list[Publication], qos: int = 1) -> None:
    """Publishes in order with paho (QoS 1) and waits for every PUBACK."""
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}"
    )
    client.username_pw_set(BROKER_USER)
    client.max_inflight_messages_set(1)  # keeps the order the test wrote
    client.connect(host, port)
    client.loop_start()
    try:
        for topic, payload in items:
            client.publish(topic, payload, qos=qos).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# A cancelled worker ends within its bounded shutdown (milliseconds normally).
STOP_S = 5.0


@contextlib.asynccontextmanager
async def running(worker: IngestWorker) -> AsyncIterator[IngestWorker]:
    task = asyncio.create_task(worker.run())
    try:
        await worker.wait_ready(10)
        yield worker
    finally:
        task.cancel()
        # asyncio.wait, not `await task` under suppress(CancelledError): that also
        # swallowed the cancellation of this task (run()'s 14 s timeout), and the
        # scenario went on with the worker still running.
        done, _ = await asyncio.wait({task}, timeout=STOP_S)
        assert done, f"the worker did not stop within {STOP_S} s of its cancellation"
    assert task.cancelled() or task.exception() is None


def make_worker(engine: Engine, host: str, port: int, **kwargs: Any) -> IngestWorker:
    params: dict[str, Any] = {
        "database": engine,
        "host": host,
        "port": port,
        "username": BROKER_USER,
        "client_id": f"test-ingest-{uuid.uuid4().hex[:10]}",
        "batch_ms": 30,
        # amqtt speaks MQTT 3.1.1 only; Mosquitto gets MQTT 5.
        "mqtt_version": 5 if port == MOSQUITTO_PORT else 4,
    }
    params.update(kwargs)
    return IngestWorker(**params)


def stored(factory: sessionmaker[Session], device_id: str) -> list[int]:
    with factory() as s:
        return list(
            s.scalars(
                select(DeviceMessage.seq)
                .where(DeviceMessage.device_id == device_id)
                .order_by(DeviceMessage.seq)
            )
        )


def run(coro: Callable[[], Awaitable[None]]) -> None:
    # A loop of its own on a thread of its own: the test must not depend on
    # whether an earlier test left an event loop running on the main thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, asyncio.wait_for(coro(), 14)).result()


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_valid_unique_messages_are_stored_and_bad_ones_counted(
    broker_kind: str, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    dev = f"T{uuid.uuid4().hex[:12]}"
    other = f"U{uuid.uuid4().hex[:12]}"
    items = [
        up(dev, "hb", hb(1)),
        up(dev, "tel", tel(2)),
        up(dev, "tel", tel(2)),  # duplicate (same seq, redelivered)
        up(dev, "hb", hb(5, lock="unlocked", sess="S-1")),
        up(dev, "hb", hb(3)),  # seq going backwards, not buffered: dropped
        up(dev, "tel", tel(4, buf=True)),  # late replay from the buffer: kept
        up(dev, "tel", tel(4, buf=True)),  # ... once
        up(dev, "hb", b"{not json"),
        up(dev, "hb", orjson.dumps({**hb(6), "rssi": "strong"})),  # wrong type
        up(dev, "hb", orjson.dumps({k: v for k, v in hb(7).items() if k != "vin"})),
        up(dev, "hb", orjson.dumps({**hb(8), "pad": "x" * 5000})),  # oversized
        up(dev, "hb", b"[1, 2]"),
        (f"wg/v1/{dev}/up/nonsense", orjson.dumps(hb(9))),
        (f"wg/v1/{dev}/down/cmd", orjson.dumps(hb(9))),  # not an up topic: ignored
        (f"wg/v2/{dev}/up/hb", orjson.dumps(hb(9))),
        up(dev, "evt", {"v": 1, "seq": 6, "ts": now_ms(), "type": "locked"}),
        up(other, "hb", hb(10)),
        up(other, "hb", hb(11, gps=None)),
    ]

    async def scenario() -> None:
        async with broker(broker_kind) as (host, port):
            worker = make_worker(engine, host, port)
            async with running(worker):
                await asyncio.to_thread(publish, host, port, items)
                # The down and v2 topics are outside the subscription.
                await until(lambda: worker.stats()["received"] >= len(items) - 2)
                await until(lambda: worker.stats()["pending"] == 0 and worker.stored >= 6)
                await asyncio.sleep(1.2)  # one state flush
                stats = worker.stats()
                # asyncio sets TCP_NODELAY on the transports it creates.
                assert worker.nodelay() is True
            assert worker.live.states[dev].online

        assert stored(session_factory, dev) == [1, 2, 4, 5, 6]
        assert stored(session_factory, other) == [10, 11]
        assert stats["duplicates"] == 2
        assert stats["seq_regressions"] == 1
        assert stats["late_buffered"] == 1
        assert stats["bad"] == {
            "bad_json": 1,
            "schema": 2,
            "too_large": 1,
            "not_object": 1,
            "topic": 1,
        }
        with session_factory() as s:
            state = s.get(DeviceState, dev)
            assert state is not None
            # The evt "locked" (seq 6) came after the hb that unlocked (seq 5).
            assert state.lock_state == "locked"
            assert state.last_seq == 6
            assert (state.lat_e6, state.lon_e6) == (31219000, 121420000)
            assert state.session_id == "S-1"
            assert state.online is True
            assert state.heartbeat_interval_s == 30
            other_state = s.get(DeviceState, other)
            assert other_state is not None and other_state.last_seq == 11
            # gps null keeps the last known position.
            assert other_state.lat_e6 == 31219000
            row = s.scalars(
                select(DeviceMessage).where(DeviceMessage.device_id == dev, DeviceMessage.seq == 5)
            ).one()
            assert row.payload["lock"] == "unlocked" and row.kind == "hb"
            assert row.buffered is False

    run(scenario)


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_crash_mid_stream_loses_nothing(
    broker_kind: str, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The worker is cancelled while messages stream in; a new one with the same
    client id (persistent session, QoS 1, ack after commit) picks up the rest.

    Mosquitto redelivers everything unacknowledged: nothing may be lost. amqtt
    0.12 drops an outgoing QoS 1 message whose PUBACK has not come when the
    connection closes (and after 5 s), so with the embedded broker the messages
    the first worker had not acknowledged can be lost, and only those: everything
    it acknowledged is stored, and the new worker gets what came afterwards.
    """
    dev = f"C{uuid.uuid4().hex[:12]}"
    total = 400
    items = [up(dev, "tel", tel(seq)) for seq in range(1, total + 1)]

    async def scenario() -> None:
        async with broker(broker_kind) as (host, port):
            client_id = f"test-crash-{uuid.uuid4().hex[:10]}"
            first = make_worker(engine, host, port, client_id=client_id, batch_size=50)
            async with running(first):
                publisher = asyncio.create_task(asyncio.to_thread(publish, host, port, items))
                await until(lambda: first.stored >= 60)
            # Crashed mid-stream: the publisher goes on while no worker is there.
            unacknowledged = first.accepted - first.stored
            # amqtt: the unacknowledged ones, plus the few it had written to the
            # socket that the worker never read (the publisher sends one at a time).
            may_lose = 0 if broker_kind == "mosquitto" else unacknowledged + 3
            await publisher
            second = make_worker(engine, host, port, client_id=client_id, batch_size=50)
            async with running(second):
                await until(lambda: len(stored(session_factory, dev)) >= total - may_lose)
                await until(lambda: second.stats()["pending"] == 0)
        seqs = stored(session_factory, dev)
        assert len(seqs) == len(set(seqs))
        assert total - may_lose <= len(seqs) <= total
        if broker_kind == "mosquitto":
            assert seqs == list(range(1, total + 1))

    run(scenario)


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_a_connection_the_broker_drops_is_reconnected_once(
    broker_kind: str, engine: Engine
) -> None:
    """gmqtt reconnects by itself after a dropped connection (reconnect_retries 0
    or not): that client took the session over from the worker's new connection a
    second later, whose drop started the next such reconnect, and the two took
    turns for ever (gmqtt_compat.disable_own_reconnect)."""

    async def scenario() -> None:
        async with broker(broker_kind) as (host, port):
            worker = make_worker(engine, host, port)
            async with running(worker):
                # Counted when connect() returns, which may be after the SUBACK.
                await until(lambda: worker.connects == 1)
                # A client with the worker's id: the broker drops the worker's
                # connection. It leaves at once, its own reconnect off.
                intruder = MQTTClient(worker.client_id, clean_session=False)
                disable_own_reconnect(intruder)
                intruder.set_auth_credentials(BROKER_USER)
                async with asyncio.timeout(5):
                    await intruder.connect(host, port, version=MQTTv311)
                await disconnect(intruder, 2)
                await until(lambda: worker.connects >= 2)
                # gmqtt's own reconnect came a second after the drop.
                await asyncio.sleep(3)
                assert worker.connects == 2

    run(scenario)


def test_a_writer_cancelled_as_its_batch_fills_stops(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The cancellation may come at any point of the wake-up chain a full batch
    starts. On Python 3.11 asyncio.wait_for returned normally when cancelled just
    as what it awaited completed (CPython gh-86296): the writer committed the batch
    and waited for more work for ever, and so did run() for the writer."""
    dev = f"B{uuid.uuid4().hex[:12]}"

    def row(seq: int) -> Any:
        t = now_ms()
        return (dev, "tel", seq, t, t, False, orjson.dumps(tel(seq)).decode())

    async def scenario() -> None:
        for turns in range(8):
            # Nothing connects: the writer alone, with a deadline far away.
            worker = make_worker(engine, "127.0.0.1", 1, batch_size=2, batch_ms=60_000)
            writer = asyncio.create_task(worker._writer())
            worker._enqueue(row(2 * turns + 1))
            for _ in range(3):
                await asyncio.sleep(0)  # the writer now waits for the batch to fill
            worker._enqueue(row(2 * turns + 2))  # it is full
            await cancel_after_turns(writer, turns, "the writer")
            # run()'s shutdown: a batch the writer had taken still commits.
            await worker._shutdown([])

    run(scenario)
    # Each batch was either committed whole or never taken.
    seqs = stored(session_factory, dev)
    assert len(seqs) % 2 == 0 and len(seqs) == len(set(seqs))


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_device_goes_offline_after_its_deadline_and_on_its_will(
    broker_kind: str, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    quiet = f"Q{uuid.uuid4().hex[:12]}"
    willed = f"W{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        async with broker(broker_kind) as (host, port):
            # 10 s heartbeats (the protocol's minimum) x 0.1: offline after 1 s.
            worker = make_worker(
                engine,
                host,
                port,
                offline_factor=0.1,
                offline_grace_ms=0,
                offline_check_ms=100,
                state_flush_ms=200,
            )
            async with running(worker):
                await asyncio.to_thread(
                    publish,
                    host,
                    port,
                    [up(quiet, "hb", hb(1, interval_s=10)), up(willed, "hb", hb(1))],
                )
                await until(lambda: quiet in worker.live.states)
                seen = time.monotonic()
                assert worker.live.states[quiet].online
                await until(lambda: not worker.live.states[quiet].online, timeout=5)
                delay = time.monotonic() - seen
                assert 0.5 < delay < 2.5
                assert worker.live.states[willed].online  # 30 s x 0.1 = 3 s
                will = {"v": 1, "type": "power_loss", "lwt": True}
                await asyncio.to_thread(publish, host, port, [up(willed, "evt", will)])
                await until(lambda: not worker.live.states[willed].online, timeout=3)
                await asyncio.sleep(0.5)
                assert worker.went_offline == 2
        with session_factory() as s:
            state = s.get(DeviceState, quiet)
            assert state is not None and state.online is False
            assert stored(session_factory, willed) == [0, 1]

    run(scenario)


def test_worker_survives_a_restart_with_redelivered_duplicates(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Messages committed by one worker and delivered again to the next one (a
    crash between commit and PUBACK) are stored once, and the restored live state
    does not mistake them for a regression."""
    dev = f"R{uuid.uuid4().hex[:12]}"

    async def scenario() -> None:
        async with broker("embedded") as (host, port):
            sent = [up(dev, "hb", hb(s)) for s in (1, 2)]
            first = make_worker(engine, host, port)
            async with running(first):
                await asyncio.to_thread(publish, host, port, sent)
                await until(lambda: first.stored >= 2)
                await asyncio.sleep(1.2)  # the state flush records last_seq 2
            second = make_worker(engine, host, port)
            async with running(second):
                assert second.live.states[dev].last_seq == 2
                # seq 2 again, byte for byte: not a regression, a duplicate.
                await asyncio.to_thread(publish, host, port, [sent[1], up(dev, "hb", hb(3))])
                await until(lambda: second.stats()["batches"] >= 1 and second.stored >= 1)
                await until(lambda: second.stats()["pending"] == 0)
                stats = second.stats()
            assert stats["seq_regressions"] == 0
            assert stats["duplicates"] == 1
        assert stored(session_factory, dev) == [1, 2, 3]

    run(scenario)


def test_topic_filter_uses_the_share_group() -> None:
    assert topic_filter(None) == "wg/v1/+/up/+"
    assert topic_filter("weldguard") == "$share/weldguard/wg/v1/+/up/+"
    assert parse_mqtt_url("mqtt://u:p%40ss@broker:1884") == MqttAddress(
        "broker", 1884, False, "u", "p@ss"
    )


class FlakySink:
    """A sink with bugs: observe raises on seq 2, the first write fails."""

    name = "flaky"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[int] = []
        self.pending: list[int] = []
        self.written: list[int] = []
        self.requeued: list[list[int]] = []
        self.writes_to_fail = 1
        self.state_stored_before_write = False

    def start(self, engine: Engine, now_ms: int) -> None:
        pass

    def observe(
        self,
        device_id: str,
        kind: Any,
        message: Any,
        change: StateChange,
        state: DeviceLive,
        now_ms: int,
    ) -> None:
        if message["seq"] == 2:
            raise RuntimeError("a bug in the sink")
        self.seen.append(message["seq"])
        self.pending.append(message["seq"])

    def went_offline(self, device_id: str, state: DeviceLive, now_ms: int) -> None:
        pass

    def drain(self, now_ms: int) -> list[int] | None:
        if not self.pending:
            return None
        work, self.pending = self.pending, []
        return work

    def write(self, engine: Engine, work: list[int], now_ms: int) -> None:
        with Session(engine) as s:
            # States are flushed before the sinks: what a sink writes may refer to them.
            self.state_stored_before_write = (
                s.scalars(select(DeviceState.device_id)).first() is not None
            )
        if self.writes_to_fail:
            self.writes_to_fail -= 1
            raise RuntimeError("the sink's database is away")
        self.written.extend(work)

    def requeue(self, work: list[int]) -> None:
        self.requeued.append(work)
        self.pending = work + self.pending


def test_a_failing_sink_neither_stops_the_worker_nor_loses_its_work(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    dev = f"S{uuid.uuid4().hex[:12]}"
    sink = FlakySink(engine)

    async def scenario() -> None:
        async with broker("embedded") as (host, port):
            worker = make_worker(engine, host, port, sinks=[sink], state_flush_ms=200)
            async with running(worker):
                await asyncio.to_thread(
                    publish, host, port, [up(dev, "hb", hb(1)), up(dev, "tel", tel(2))]
                )
                await until(lambda: worker.stored >= 2)
                # Messages that arrive after the failures still flow.
                await asyncio.to_thread(publish, host, port, [up(dev, "tel", tel(3))])
                await until(lambda: sink.written == [1, 3])
                stats = worker.stats()
        assert stored(session_factory, dev) == [1, 2, 3]
        assert sink.seen == [1, 3]
        assert sink.requeued and sink.requeued[0][0] == 1
        assert stats["sink_errors"] == {"flaky": 2}  # one observe, one write
        assert sink.state_stored_before_write

    run(scenario)


def test_machine_arc_thresholds_are_loaded_and_refreshed(
    world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """device_id → the machine its chip is bound to now; max(5 A, 5 % of the rated
    current). A chip bound while the worker runs counts after the next refresh."""
    assert arc_threshold_da(400) == 200
    assert arc_threshold_da(80) == 50  # 5 % would be 4 A: the floor wins
    assert arc_threshold_da(315) == 158  # rounded up
    repo = IngestRepository(engine)
    assert repo.load_arc_thresholds() == {"WGC000001": 200}
    dev = "WGC000002"

    async def scenario() -> None:
        async with broker("embedded") as (host, port):
            worker = make_worker(engine, host, port, arc_refresh_s=0.2, state_flush_ms=100)
            async with running(worker):
                assert worker.live.arc_threshold_da == {"WGC000001": 200}
                with session_factory() as s:
                    machine = s.get(Machine, world.machines["B"].id)
                    assert machine is not None
                    MachineService(s).fit_chip(
                        machine, dev, "860000000000002", "89860000000000000002", "安装员", NOW
                    )
                    s.commit()
                await until(lambda: dev in worker.live.arc_threshold_da)
                # 15 A on a 400 A machine is below its 20 A threshold: not welding.
                weak = tel(1, i_avg_da=150, i_max_da=180)
                await asyncio.to_thread(publish, host, port, [up(dev, "tel", weak)])
                await until(lambda: worker.stored >= 1)
                assert worker.live.states[dev].arc_on is False
                await asyncio.to_thread(publish, host, port, [up(dev, "tel", tel(2))])
                await until(lambda: worker.stored >= 2)
                assert worker.live.states[dev].arc_on is True

    run(scenario)
    with session_factory() as s:
        binding = s.scalars(select(ChipBinding).where(ChipBinding.removed_at.is_(None))).first()
        assert binding is not None
        binding.removed_at = NOW
        s.commit()
    assert len(repo.load_arc_thresholds()) == 1  # the removed chip no longer counts


def _publish_packet(topic: str, payload: bytes, qos: int, mid: int, props: bytes | None) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t
    if qos:
        body += mid.to_bytes(2, "big")
    if props is not None:  # MQTT 5: property length (one byte here) and properties
        body += bytes([len(props)]) + props
    body += payload
    assert len(body) < 128 * 128
    length = (
        bytes([len(body) % 128 | 0x80, len(body) // 128])
        if len(body) >= 128
        else bytes([len(body)])
    )
    return bytes([0x30 | qos << 1]) + length + body


def test_the_packet_reader_takes_plain_publishes_and_passes_the_rest_to_gmqtt(
    engine: Engine,
) -> None:
    """The worker's own PUBLISH parser (see IngestWorker._take_reads), fed bytes the
    way gmqtt's read loop does, split anywhere."""
    dev = f"P{uuid.uuid4().hex[:12]}"
    handed: list[tuple[int, bytes]] = []

    class Connection:
        _last_data_in = 0.0

        def put_package(self, package: Any) -> None:
            handed.append((package.cmd, package.data))

    class Protocol:
        proto_ver = 5

        def _read_packet(self, data: bytes) -> int:
            raise AssertionError("replaced")

    class Client:
        _connection = Connection()

    Client._connection._protocol = Protocol()  # type: ignore[attr-defined]

    async def scenario() -> None:
        worker = make_worker(engine, "127.0.0.1", 1)
        worker._take_reads(Client)
        read = Client._connection._protocol._read_packet  # type: ignore[attr-defined]
        topic = f"wg/v1/{dev}/up/hb"
        data = (
            _publish_packet(topic, orjson.dumps(hb(1)), 0, 0, b"")
            + _publish_packet(topic, orjson.dumps(hb(2)), 1, 7, b"")
            # With a property (message expiry): gmqtt parses that one.
            + _publish_packet(topic, orjson.dumps(hb(3)), 1, 8, b"\x02\x00\x00\x00\x3c")
            + b"\xd0\x00"  # PINGRESP
            + _publish_packet(topic, orjson.dumps(hb(4)), 1, 9, b"")
        )
        cut = len(data) - 10
        consumed = read(data[:cut])
        assert 0 < consumed < cut  # the last packet is incomplete: left for the next read
        assert read(data[consumed:]) == len(data) - consumed
        assert [row[2] for row in worker._rows] == [1, 2, 4]
        assert worker._acks == [7, 9]  # 8 is acknowledged by gmqtt's path
        assert [cmd for cmd, _ in handed] == [0x32, 0xD0]

    run(scenario)
