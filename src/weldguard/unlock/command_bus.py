"""The unlock fast path: one MQTT client per web process that publishes an unlock
the moment it is committed and hears the chip's ack itself.

Why: the bench target is p99 ≤ 20 ms of platform time from the scan's HTTP
request to the chip's ack. The ordinary path (the dispatcher polls the database
every 0.5 s; the ingest worker records the ack at its next flush, ~1 s later;
``wait_for_result`` polls the row) costs seconds. The bus instead:

1. registers a future for (device, command id) *before* publishing (an ack can
   come back within a millisecond);
2. marks the command sent with the dispatcher's own conditional claim
   (queued → sent, attempts 1, next attempt in 2 s), committed before the publish,
   exactly as a dispatcher would: the dispatchers then only retry it, on the
   usual back-off, if this publish is lost; if a dispatcher claimed it first, the
   bus does not publish and simply waits (the ack comes here all the same).
   When the bus is connected the scan writes the unlock already claimed
   (``CommandService.issue(send_now=True)``: the same state, in the INSERT of
   the scan's own transaction, so one commit before the publish, not two);
3. publishes the stored payload byte for byte at QoS 1;
4. resolves the future when the ack with that id arrives from that device on
   ``wg/v1/+/up/ack`` (a plain subscription: every web process sees every ack,
   and acks are rare), records it through :class:`CommandService` and returns it.

The ingest worker's CommandSink records the same ack again about a second later;
``record_ack`` keeps the first answer of a finished command (DUPLICATE), so that is
harmless. The bus records only *final* answers: ``busy`` (7) and
``clock_unsynced`` (8) steer delivery (back-off, a ``time`` command first), which
stays the sink's and the dispatcher's job; recording them twice would requeue a
command already re-sent.

When the bus is not connected (or not running), :func:`deliver_command` falls
back to ``wake_local_dispatchers()`` + ``wait_for_result``.

The connection is an :class:`~weldguard.device.mqtt_link.MqttLink`, as the
dispatcher's: our own reconnect loop with jitter, TCP_NODELAY on the socket,
callbacks that never raise, and the ack subscription renewed (and confirmed)
before the bus counts as connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.commands import (
    CommandRepository,
    CommandService,
    retry_delay,
    wait_for_result,
)
from weldguard.device.dispatcher import wake_local_dispatchers
from weldguard.device.models import CommandStatus, DeviceCommand
from weldguard.device.mqtt_link import LinkOwner, MqttLink, MqttOptions
from weldguard.device.mqtt_url import mqtt_login
from weldguard.device.protocol import AckCode, ProtocolError, command_topic, decode_up, parse_topic
from weldguard.device.registry import DeviceSecrets

log = logging.getLogger(__name__)

ACK_TOPIC = "wg/v1/+/up/ack"
MAX_BACKOFF_S = 30.0
# Answers that steer delivery rather than end it (see the module docstring).
_NOT_FINAL = frozenset({int(AckCode.BUSY), int(AckCode.CLOCK_UNSYNCED)})

# The bus running in this process (at most one is expected), so that the web
# application started by ``serve`` can find the one the device runtime started.
_running: weakref.WeakSet[CommandBus] = weakref.WeakSet()


def running_command_bus() -> CommandBus | None:
    """The bus started in this process, if any."""
    for bus in list(_running):
        return bus
    return None


@dataclass(frozen=True)
class CommandOrder:
    """A committed command to deliver: what the bus needs of the row."""

    command_id: str
    device_id: str
    payload: bytes
    # Written already claimed, in the transaction that created it (issue's send_now).
    claimed: bool = False

    @classmethod
    def of(cls, command: DeviceCommand, *, claimed: bool = False) -> CommandOrder:
        return cls(command.id, command.device_id, command.payload.encode("utf-8"), claimed)


@dataclass(frozen=True)
class CommandAck:
    """The chip's final answer to a command (docs/protocol.md § 6.6, § 12.3)."""

    command_id: str
    device_id: str
    code: int
    state: str | None
    received_at: datetime

    @property
    def ok(self) -> bool:
        return self.code == AckCode.OK


