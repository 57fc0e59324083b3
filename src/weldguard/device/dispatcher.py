"""The command dispatcher: publishes due commands to the chips and expires the
overdue ones (docs/protocol.md § 13).

Each cycle, on a database thread: expire what passed ``exp``; read what is due;
claim each publish with a conditional UPDATE in a transaction of its own (so
several dispatchers, in one process or many, never publish the same attempt
twice, and one in flight per device holds); then, on the loop, publish the
stored payload byte for byte at QoS 1 on ``wg/v1/{device}/down/cmd``. The claim
commits before the publish: a publish lost to a broken connection is simply the
attempt the back-off repeats.

A cycle runs every ``poll_s`` and at once on :meth:`CommandDispatcher.wake`
(thread-safe), which an in-process caller uses after committing a command and the
ingest ``CommandSink`` after committing acks and hellos.

The MQTT connection is an :class:`~weldguard.device.mqtt_link.MqttLink` (our own
reconnect loop: backoff with jitter from 1 s to 60 s, a fresh client per attempt,
TCP_NODELAY, callbacks that log and never raise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated, Any, Unpack

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from weldguard.db import make_engine, make_session_factory, transaction, utcnow
from weldguard.device.commands import CommandService, DispatchItem
from weldguard.device.mqtt_link import LinkOwner, MqttLink, MqttOptions
from weldguard.device.mqtt_url import mqtt_login
from weldguard.device.protocol import command_topic
from weldguard.device.registry import DeviceSecrets

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0

# The dispatchers running in this process, so that whoever commits a command here
# (an API request, the scan-to-unlock flow, the ingest sink) can have it
# published at once; other processes find it at their next poll.
_local: weakref.WeakSet[CommandDispatcher] = weakref.WeakSet()


def wake_local_dispatchers() -> None:
    """Thread-safe; does nothing when no dispatcher runs in this process."""
    for dispatcher in list(_local):
        dispatcher.wake()


class CommandDispatcher(LinkOwner):
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        device_secrets: DeviceSecrets,
        poll_s: float = 0.5,
        batch_size: int = 200,
        clock: Callable[[], datetime] = utcnow,
        **mqtt: Unpack[MqttOptions],
    ) -> None:
        self.session_factory = session_factory
        self.device_secrets = device_secrets
        self.poll_s = poll_s
        self.batch_size = batch_size
        self.clock = clock
        # One database thread: cycles never overlap and a connection stays on it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-db")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._link = MqttLink(
            "dispatch",
            client_prefix="weldguard-dispatch",
            max_backoff_s=MAX_BACKOFF_S,
            # Publish at once what waited while we were away.
            on_connected=self._wake.set,
            logger=log,
            **mqtt,
        )
        self.published = 0
        self.expired = 0
        self.lost_claims = 0
        self.errors: Counter[str] = Counter()

    # ------------------------------------------------------------------ public

    def wake(self) -> None:
        """Run a cycle now. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._wake.set)

    @property
    def connects(self) -> int:
        return self._link.connects

    @property
    def connect_failures(self) -> int:
        return self._link.connect_failures

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "expired": self.expired,
            "lost_claims": self.lost_claims,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "connected": self.connected,
            "errors": dict(self.errors),
        }

    async def run(self) -> None:
        """Runs until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._link.start()
        _local.add(self)
        try:
            await self._dispatch_loop()
        finally:
            _local.discard(self)
            await self._link.stop()
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ cycles

    async def _dispatch_loop(self) -> None:
        while True:
            more = False
            try:
                more = await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away, a bug: log, go on
                self.errors[type(exc).__name__] += 1
                log.exception("dispatch: cycle failed")
            if more:
                continue  # a full batch: there may be more due right now
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 a wait_for cancelled
            # just as what it awaits completes returns normally, losing the
            # cancellation (CPython gh-86296, fixed in 3.12). A dispatcher
            # cancelled as it was woken ran a cycle and went back to waiting, and
            # run() never ended.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()

    async def _cycle(self) -> bool:
        loop = asyncio.get_running_loop()
        now = self.clock()
        expired = await loop.run_in_executor(self._executor, self._expire, now)
        if expired:
            self.expired += expired
            log.info("dispatch: %d command(s) expired", expired)
        if not self._link.connected:
            # Claiming now would only count attempts nobody could receive.
            return False
        items = await loop.run_in_executor(self._executor, self._claim, now)
        for item in items:
            self._publish(item)
        return len(items) >= self.batch_size

    def _expire(self, now: datetime) -> int:
        with transaction(self.session_factory) as session:
            return CommandService(session, self.device_secrets).expire_overdue(now)

    def _claim(self, now: datetime) -> list[DispatchItem]:
        # Closing the reading session ends its transaction before the writes
        # below and detaches the rows without expiring them.
        with self.session_factory() as session:
            due = CommandService(session, self.device_secrets).due(now, self.batch_size)
        claimed: list[DispatchItem] = []
        for command in due:
            try:
                # One short transaction per claim: a lost race costs only itself.
                with transaction(self.session_factory) as session:
                    item = CommandService(session, self.device_secrets).claim(command, now)
            except IntegrityError:
                # PostgreSQL: another dispatcher put a command of this device in
                # flight between our read and our UPDATE; the unique index said no.
                item = None
            except OperationalError as exc:
                # SQLite: another writer holds the database; next cycle.
                self.errors[type(exc).__name__] += 1
                log.warning("dispatch: claim of %s failed: %s", command.id, exc)
                break
            if item is None:
                self.lost_claims += 1
            else:
                claimed.append(item)
        return claimed

    def _publish(self, item: DispatchItem) -> None:
        try:
            if not self._link.publish(command_topic(item.device_id), item.payload):
                return  # claimed but not sent: the back-off repeats it
            self.published += 1
            log.debug(
                "dispatch: %s → %s (attempt %d)", item.command_id, item.device_id, item.attempt
            )
        except Exception as exc:
            self.errors["publish"] += 1
            log.warning("dispatch: publishing %s failed: %s", item.command_id, exc)


# ---------------------------------------------------------------------- entry points


async def run_dispatcher(
    database_url: str | Engine,
    mqtt_url: str,
    *,
    platform_secret: str,
    client_id: str | None = None,
    poll_s: float = 0.5,
    started: Callable[[CommandDispatcher], None] | None = None,
) -> None:
    """Runs a dispatcher until cancelled. ``started`` receives it once built (to
    wire its ``wake`` into a CommandSink or the API, in one process)."""
    engine = make_engine(database_url) if isinstance(database_url, str) else database_url
    address = mqtt_login(mqtt_url, platform_secret)
    dispatcher = CommandDispatcher(
        session_factory=make_session_factory(engine),
        device_secrets=DeviceSecrets(platform_secret),
        host=address.host,
        port=address.port,
        tls=address.tls,
        username=address.username,
        password=address.password,
        client_id=client_id,
        poll_s=poll_s,
    )
    if started is not None:
        started(dispatcher)
    try:
        await dispatcher.run()
    finally:
        if isinstance(database_url, str):
            engine.dispose()


def dispatch_command(
    mqtt_url: Annotated[
        str | None, typer.Option("--mqtt-url", help="mqtt://user:pass@host:port")
    ] = None,
    client_id: Annotated[str | None, typer.Option("--client-id")] = None,
) -> None:
    """Publish queued commands to the chips and retry them until acked or expired
    (weldguard dispatch)."""
    from weldguard.config import get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    url = mqtt_url or settings.mqtt_url or f"mqtt://127.0.0.1:{settings.mqtt_listen_port}"
    if settings.gc_freeze:
        from weldguard.process import freeze_startup_objects

        freeze_startup_objects()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_dispatcher(
                settings.resolved_database_url(),
                url,
                platform_secret=settings.resolved_secret_key(),
                client_id=client_id,
            )
        )
