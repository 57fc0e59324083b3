"""The ingest worker: MQTT up messages → validated, deduplicated, batched into the
database; live state kept in memory and flushed in batches.

Durability: QoS 1 messages are acknowledged only after the batch holding them is
committed. The worker takes over gmqtt's QoS 1 hand-off (``_take_qos1``): it
processes the message synchronously, keeps the packet id with the pending batch,
and after the commit writes that batch's PUBACKs in one go, in arrival order
(duplicates and bad messages are acknowledged with the batch they arrived with).
With a persistent session (clean start off, long session expiry) a worker that
dies loses nothing: the broker redelivers whatever was not acknowledged, and the
unique key in ``device_message`` drops what had been committed already. A
PUBACK is only ever written to the connection its packet id came from.

Speed (see docs/architecture.md "Ingest" and bench/ingest.py): no coroutine,
task or future per message. Our own parser (``_take_reads``) hands PUBLISH packets
from the bytes gmqtt reads straight to ``_accept``; whatever gmqtt still parses
reaches it through ``_on_message`` (a plain function, QoS 0) or the QoS 1 hook.
Each accepted message appends a row to the pending batch. One writer task takes
the whole pending batch when it reaches ``batch_size`` rows or ``batch_ms`` have
passed, and while it commits the next batch fills (double buffering).
PostgreSQL: binary COPY through asyncpg on the event loop (``PgMessageWriter``);
SQLite: executemany on the database thread.

Back-pressure: at most ``max_pending`` rows wait in memory. At QoS 1 the broker's
in-flight window (our Receive Maximum) bounds them; at QoS 0 the worker stops
reading its socket until the writer catches up, so TCP pushes back on the broker
(whose queue limits then decide: see the Mosquitto settings in docs/architecture.md).

TCP_NODELAY: gmqtt connects with ``loop.create_connection``, and asyncio sets
TCP_NODELAY on every TCP transport it creates (Python ≥ 3.7,
``base_events._set_nodelay``); ``nodelay()`` reports what the socket says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import typer
from gmqtt import Client as MQTTClient
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from weldguard.db import make_engine
from weldguard.device.gmqtt_compat import disable_own_reconnect, disconnect, transport_of
from weldguard.device.ingest_repository import (
    IngestRepository,
    MessageRow,
    PgMessageWriter,
    asyncpg_dsn,
)
from weldguard.device.live_state import DEFAULT_OFFLINE_FACTOR, LiveStates
from weldguard.device.mqtt_url import mqtt_login, parse_mqtt_url
from weldguard.device.protocol import ProtocolError, UpKind, classify_ts, decode_up, parse_topic
from weldguard.device.sinks import IngestSink

log = logging.getLogger(__name__)

UP_FILTER = "wg/v1/+/up/+"
LOG_TRUNCATE = 200
# MQTT 5 Session Expiry: how long the broker keeps our session (and queues QoS 1
# messages for it) while no worker is connected.
SESSION_EXPIRY_S = 7 * 24 * 3600
CONNECT_TIMEOUT_S = 5.0
# Shutdown (run() cancelled): how long a step may take before it is given up, so
# that a cancelled worker always ends. Each normally takes milliseconds.
STOP_DRAIN_S = 5.0  # the writer, the last state flush, the batch being committed
STOP_CLOSE_S = 2.0  # the MQTT disconnect, the database thread's close
# Machines are bound and unbound while the worker runs; their welding thresholds
# are reloaded this often so a newly bound chip counts.
ARC_REFRESH_S = 60.0
# Valid topics seen → (device_id, kind): parse_topic costs more than a dict lookup,
# and a chip uses a handful of topics. Bounded (about 150 bytes an entry): a fleet
# bigger than this only re-parses more often.
TOPIC_CACHE_MAX = 500_000


def topic_filter(share_group: str | None) -> str:
    return f"$share/{share_group}/{UP_FILTER}" if share_group else UP_FILTER


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _truncate(data: bytes | str) -> str:
    text = data if isinstance(data, str) else data[: LOG_TRUNCATE * 4].decode("utf-8", "replace")
    return text[:LOG_TRUNCATE]


def _pubacks(mids: list[int]) -> bytes:
    """PUBACK packets, success, no properties: 0x40, remaining length 2, packet id
    (valid in MQTT 3.1.1 and 5, where reason code 0 may be omitted)."""
    return b"".join([b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids])


class IngestWorker:
    def __init__(
        self,
        *,
        database: Engine | sessionmaker[Session] | str,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        share_group: str | None = None,
        batch_size: int = 2000,
        batch_ms: int = 100,
        max_pending: int | None = None,
        state_flush_ms: int = 1000,
        offline_check_ms: int = 250,
        offline_factor: float = DEFAULT_OFFLINE_FACTOR,
        offline_grace_ms: int | None = None,
        arc_refresh_s: float = ARC_REFRESH_S,
        keepalive: int = 30,
        mqtt_version: int | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        sinks: Sequence[IngestSink] = (),
    ) -> None:
        if isinstance(database, str):
            self._engine = make_engine(database)
            self._own_engine = True
        elif isinstance(database, Engine):
            self._engine, self._own_engine = database, False
        else:
            bind = database.kw.get("bind")
            if not isinstance(bind, Engine):
                raise ValueError("the session factory has no engine bound")
            self._engine, self._own_engine = bind, False
        self.host, self.port = host, port
        self.username, self.password = username, password
        # A stable client id is what makes the broker keep our session across a
        # restart; the default is unique per process so two workers never kick
        # each other off (give each worker its own stable id in production).
        self.client_id = client_id or f"weldguard-ingest-{uuid.uuid4().hex[:12]}"
        self.topic = topic_filter(share_group)
        self.batch_size = batch_size
        self.batch_s = batch_ms / 1000
        self.max_pending = max_pending or 8 * batch_size
        # Receive Maximum: the broker keeps at most this many QoS 1 messages
        # unacknowledged at once. Acks wait for the commit, so the window must
        # cover the batch being committed and the one filling meanwhile, with
        # room to spare: QoS 1 throughput is at most window / commit round trip.
        self.receive_maximum = min(65535, max(self.max_pending, 2 * batch_size))
        self.state_flush_s = state_flush_ms / 1000
        # Offline is noticed at most this long after a chip's deadline.
        self.offline_check_s = offline_check_ms / 1000
        self.arc_refresh_s = arc_refresh_s
        self.keepalive = keepalive
        # 5 or 4 (3.1.1); None: 5, falling back to 3.1.1 for brokers without it.
        self.mqtt_version = mqtt_version
        self.clock_ms = clock_ms
        self.live = LiveStates(offline_factor=offline_factor, offline_grace_ms=offline_grace_ms)
        self.sinks = tuple(sinks)
        self.sink_errors: Counter[str] = Counter()
        self.repo = IngestRepository(self._engine)
        # PostgreSQL messages go through asyncpg on the loop; SQLite stays on the
        # database thread with everything else.
        self._pg: PgMessageWriter | None = (
            PgMessageWriter(asyncpg_dsn(self._engine)) if self.repo.postgres else None
        )
        # One thread: state flushes, sink writes and SQLite batches never run
        # concurrently, and the connection is only ever used by that thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-db")

        self._rows: list[MessageRow] = []
        # topic → (device_id, kind, kind's name): the enum's .value is a property.
        self._topics: dict[str | bytes, tuple[str, UpKind, str]] = {}
        # Packet ids of the QoS 1 messages that arrived since the last batch was
        # taken, and the client (connection) they belong to.
        self._acks: list[int] = []
        self._ack_client: Any = None
        self._pending_since = 0.0
        self._batch_full = asyncio.Event()
        self._has_work = asyncio.Event()
        self._writing: asyncio.Future[int] | None = None
        self._flushing: asyncio.Future[None] | None = None
        self._client: Any = None
        self._paused = False
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._stopping = False
        self._ready = asyncio.Event()

        self.received = 0
        self.accepted = 0
        self.stored = 0
        self.acked = 0
        self.duplicates_db = 0
        self.bad: Counter[str] = Counter()
        self.batches = 0
        self.db_errors = 0
        self.last_batch_rows = 0
        self.last_batch_ms = 0.0
        self.went_offline = 0
        self.connects = 0

    # ------------------------------------------------------------------ public

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "stored": self.stored,
            "acked": self.acked,
            "duplicates": self.live.duplicates + self.duplicates_db,
            "seq_regressions": self.live.seq_regressions,
            "late_buffered": self.live.late_buffered,
            "bad": dict(self.bad),
            "batches": self.batches,
            "last_batch_rows": self.last_batch_rows,
            "last_batch_ms": round(self.last_batch_ms, 2),
            "db_errors": self.db_errors,
            "pending": len(self._rows) + len(self._acks),
            "devices": len(self.live),
            "went_offline": self.went_offline,
            "connects": self.connects,
            "sink_errors": dict(self.sink_errors),
        }

    async def wait_ready(self, timeout: float = 10) -> None:
        """Until the first subscription is in place (tests, serve start-up)."""
        # asyncio.timeout, never wait_for, in this module: see _writer.
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    def nodelay(self) -> bool | None:
        """TCP_NODELAY as the live socket reports it (None when not connected)."""
        sock = self._socket()
        if sock is None:
            return None
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def run(self) -> None:
        """Runs until cancelled; on cancellation the batch being written is still
        committed, nothing pending is acknowledged, and connections are closed.
        The shutdown is bounded (``_shutdown``): a cancelled run() always ends, and
        ends cancelled."""
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        try:
            for device_id, st in await loop.run_in_executor(self._executor, self.repo.load_states):
                self.live.restore(device_id, st)
            await self._refresh_arc_thresholds(loop)
            for sink in self.sinks:
                await loop.run_in_executor(
                    self._executor, sink.start, self._engine, self.clock_ms()
                )
            tasks = [
                asyncio.create_task(self._writer(), name="ingest-writer"),
                asyncio.create_task(self._state_loop(), name="ingest-state"),
            ]
            await self._connection_loop()
        finally:
            # In a task of its own, shielded: a second cancellation (a caller's
            # timeout) must not cut the shutdown short, or the MQTT client would
            # stay connected, holding our session, and the database connections
            # open. Every step of it is bounded, so waiting for it is too; the
            # cancellation then propagates, it is never swallowed.
            shutdown = asyncio.ensure_future(self._shutdown(tasks))
            try:
                await asyncio.shield(shutdown)
            except asyncio.CancelledError:
                await asyncio.wait({shutdown})
                raise

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        """Stops the worker's tasks and closes its connections. Each step that
        waits is bounded (STOP_DRAIN_S, STOP_CLOSE_S); one that fails or times out
        is logged and the next still runs. Never raises."""
        loop = asyncio.get_running_loop()
        self._stopping = True
        for task in tasks:
            task.cancel()
        # The writer stops at once (a batch it was committing goes on, shielded);
        # the state loop makes its last flush.
        await self._stop_step(tasks, STOP_DRAIN_S, "stopping the writer and the state flush")
        await self._close_client()
        # The batch the writer was committing when cancelled must finish before its
        # database connection closes. Its messages are not acknowledged: the broker
        # redelivers them and the unique key drops them.
        if self._writing is not None:
            await self._stop_step([self._writing], STOP_DRAIN_S, "committing the batch in flight")
        if self._pg is not None:
            # Bounded by asyncpg: close(timeout=2) per connection, else terminate().
            try:
                await self._pg.close()
            except Exception:
                log.exception("ingest: closing the PostgreSQL connections failed")
        # The database thread may still be busy with a write that outlived its
        # step: then the close stays queued behind it and runs when it is done.
        closing = loop.run_in_executor(self._executor, self.repo.close)
        await self._stop_step([closing], STOP_CLOSE_S, "closing the database connection")
        self._executor.shutdown(wait=False)
        if self._own_engine:
            try:
                self._engine.dispose()
            except Exception:
                log.exception("ingest: disposing of the database engine failed")

    async def _stop_step(
        self, futures: Sequence[asyncio.Future[Any]], timeout: float, what: str
    ) -> None:
        """Waits at most ``timeout`` for ``futures`` (asyncio.wait: neither cancels
        them nor raises what they raise) and logs what they failed with."""
        if not futures:
            return
        _done, pending = await asyncio.wait(futures, timeout=timeout)
        if pending:
            log.warning("ingest: shutdown: %s took over %.0f s; going on without it", what, timeout)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                log.error("ingest: shutdown: %s failed", what, exc_info=future.exception())

    # ------------------------------------------------------------------ MQTT

    async def _connection_loop(self) -> None:
        """Owns reconnection (gmqtt's own is off): exponential backoff up to a
        minute, a fresh client per attempt, subscription renewed on every connect."""
        delay = 1.0
        # MQTT 5 by default: Receive Maximum and Session Expiry need it. A broker
        # that only speaks 3.1.1 (the embedded amqtt) neither accepts nor refuses
        # a v5 CONNECT, so a connect that times out falls back to 3.1.1 (pass
        # mqtt_version=4 to skip the wait).
        version = MQTTv311 if self.mqtt_version == 4 else MQTTv50
        while True:
            client = MQTTClient(
                self.client_id,
                clean_session=False,
                optimistic_acknowledgement=False,
                session_expiry_interval=SESSION_EXPIRY_S,
                receive_maximum=self.receive_maximum,
            )
            client.set_config({"reconnect_retries": 0, "reconnect_delay": 1})
            # reconnect_retries 0 does not turn gmqtt's own reconnect off: see
            # disable_own_reconnect. Left on, the client given up after a drop
            # came back a second later and took our new connection's place.
            disable_own_reconnect(client)
            client.on_message = self._on_message
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_subscribe = self._on_subscribe
            self._take_qos1(client)
            if self.username:
                client.set_auth_credentials(self.username, self.password)
            self._client = client
            self._disconnected.clear()
            try:
                # asyncio.timeout, not wait_for (see _writer): a worker cancelled
                # just as connect() completed went on to wait for a disconnect.
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await client.connect(
                        self.host, self.port, keepalive=self.keepalive, version=version
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ingest: cannot connect to %s:%s: %s", self.host, self.port, exc)
                await self._close_client()
                if version == MQTTv50 and self.mqtt_version is None:
                    version = MQTTv311
                    continue
                version = MQTTv311 if self.mqtt_version == 4 else MQTTv50
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            delay = 1.0
            self.connects += 1
            await self._disconnected.wait()
            log.warning("ingest: connection to broker lost; reconnecting")
            await self._close_client()
            await asyncio.sleep(0.5)

    def _take_qos1(self, client: Any) -> None:
        """Replaces gmqtt's QoS 1 hand-off (a task per message, the PUBACK sent when
        it finishes) with a synchronous call that keeps the packet id for the
        batch's commit. gmqtt looks the method up on its package handler
        instance, once per PUBLISH (gmqtt 0.6-0.8, mqtt/handler.py)."""
        handler = client._package_handler
        if not callable(getattr(handler, "_handle_qos_1_publish_packet", None)):
            # Without the hook a plain on_message would never be acknowledged:
            # refuse to run rather than stall every QoS 1 session.
            raise RuntimeError("gmqtt has no _handle_qos_1_publish_packet: pin gmqtt 0.6-0.8")

        def on_qos1(mid: int, payload: bytes, topic: str, properties: Any) -> None:
            self._accept(topic, payload)
            self._keep_ack(client, mid)

        handler._handle_qos_1_publish_packet = on_qos1

    def _keep_ack(self, client: Any, mid: int) -> None:
        if self._ack_client is not client:
            # Packet ids of an earlier connection cannot be acknowledged on this
            # one: the broker redelivers those messages anyway.
            self._ack_client, self._acks = client, []
        self._acks.append(mid)
        if not self._has_work.is_set():
            self._pending_since = time.monotonic()
            self._has_work.set()

    def _take_reads(self, client: Any) -> None:
        """Parses PUBLISH packets straight out of the bytes read from the socket.

        gmqtt spends as much time per message as the whole of our processing
        (a Package object, a queue hop, two debug log calls with arguments built,
        format strings built for struct, the properties parsed into a dict, an
        inspect.iscoroutinefunction check). This parser takes over the
        protocol's ``_read_packet`` (called by its read loop for every chunk, looked
        up on the instance) and hands QoS 0/1 PUBLISH packets without properties
        to ``_accept``; every other packet (CONNACK, SUBACK, PINGRESP, a PUBLISH
        with properties or QoS 2) goes to gmqtt exactly as before. Installed from
        on_connect: packets in the chunk that carried the CONNACK still take
        gmqtt's path, which ``_take_qos1`` makes equivalent."""
        connection: Any = getattr(client, "_connection", None)
        protocol: Any = getattr(connection, "_protocol", None)
        if protocol is None or not callable(getattr(protocol, "_read_packet", None)):
            return
        try:
            from gmqtt.mqtt.package import Package
        except ImportError:
            return
        # MQTT 5 puts a property length (one byte when 0) after the packet id.
        v5 = 1 if protocol.proto_ver == MQTTv50 else 0
        put = connection.put_package

        def read_packet(data: bytes) -> int:
            connection._last_data_in = time.monotonic()  # gmqtt's keepalive
            parsed, size = 0, len(data)
            now: int | None = None
            while size - parsed >= 2:
                cmd = data[parsed]
                pos, mult, length = parsed + 1, 1, 0
                while True:
                    if pos >= size:
                        return parsed
                    byte = data[pos]
                    pos += 1
                    length += (byte & 0x7F) * mult
                    if not byte & 0x80:
                        break
                    mult *= 128
                    if mult > 2_097_152:
                        return -1
                end = pos + length
                if end > size:
                    break
                # PUBLISH at QoS 0 or 1, long enough for what we read of it; a
                # malformed one goes to gmqtt, which logs and skips it.
                if (cmd & 0xF6 == 0x30 or cmd & 0xF6 == 0x32) and length >= 2:
                    tlen = data[pos] << 8 | data[pos + 1]
                    p = pos + 2 + tlen
                    qos1 = cmd & 0x02
                    if tlen and p + (2 if qos1 else 0) + v5 <= end:
                        mid = 0
                        if qos1:
                            mid = data[p] << 8 | data[p + 1]
                            p += 2
                        if not v5 or data[p] == 0:
                            if now is None:
                                # One reading of the clock per chunk read: its
                                # messages arrived together.
                                now = self.clock_ms()
                            topic = data[pos + 2 : pos + 2 + tlen]
                            self._accept(topic, data[p + v5 : end], now)
                            if qos1:
                                self._keep_ack(client, mid)
                            parsed = end
                            continue
                put(Package(cmd, data[pos:end]))
                parsed = end
            return parsed

        protocol._read_packet = read_packet

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self._paused = False
        if client is None:
            return
        try:
            # Bounded: a broker that does not answer must not hold us up. Timed
            # out, failed or cancelled, the socket is dropped rather than left
            # open; a cancellation propagates.
            await disconnect(client, STOP_CLOSE_S)
        except Exception as exc:
            log.debug("ingest: MQTT disconnect: %r", exc)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        self._take_reads(client)
        try:
            client.subscribe(self.topic, qos=1)
            log.info("ingest: connected, subscribing to %s", self.topic)
        except Exception:
            log.exception("ingest: subscribe failed")

    def _on_subscribe(self, client: Any, mid: Any, qos: Any, properties: Any) -> None:
        self._ready.set()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if client is self._client:
            self._disconnected.set()

    def _socket(self) -> Any:
        """The connection's socket (asyncio's TransportSocket wrapper) or None."""
        transport = self._transport()
        return None if transport is None else transport.get_extra_info("socket")

    def _transport(self, client: Any = None) -> Any:
        return transport_of(self._client if client is None else client)

    def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        """gmqtt's on_message, for QoS 0 messages gmqtt parses itself (QoS 1 ones go
        through the hook of ``_take_qos1``). A plain function: gmqtt then calls it
        inline, with no task."""
        self._accept(topic, payload)
        return 0

    def _accept(self, topic: str | bytes, payload: bytes, now: int | None = None) -> None:
        """One up message, synchronously. Never raises: a bad message is counted,
        logged and (at QoS 1) acknowledged, so it is not redelivered forever.
        ``topic``: as gmqtt decoded it, or the raw bytes from ``_take_reads``."""
        self.received += 1
        try:
            known = self._topics.get(topic)
            if known is None:
                try:
                    name = topic if isinstance(topic, str) else topic.decode()
                except UnicodeDecodeError:
                    name = ""
                parsed = parse_topic(name)
                if parsed is None:
                    self._bad("topic", topic, payload)
                    return
                if len(self._topics) >= TOPIC_CACHE_MAX:
                    self._topics.clear()
                known = self._topics[topic] = (*parsed, parsed[1].value)
            device_id, kind, kind_name = known
            message = decode_up(kind, payload)
            if now is None:
                now = self.clock_ms()
            # Valid UTF-8 by now: the codec has parsed it as JSON.
            text = payload.decode() if type(payload) is bytes else bytes(payload).decode()
            if "seq" not in message:
                # Only the Last Will may omit seq and ts: the broker publishes it
                # for the chip when its connection drops. Stored with seq 0 on the
                # platform's clock; never part of the seq rules.
                if kind != "evt" or message.get("lwt") is not True:
                    raise ProtocolError("schema", "seq is required")
                if self.live.will(device_id):
                    self.went_offline += 1
                    self._sinks_offline([device_id], now)
                self._enqueue((device_id, kind_name, 0, now, now, False, text))
                return
            buffered = message.get("buf") is True
            ts: int = message["ts"]
            verdict = classify_ts(ts, buffered, now)
            if verdict == "too_old":
                self._bad("too_old", topic, payload)
                return
            if verdict == "clock_ahead":
                ts = now  # the protocol says: keep it, on the platform's clock
            change = self.live.apply(device_id, kind, message, now, history=verdict == "late")
            if change is None:
                return
            if self.sinks:
                self._sinks_observe(device_id, kind, message, change, now)
            row: MessageRow = (device_id, kind_name, message["seq"], ts, now, buffered, text)
        except ProtocolError as exc:
            self._bad(exc.code, topic, payload, exc.detail)
            return
        except Exception as exc:  # a bug must not kill the client or the worker
            log.exception("ingest: unexpected error on %s", _truncate(topic))
            self._bad("internal", topic, payload, str(exc))
            return
        self._enqueue(row)

    def _enqueue(self, row: MessageRow) -> None:
        self.accepted += 1
        rows = self._rows
        rows.append(row)
        if not self._has_work.is_set():
            self._pending_since = time.monotonic()
            self._has_work.set()
        if len(rows) >= self.batch_size:
            self._batch_full.set()
            if len(rows) >= self.max_pending and not self._paused:
                transport = self._transport()
                if transport is not None:
                    transport.pause_reading()
                    self._paused = True

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            transport = self._transport()
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    def _sinks_observe(
        self, device_id: str, kind: UpKind, message: dict[str, Any], change: Any, now: int
    ) -> None:
        state = self.live.states[device_id]
        for sink in self.sinks:
            try:
                sink.observe(device_id, kind, message, change, state, now)
            except Exception:
                self.sink_errors[sink.name] += 1
                log.exception("ingest: sink %s failed on a message from %s", sink.name, device_id)

    def _sinks_offline(self, device_ids: Sequence[str], now: int) -> None:
        for sink in self.sinks:
            for device_id in device_ids:
                try:
                    sink.went_offline(device_id, self.live.states[device_id], now)
                except Exception:
                    self.sink_errors[sink.name] += 1
                    log.exception("ingest: sink %s failed on offline %s", sink.name, device_id)

    def _bad(self, reason: str, topic: str | bytes, payload: bytes, detail: str = "") -> None:
        self.bad[reason] += 1
        log.warning(
            "ingest: dropped %s message on %s: %s %s",
            reason,
            _truncate(topic),
            _truncate(detail),
            _truncate(payload),
        )

    # ------------------------------------------------------------------ writing

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._has_work.wait()
            wait = self._pending_since + self.batch_s - time.monotonic()
            if wait > 0 and len(self._rows) < self.batch_size:
                self._batch_full.clear()
                # The deadline sets the event a full batch sets. Not
                # asyncio.wait_for: on Python 3.11 a wait_for cancelled just as
                # what it awaits completes returns normally, losing the
                # cancellation (CPython gh-86296, fixed in 3.12). The writer,
                # cancelled by run() while a batch filled, then went back to
                # waiting for work, and run() waited for it for ever.
                deadline = loop.call_later(wait, self._batch_full.set)
                try:
                    await self._batch_full.wait()
                finally:
                    deadline.cancel()
            # Take everything pending; the next batch fills while this one commits.
            rows, acks, ack_client = self._rows, self._acks, self._ack_client
            self._rows, self._acks = [], []
            self._has_work.clear()
            self._batch_full.clear()
            self._resume()
            started = time.perf_counter()
            stored = await self._write(rows) if rows else 0
            if acks:
                self._send_acks(ack_client, acks)
            if not rows:
                continue
            self.batches += 1
            self.stored += stored
            self.duplicates_db += len(rows) - stored
            self.last_batch_rows = len(rows)
            self.last_batch_ms = (time.perf_counter() - started) * 1000

    async def _write(self, rows: list[MessageRow]) -> int:
        """Commits one batch, retrying until the database takes it. The rows stay
        unacknowledged meanwhile; the broker holds the rest."""
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            pending: Awaitable[int]
            if self._pg is not None:
                pending = self._pg.write(rows)
            else:
                pending = loop.run_in_executor(self._executor, self.repo.write_messages, rows)
            # Not cancellable mid-write: a cancelled worker still finishes (and
            # commits) the batch it is writing; run() waits for it.
            self._writing = asyncio.ensure_future(pending)
            try:
                return await asyncio.shield(self._writing)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.db_errors += 1
                log.exception("ingest: writing %d messages failed; retrying", len(rows))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if self._writing is not None and self._writing.done():
                    self._writing = None

    def _send_acks(self, client: Any, mids: list[int]) -> None:
        """The batch's PUBACKs in one write, on the connection they belong to; if
        that connection is gone the broker redelivers and the database dedupes."""
        if client is None or client is not self._client:
            return
        transport = self._transport(client)
        if transport is None or transport.is_closing():
            return
        transport.write(_pubacks(mids))
        self.acked += len(mids)

    async def _state_loop(self) -> None:
        """Offline detection from the deadline heap, the batched state flush, and
        the periodic reload of the machines' welding thresholds."""
        loop = asyncio.get_running_loop()
        last_flush = last_arc = time.monotonic()
        try:
            while True:
                await asyncio.sleep(min(self.offline_check_s, self.state_flush_s))
                now = self.clock_ms()
                gone = self.live.due_offline(now)
                if gone:
                    self.went_offline += len(gone)
                    log.info("ingest: %d device(s) went offline", len(gone))
                    self._sinks_offline(gone, now)
                if time.monotonic() - last_flush >= self.state_flush_s:
                    last_flush = time.monotonic()
                    await self._flush_states(loop)
                    await self._flush_sinks(loop)
                if time.monotonic() - last_arc >= self.arc_refresh_s:
                    last_arc = time.monotonic()
                    await self._refresh_arc_thresholds(loop)
        finally:
            # A flush interrupted by the cancellation still runs (shielded); the
            # last one must not overlap it on the same connection. asyncio.wait:
            # a further cancellation ends this task (run() bounds the wait for it)
            # instead of cancelling that flush or being swallowed.
            flushing = self._flushing
            if flushing is not None:
                await asyncio.wait({flushing})
                if not flushing.cancelled() and flushing.exception() is not None:
                    self.db_errors += 1
                    log.error(
                        "ingest: flushing device states failed", exc_info=flushing.exception()
                    )
            with contextlib.suppress(Exception):
                await self._flush_states(loop)
            with contextlib.suppress(Exception):
                await self._flush_sinks(loop)

    async def _refresh_arc_thresholds(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            thresholds = await asyncio.shield(
                loop.run_in_executor(self._executor, self.repo.load_arc_thresholds)
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            self.db_errors += 1
            log.exception("ingest: loading the machines' arc thresholds failed; keeping the old")
            return
        self.live.arc_threshold_da = thresholds

    async def _flush_sinks(self, loop: asyncio.AbstractEventLoop) -> None:
        """Each sink's pending work in its own transaction, after the states (an
        alarm row may refer to what the state flush just wrote)."""
        now = self.clock_ms()
        for sink in self.sinks:
            try:
                work = sink.drain(now)
            except Exception:
                self.sink_errors[sink.name] += 1
                log.exception("ingest: sink %s failed to drain", sink.name)
                continue
            if work is None:
                continue
            try:
                await asyncio.shield(
                    loop.run_in_executor(self._executor, sink.write, self._engine, work, now)
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                self.sink_errors[sink.name] += 1
                log.exception("ingest: sink %s failed to write; kept for the next flush", sink.name)
                with contextlib.suppress(Exception):
                    sink.requeue(work)

    async def _flush_states(self, loop: asyncio.AbstractEventLoop) -> None:
        dirty = self.live.dirty()
        if not dirty:
            return
        rows = self.repo.state_rows(dirty)
        pending: Awaitable[None]
        if self._pg is not None:
            # At tens of thousands of messages a second every device is dirty
            # every second: one COPY beats a statement per device by far.
            pending = self._pg.upsert_states(rows)
        else:
            pending = loop.run_in_executor(self._executor, self.repo.upsert_states, rows)
        self._flushing = asyncio.ensure_future(pending)
        try:
            await asyncio.shield(self._flushing)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.db_errors += 1
            log.exception("ingest: flushing %d device states failed", len(rows))
            self.live.mark_dirty(d for d, _ in dirty)
        # Left set only by a flush a cancellation interrupted: _state_loop waits for it.
        self._flushing = None


# ---------------------------------------------------------------------- entry points


async def run_ingest(
    database_url: str,
    mqtt_url: str,
    *,
    share_group: str | None = None,
    batch_size: int = 2000,
    batch_ms: int = 100,
    client_id: str | None = None,
    mqtt_version: int | None = None,
    sinks: Sequence[IngestSink] = (),
    platform_secret: str | None = None,
) -> None:
    """``mqtt_version=4`` for the embedded amqtt broker (MQTT 3.1.1 only). Without
    credentials in the URL the platform's own account is used when
    ``platform_secret`` is given."""
    address = (
        parse_mqtt_url(mqtt_url)
        if platform_secret is None
        else mqtt_login(mqtt_url, platform_secret)
    )
    worker = IngestWorker(
        database=database_url,
        host=address.host,
        port=address.port,
        username=address.username,
        password=address.password,
        sinks=sinks,
        client_id=client_id,
        share_group=share_group,
        batch_size=batch_size,
        batch_ms=batch_ms,
        mqtt_version=mqtt_version,
    )
    await worker.run()


def ingest_command(
    mqtt_url: Annotated[
        str | None, typer.Option("--mqtt-url", help="mqtt://user:pass@host:port")
    ] = None,
    share_group: Annotated[
        str | None, typer.Option("--share-group", help="MQTT shared-subscription group")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=50_000)] = 2000,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Stable id: keeps the broker session")
    ] = None,
) -> None:
    """Subscribe to every chip's up messages and store them, record command acks and
    raise device alarms (weldguard ingest)."""
    from weldguard.config import get_settings
    from weldguard.device.runtime import ingest_sinks

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    url = mqtt_url or settings.mqtt_url or f"mqtt://127.0.0.1:{settings.mqtt_listen_port}"
    if settings.gc_freeze:
        from weldguard.process import freeze_startup_objects

        freeze_startup_objects()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_ingest(
                settings.resolved_database_url(),
                url,
                share_group=share_group or settings.mqtt_share_group,
                batch_size=batch_size,
                client_id=client_id,
                sinks=ingest_sinks(settings),
                platform_secret=settings.resolved_secret_key(),
            )
        )