class CommandBus(LinkOwner):
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        device_secrets: DeviceSecrets,
        clock: Callable[[], datetime] = utcnow,
        **mqtt: Unpack[MqttOptions],
    ) -> None:
        self.session_factory = session_factory
        self.device_secrets = device_secrets
        self.clock = clock
        self._link = MqttLink(
            "command bus",
            client_prefix="weldguard-bus",
            max_backoff_s=MAX_BACKOFF_S,
            subscriptions={ACK_TOPIC: 1},
            on_message=self._hear,
            logger=log,
            **mqtt,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[tuple[str, str], asyncio.Future[CommandAck]] = {}
        self.published = 0
        self.acks_heard = 0
        self.fallbacks = 0
        self.lost_claims = 0
        self.errors: Counter[str] = Counter()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Starts the connection loop (returns at once; see :meth:`wait_connected`)."""
        if self._link.running:
            return
        self._loop = asyncio.get_running_loop()
        self._link.start()
        _running.add(self)

    async def stop(self) -> None:
        _running.discard(self)
        try:
            await self._link.stop()
        finally:
            # Also when stop()'s caller is cancelled (the link passes that on).
            for future in self._waiting.values():
                if not future.done():
                    future.cancel()
            self._waiting.clear()

    def stats(self) -> dict[str, Any]:
        link = self._link
        # Counter addition keeps only what happened, as the bus's own counter does.
        errors = self.errors + Counter(
            {"connect": link.connect_failures, "on_message": link.message_errors}
        )
        return {
            "connected": self.connected,
            "published": self.published,
            "acks_heard": self.acks_heard,
            "fallbacks": self.fallbacks,
            "lost_claims": self.lost_claims,
            "connects": link.connects,
            "waiting": len(self._waiting),
            "errors": dict(errors),
        }

    # ------------------------------------------------------------------ sending

    async def send_and_wait(
        self, command: DeviceCommand | CommandOrder, timeout: float
    ) -> CommandAck | None:
        """Publishes a committed, queued command and waits up to ``timeout`` seconds
        for the chip's final ack, which is recorded before it is returned. None
        when no final answer came in time. Falls back to the dispatchers when the
        bus is not connected."""
        order = command if isinstance(command, CommandOrder) else CommandOrder.of(command)
        if not self.connected or asyncio.get_running_loop() is not self._loop:
            self.fallbacks += 1
            return await wait_via_dispatchers(self.session_factory, order.command_id, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        key = (order.device_id, order.command_id)
        future = self._waiting.get(key)
        if future is None or future.done():
            future = loop.create_future()
            self._waiting[key] = future
        try:
            claimed = order.claimed or await asyncio.to_thread(self._claim, order.command_id)
            if claimed:
                self._publish(order)
            else:
                # A dispatcher got it (or it is not queued): its ack still comes here.
                self.lost_claims += 1
                wake_local_dispatchers()
            remaining = deadline - loop.time()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 a wait_for cancelled
                # as the ack arrives returns it and loses the cancellation.
                async with asyncio.timeout(max(remaining, 0.0)):
                    ack = await asyncio.shield(future)
            except TimeoutError:
                return None
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
        await asyncio.to_thread(self._record, ack)
        return ack

    def _claim(self, command_id: str) -> bool:
        now = self.clock()
        try:
            with transaction(self.session_factory) as session:
                return CommandRepository(session).claim_first_send(
                    command_id, 0, now, now + retry_delay(1)
                )
        except IntegrityError:
            # PostgreSQL: another command of the device went in flight meanwhile.
            return False
        except OperationalError as exc:  # SQLite busy: let the dispatchers do it
            self.errors[type(exc).__name__] += 1
            return False

    def _record(self, ack: CommandAck) -> None:
        message = {"id": ack.command_id, "code": ack.code}
        if ack.state is not None:
            message["state"] = ack.state
        try:
            with transaction(self.session_factory) as session:
                CommandService(session, self.device_secrets).record_ack(
                    ack.device_id, message, ack.received_at
                )
        except Exception as exc:  # the ingest sink records it too
            self.errors["record"] += 1
            log.warning("command bus: recording ack of %s failed: %s", ack.command_id, exc)

    def _publish(self, order: CommandOrder) -> None:
        try:
            if not self._link.publish(command_topic(order.device_id), order.payload):
                return  # claimed but not sent: the dispatchers' back-off repeats it
            self.published += 1
        except Exception as exc:
            self.errors["publish"] += 1
            log.warning("command bus: publishing %s failed: %s", order.command_id, exc)

    # ------------------------------------------------------------------ receiving

    def _hear(self, topic: str, payload: bytes) -> None:
        """The link's on_message hook: whatever this raises, the link logs and skips."""
        parsed = parse_topic(topic)
        if parsed is None or parsed[1] != "ack":
            return
        device_id = parsed[0]
        try:
            message = decode_up("ack", payload)
        except ProtocolError:
            self.errors["bad_ack"] += 1
            return
        self.acks_heard += 1
        code = message.get("code")
        if not isinstance(code, int) or code in _NOT_FINAL:
            return
        future = self._waiting.get((device_id, str(message.get("id"))))
        if future is None or future.done():
            return  # another process's command, or one nobody waits for
        state = message.get("state")
        future.set_result(
            CommandAck(
                command_id=str(message["id"]),
                device_id=device_id,
                code=code,
                state=state if isinstance(state, str) else None,
                received_at=self.clock(),
            )
        )


# ---------------------------------------------------------------------- fallback


def _final_row(session_factory: sessionmaker[Session], command_id: str) -> DeviceCommand | None:
    with session_factory() as session:
        return CommandRepository(session).get(command_id)


async def wait_via_dispatchers(
    session_factory: sessionmaker[Session], command_id: str, timeout: float
) -> CommandAck | None:
    """The slow path: wake the dispatchers of this process and poll the row."""
    wake_local_dispatchers()
    status = await wait_for_result(session_factory, command_id, timeout)
    if status not in (CommandStatus.ACKED.value, CommandStatus.FAILED.value):
        return None
    row = await asyncio.to_thread(_final_row, session_factory, command_id)
    if row is None or row.ack_code is None:
        return None
    return CommandAck(
        command_id=row.id,
        device_id=row.device_id,
        code=row.ack_code,
        state=row.ack_state,
        received_at=row.finished_at or utcnow(),
    )


async def deliver_command(
    bus: CommandBus | None,
    session_factory: sessionmaker[Session],
    command: DeviceCommand | CommandOrder,
    timeout: float,
) -> CommandAck | None:
    """Delivers a committed command: through the bus when there is one, else
    through the dispatchers. The final ack, or None when none came in time."""
    if bus is not None:
        return await bus.send_and_wait(command, timeout)
    command_id = command.command_id if isinstance(command, CommandOrder) else command.id
    return await wait_via_dispatchers(session_factory, command_id, timeout)


async def start_command_bus(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    mqtt_url: str | None = None,
    wait_s: float = 0.0,
) -> CommandBus:
    """Builds and starts this process's bus on the running loop, logged in as the
    platform (``mqtt_login``: the URL's own account, else the platform's). The
    broker is ``mqtt_url``, else WELDGUARD_MQTT_URL, else the embedded broker's
    address. ``wait_s`` > 0 waits that long for the first connection (a broker
    that is not there yet is not an error: the bus keeps trying and the scans use
    the dispatchers meanwhile)."""
    url = (
        mqtt_url
        or settings.mqtt_url
        or (f"mqtt://{settings.mqtt_listen_host}:{settings.mqtt_listen_port}")
    )
    secret = settings.resolved_secret_key()
    address = mqtt_login(url, secret)
    bus = CommandBus(
        session_factory=session_factory,
        device_secrets=DeviceSecrets(secret),
        host=address.host,
        port=address.port,
        tls=address.tls,
        username=address.username,
        password=address.password,
    )
    await bus.start()
    if wait_s > 0:
        with contextlib.suppress(TimeoutError):
            await bus.wait_connected(wait_s)
    return bus


__all__ = [
    "ACK_TOPIC",
    "CommandAck",
    "CommandBus",
    "CommandOrder",
    "deliver_command",
    "running_command_bus",
    "start_command_bus",
    "wait_via_dispatchers",
]
