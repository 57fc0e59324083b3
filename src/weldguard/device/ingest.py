"""The ingest worker: MQTT up messages → validated, deduplicated, batched into the
database; live state kept in memory and flushed in batches.

Durability: the gmqtt client runs with ``optimistic_acknowledgement=False``, so it
sends a message's PUBACK only when our async handler returns, and the handler of a
QoS 1 message returns only once the batch holding it is committed. With a
persistent session (clean start off, long session expiry) a worker that dies loses
nothing: the broker redelivers whatever was not acknowledged, and the unique key
in ``device_message`` drops what had been committed already.

Speed (see docs/architecture.md and bench/ingest.py): gmqtt on the hot path,
orjson via the protocol codec, one COPY per batch of up to ``batch_size`` rows or
``batch_ms`` on PostgreSQL, one executemany on SQLite; database work runs on one
dedicated thread while the next batch fills.

Back-pressure: at most ``max_pending`` rows wait in memory. At QoS 1 the broker's
in-flight window (our Receive Maximum) bounds them; at QoS 0 the worker stops
reading its socket until the writer catches up, so TCP pushes back on the broker.

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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import typer
from gmqtt import Client as MQTTClient
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from weldguard.db import make_engine
from weldguard.device.ingest_repository import IngestRepository, MessageRow
from weldguard.device.live_state import DEFAULT_OFFLINE_FACTOR, LiveStates
from weldguard.device.protocol import ProtocolError, UpKind, classify_ts, decode_up, parse_topic
from weldguard.device.sinks import IngestSink

log = logging.getLogger(__name__)

UP_FILTER = "wg/v1/+/up/+"
LOG_TRUNCATE = 200
# MQTT 5 Session Expiry: how long the broker keeps our session (and queues QoS 1
# messages for it) while no worker is connected.
SESSION_EXPIRY_S = 7 * 24 * 3600
CONNECT_TIMEOUT_S = 5.0


def topic_filter(share_group: str | None) -> str:
    return f"$share/{share_group}/{UP_FILTER}" if share_group else UP_FILTER


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(payload: bytes | bytearray | str) -> str:
    # Valid UTF-8 by now: the codec has parsed it as JSON.
    return payload if isinstance(payload, str) else bytes(payload).decode("utf-8")


def _truncate(data: bytes | str) -> str:
    text = data if isinstance(data, str) else data[: LOG_TRUNCATE * 4].decode("utf-8", "replace")
    return text[:LOG_TRUNCATE]


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
        offline_check_ms: int = 1000,
        offline_factor: float = DEFAULT_OFFLINE_FACTOR,
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
        self.max_pending = max_pending or 4 * batch_size
        # Receive Maximum: the broker keeps at most this many QoS 1 messages
        # unacknowledged at once; it must cover what arrives while a batch commits.
        self.receive_maximum = min(65535, max(self.max_pending, 2 * batch_size))
        self.state_flush_s = state_flush_ms / 1000
        self.offline_check_s = offline_check_ms / 1000
        self.keepalive = keepalive
        # 5 or 4 (3.1.1); None: 5, falling back to 3.1.1 for brokers without it.
        self.mqtt_version = mqtt_version
        self.clock_ms = clock_ms
        self.live = LiveStates(offline_factor=offline_factor)
        self.sinks = tuple(sinks)
        self.sink_errors: Counter[str] = Counter()
        self.repo = IngestRepository(self._engine)
        # One thread: batches and state flushes never run concurrently, and the
        # connection is only ever used by that thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-db")

        self._pending: list[MessageRow] = []
        self._pending_since = 0.0
        self._batch_done: asyncio.Future[int] | None = None
        self._batch_full = asyncio.Event()
        self._has_rows = asyncio.Event()
        self._client: Any = None
        self._paused = False
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._stopping = False
        self._ready = asyncio.Event()

        self.received = 0
        self.accepted = 0
        self.stored = 0
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
            "duplicates": self.live.duplicates + self.duplicates_db,
            "seq_regressions": self.live.seq_regressions,
            "late_buffered": self.live.late_buffered,
            "bad": dict(self.bad),
            "batches": self.batches,
            "last_batch_rows": self.last_batch_rows,
            "last_batch_ms": round(self.last_batch_ms, 2),
            "db_errors": self.db_errors,
            "pending": len(self._pending),
            "devices": len(self.live),
            "went_offline": self.went_offline,
            "connects": self.connects,
            "sink_errors": dict(self.sink_errors),
        }

    async def wait_ready(self, timeout: float = 10) -> None:
        """Until the first subscription is in place (tests, serve start-up)."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    def nodelay(self) -> bool | None:
        """TCP_NODELAY as the live socket reports it (None when not connected)."""
        sock = self._socket()
        if sock is None:
            return None
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def run(self) -> None:
        """Runs until cancelled; on cancellation the batch being written is still
        committed, nothing pending is acknowledged, and connections are closed."""
        loop = asyncio.get_running_loop()
        for device_id, st in await loop.run_in_executor(self._executor, self.repo.load_states):
            self.live.restore(device_id, st)
        for sink in self.sinks:
            await loop.run_in_executor(self._executor, sink.start, self._engine, self.clock_ms())
        tasks = [
            asyncio.create_task(self._writer(), name="ingest-writer"),
            asyncio.create_task(self._state_loop(), name="ingest-state"),
        ]
        try:
            await self._connection_loop()
        finally:
            self._stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_client()
            await loop.run_in_executor(self._executor, self.repo.close)
            self._executor.shutdown(wait=False)
            if self._own_engine:
                self._engine.dispose()

    # ------------------------------------------------------------------ MQTT

    async def _connection_loop(self) -> None:
        """Owns reconnection (gmqtt's own is off): exponential backoff up to a
        minute, a fresh client per attempt, subscription renewed on every connect."""
        delay = 1.0
        # MQTT 5 by default: Receive Maximum and Session Expiry need it. A broker
        # that only speaks 3.1.1 (the embedded amqtt) neither accepts nor refuses
        # a v5 CONNECT, so a connect that times out falls back to 3.1.1 (pass
        # mqtt_version=4 to skip the wait). On 3.1.1 the client still acknowledges
        # after commit: gmqtt fixes that choice when the client is built.
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
            client.on_message = self._on_message
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_subscribe = self._on_subscribe
            if self.username:
                client.set_auth_credentials(self.username, self.password)
            self._client = client
            self._disconnected.clear()
            try:
                await asyncio.wait_for(
                    client.connect(self.host, self.port, keepalive=self.keepalive, version=version),
                    CONNECT_TIMEOUT_S,
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

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self._paused = False
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
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

    def _transport(self) -> Any:
        return getattr(getattr(self._client, "_connection", None), "_transport", None)

    async def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        """Returns the PUBACK reason code (0). Never raises: a bad message is
        counted, logged and acknowledged, so it is not redelivered forever."""
        self.received += 1
        try:
            parsed = parse_topic(topic)
            if parsed is None:
                self._bad("topic", topic, payload)
                return 0
            device_id, kind = parsed
            message = decode_up(kind, payload)
            now = self.clock_ms()
            if "seq" not in message:
                # Only the Last Will may omit seq and ts: the broker publishes it
                # for the chip when its connection drops. Stored with seq 0 on the
                # platform's clock; never part of the seq rules.
                if kind != "evt" or message.get("lwt") is not True:
                    raise ProtocolError("schema", "seq is required")
                if self.live.will(device_id):
                    self.went_offline += 1
                    self._sinks_offline([device_id], now)
                return await self._store(
                    (device_id, kind.value, 0, now, now, False, _text(payload)), qos
                )
            buffered = message.get("buf") is True
            ts: int = message["ts"]
            verdict = classify_ts(ts, buffered, now)
            if verdict == "too_old":
                self._bad("too_old", topic, payload)
                return 0
            if verdict == "clock_ahead":
                ts = now  # the protocol says: keep it, on the platform's clock
            change = self.live.apply(device_id, kind, message, now, history=verdict == "late")
            if change is None:
                return 0
            if self.sinks:
                self._sinks_observe(device_id, kind, message, change, now)
            row: MessageRow = (
                device_id,
                kind.value,
                message["seq"],
                ts,
                now,
                buffered,
                _text(payload),
            )
        except ProtocolError as exc:
            self._bad(exc.code, topic, payload, exc.detail)
            return 0
        except Exception as exc:  # a bug must not kill the client or the worker
            log.exception("ingest: unexpected error on %s", _truncate(topic))
            self._bad("internal", topic, payload, str(exc))
            return 0
        return await self._store(row, qos)

    async def _store(self, row: MessageRow, qos: int) -> int:
        done = self._enqueue(row)
        if qos:
            # PUBACK only after commit: gmqtt sends it when the handler returns.
            await asyncio.shield(done)
        return 0

    def _enqueue(self, row: MessageRow) -> asyncio.Future[int]:
        self.accepted += 1
        pending = self._pending
        if not pending:
            self._pending_since = time.monotonic()
            self._has_rows.set()
        pending.append(row)
        if self._batch_done is None:
            self._batch_done = asyncio.get_running_loop().create_future()
        done = self._batch_done
        if len(pending) >= self.batch_size:
            self._batch_full.set()
        if len(pending) >= self.max_pending and not self._paused:
            transport = self._transport()
            if transport is not None:
                transport.pause_reading()
                self._paused = True
        return done

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

    def _bad(self, reason: str, topic: str, payload: bytes, detail: str = "") -> None:
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
            await self._has_rows.wait()
            wait = self._pending_since + self.batch_s - time.monotonic()
            if wait > 0 and len(self._pending) < self.batch_size:
                self._batch_full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_full.wait(), wait)
            rows, done = self._pending, self._batch_done
            self._pending, self._batch_done = [], None
            self._has_rows.clear()
            self._resume()
            started = time.perf_counter()
            delay = 0.1
            while True:
                try:
                    # Not cancellable mid-write: a cancelled worker still finishes
                    # (and commits) the batch it is writing.
                    stored = await asyncio.shield(
                        loop.run_in_executor(self._executor, self.repo.write_messages, rows)
                    )
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The database is away: keep the rows (unacknowledged) and
                    # retry; the broker holds the rest meanwhile.
                    self.db_errors += 1
                    log.exception("ingest: writing %d messages failed; retrying", len(rows))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self.batches += 1
            self.stored += stored
            self.duplicates_db += len(rows) - stored
            self.last_batch_rows = len(rows)
            self.last_batch_ms = (time.perf_counter() - started) * 1000
            if done is not None and not done.done():
                done.set_result(stored)

    async def _state_loop(self) -> None:
        """Offline detection from the deadline heap, and the batched state flush."""
        loop = asyncio.get_running_loop()
        last_flush = time.monotonic()
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
        finally:
            with contextlib.suppress(Exception):
                await self._flush_states(loop)
            with contextlib.suppress(Exception):
                await self._flush_sinks(loop)

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
        try:
            await asyncio.shield(
                loop.run_in_executor(self._executor, self.repo.upsert_states, rows)
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            self.db_errors += 1
            log.exception("ingest: flushing %d device states failed", len(rows))
            self.live.mark_dirty(d for d, _ in dirty)


# ---------------------------------------------------------------------- entry points


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", ""):
        raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} (mqtt://host:port)")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", parts.port or 1883, username, password


async def run_ingest(
    database_url: str,
    mqtt_url: str,
    *,
    share_group: str | None = None,
    batch_size: int = 2000,
    batch_ms: int = 100,
    client_id: str | None = None,
    mqtt_version: int | None = None,
) -> None:
    """``mqtt_version=4`` for the embedded amqtt broker (MQTT 3.1.1 only)."""
    host, port, username, password = parse_mqtt_url(mqtt_url)
    worker = IngestWorker(
        database=database_url,
        host=host,
        port=port,
        username=username,
        password=password,
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
    """Subscribe to every chip's up messages and store them (weldguard ingest)."""
    from weldguard.config import get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    url = mqtt_url or settings.mqtt_url or f"mqtt://127.0.0.1:{settings.mqtt_listen_port}"
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_ingest(
                settings.resolved_database_url(),
                url,
                share_group=share_group or settings.mqtt_share_group,
                batch_size=batch_size,
                client_id=client_id,
            )
        )
