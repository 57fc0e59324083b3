"""One MQTT connection kept up by a loop of our own, for the platform's
long-lived publishers (the command dispatcher, the unlock command bus).

In the manner of Home Assistant's MQTT client:

- gmqtt's own reconnection is off (``gmqtt_compat.disable_own_reconnect``:
  ``reconnect_retries`` 0 does not turn it off) and every attempt builds a fresh
  client: gmqtt's loop would race ours with a second client on the same id;
- backoff from 1 s to ``max_backoff_s``, with jitter so that a restarted
  platform's clients do not all reconnect in step;
- TCP_NODELAY on the socket (asyncio sets it too; an unlock's round trip must not
  wait behind Nagle's algorithm);
- the subscriptions are renewed on every connect, and the link counts as
  connected only once the broker has confirmed them: a message published before
  that would be missed;
- callbacks log and never raise, since an exception escaping one would take the
  client down; a message the owner's handler fails on is logged (its payload
  truncated) and skipped;
- a cancelled link always ends, and ends cancelled: every wait is bounded with
  ``asyncio.timeout``, never ``asyncio.wait_for`` (on Python 3.11 a wait_for
  cancelled just as what it awaits completes returns normally, losing the
  cancellation: CPython gh-86296, fixed in 3.12), and the loop closes its client,
  bounded, on the way out.

The owner supplies the hooks: ``on_message(topic, payload)`` and
``on_connected()``. The ingest worker keeps a loop of its own (MQTT 5 with a
fallback, a persistent session, its own packet parser): see device/ingest.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from gmqtt import Client as MQTTClient
from gmqtt import Subscription
from gmqtt.mqtt.constants import MQTTv311

from weldguard.device.gmqtt_compat import disable_own_reconnect, disconnect, transport_of

CONNECT_TIMEOUT_S = 5.0
SUBSCRIBE_TIMEOUT_S = 5.0
# The DISCONNECT and the socket's close; past it the socket is dropped.
CLOSE_TIMEOUT_S = 2.0
# stop(): the loop ends within its close (CLOSE_TIMEOUT_S) once cancelled.
STOP_TIMEOUT_S = CLOSE_TIMEOUT_S + 3.0
# A short pause after a lost connection, so a broker that drops every client at
# once is not hit by all of them again in the same instant.
RECONNECT_PAUSE_S = 0.5
LOG_TRUNCATE = 200


def _truncate(payload: bytes) -> str:
    return payload[:LOG_TRUNCATE].decode("utf-8", "replace")


class MqttOptions(TypedDict, total=False):
    """Where and how to connect: the keyword arguments an owner passes through
    (``**mqtt: Unpack[MqttOptions]``), so they are declared once, here."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    # Default: the link's ``client_prefix`` and a random suffix.
    client_id: str | None
    keepalive: int


class MqttLink:
    """One broker connection, kept up from :meth:`start` until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        *,
        client_prefix: str,
        client_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 1883,
        tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        max_backoff_s: float = 60.0,
        subscriptions: Mapping[str, int] | None = None,
        on_message: Callable[[str, bytes], None] | None = None,
        on_connected: Callable[[], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.client_id = client_id or f"{client_prefix}-{uuid.uuid4().hex[:12]}"
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password
        self.keepalive = keepalive
        self.max_backoff_s = max_backoff_s
        self.subscriptions = dict(subscriptions or {})
        self._on_message_hook = on_message
        self._on_connected_hook = on_connected
        # The owner's logger, so its records keep the name they always had.
        self.log = logger or logging.getLogger(__name__)
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._subscribed = asyncio.Event()
        self.connects = 0
        self.connect_failures = 0
        self.message_errors = 0

    # ------------------------------------------------------------------ public

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float = 10) -> None:
        """Until connected; TimeoutError after ``timeout``."""
        # asyncio.timeout, not wait_for: a caller cancelled just as the link
        # connected went on as if it had not been (gh-86296, see the module's doc).
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    def start(self) -> None:
        """Starts the connection loop on the running event loop; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._connection_loop(), name=f"{self.name}-mqtt")

    async def stop(self) -> None:
        """Cancels the connection loop and waits, bounded, for it to close its
        client. A cancellation of stop()'s caller propagates: the loop, cancelled
        already, still ends and closes its client by itself."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not `await task` under suppress(CancelledError): that
            # also swallowed a cancellation of stop()'s caller (its owner's
            # shutdown, a timeout), which then went on as if never cancelled.
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if not done:
                self.log.warning(
                    "%s: the connection loop did not end within %.0f s of its cancellation",
                    self.name,
                    STOP_TIMEOUT_S,
                )
            elif not task.cancelled():
                task.exception()  # logged by the loop when it failed; retrieved here
        # Normally closed by the loop already; this covers a loop that did not end.
        await self._close_client()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """False, sending nothing, while not connected. gmqtt's own errors are
        raised: the owner counts and logs them in its terms."""
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        client.publish(topic, payload, qos=qos, retain=False)
        return True

    def nodelay(self) -> bool | None:
        """TCP_NODELAY as the live socket reports it (None when not connected)."""
        sock = self._socket()
        if sock is None:
            return None
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    # ------------------------------------------------------------------ the loop

    async def _connection_loop(self) -> None:
        try:
            await self._connect_and_stay()
        except Exception:  # a bug, or a gmqtt without the hooks we need
            self.log.exception("%s: the connection loop failed", self.name)
            raise
        finally:
            # Whoever cancelled us (stop(), or its caller cancelled meanwhile) need
            # not wait for this: a connected client must never outlive the loop.
            await self._close_client()

    async def _connect_and_stay(self) -> None:
        delay = 1.0
        while True:
            client = MQTTClient(self.client_id, clean_session=True)
            client.set_config({"reconnect_retries": 0, "reconnect_delay": 1})
            # reconnect_retries 0 does not turn gmqtt's own reconnect off: see
            # disable_own_reconnect. Left on, the client given up after a drop
            # came back a second later and took our new connection's place.
            disable_own_reconnect(client)
            client.on_message = self._on_message
            client.on_disconnect = self._on_disconnect
            client.on_subscribe = self._on_subscribe
            if self.username:
                client.set_auth_credentials(self.username, self.password)
            self._client = client
            self._disconnected.clear()
            self._subscribed.clear()
            try:
                # asyncio.timeout, not wait_for (see the module's doc): a link
                # cancelled just as connect() completed went on to wait for a
                # disconnect, and stop() waited for it for ever.
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await client.connect(
                        self.host,
                        self.port,
                        ssl=self.tls,
                        keepalive=self.keepalive,
                        version=MQTTv311,
                    )
                self._set_nodelay()
                if self.subscriptions:
                    # One SUBSCRIBE for them all: one SUBACK says they are in place.
                    client.subscribe(
                        [Subscription(t, qos=q) for t, q in self.subscriptions.items()]
                    )
                    async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                        await self._subscribed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connect_failures += 1
                self.log.warning(
                    "%s: cannot connect to %s:%s: %s", self.name, self.host, self.port, exc
                )
                await self._close_client()
                await asyncio.sleep(delay * random.uniform(0.75, 1.25))
                delay = min(delay * 2, self.max_backoff_s)
                continue
            delay = 1.0
            self.connects += 1
            self._connected.set()
            self.log.info("%s: connected to %s:%s", self.name, self.host, self.port)
            self._call_hook("on_connected", self._on_connected_hook)
            await self._disconnected.wait()
            self._connected.clear()
            self.log.warning("%s: connection to broker lost; reconnecting", self.name)
            await self._close_client()
            await asyncio.sleep(RECONNECT_PAUSE_S)

    def _call_hook(self, what: str, hook: Callable[[], None] | None) -> None:
        if hook is None:
            return
        try:
            hook()
        except Exception:  # the owner's bug must not end the connection loop
            self.log.exception("%s: %s failed", self.name, what)

    # ------------------------------------------------------------------ callbacks

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        if self._on_message_hook is not None:
            try:
                self._on_message_hook(topic, payload)
            except Exception:  # skip the message, keep the client
                self.message_errors += 1
                self.log.exception(
                    "%s: handling a message on %s failed: %r", self.name, topic, _truncate(payload)
                )
        return 0  # PUBACK reason: success (the message is not worth a redelivery)

    def _on_subscribe(self, client: Any, mid: Any, qos: Any, properties: Any) -> None:
        try:
            if client is self._client:
                self._subscribed.set()
        except Exception:
            self.log.exception("%s: on_subscribe failed", self.name)

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        try:
            # A late callback from a client already replaced says nothing of this one.
            if client is self._client:
                self._connected.clear()
                self._disconnected.set()
        except Exception:
            self.log.exception("%s: on_disconnect failed", self.name)

    # ------------------------------------------------------------------ socket

    async def _close_client(self) -> None:
        """Disconnects, bounded (CLOSE_TIMEOUT_S; past it, or failing, or
        cancelled, the socket is dropped). A cancellation propagates."""
        client, self._client = self._client, None
        self._connected.clear()
        if client is None:
            return
        try:
            await disconnect(client, CLOSE_TIMEOUT_S)
        except Exception as exc:
            self.log.debug("%s: MQTT disconnect: %r", self.name, exc)

    def _socket(self) -> Any:
        transport = transport_of(self._client)
        return None if transport is None else transport.get_extra_info("socket")

    def _set_nodelay(self) -> None:
        sock = self._socket()
        if sock is None:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):  # not TCP (a unix socket in some setups)
            self.log.debug("%s: could not set TCP_NODELAY", self.name, exc_info=True)


class LinkOwner:
    """What an owner of a link shows of its connection (the dispatcher, the bus)."""

    _link: MqttLink

    async def wait_connected(self, timeout: float = 10) -> None:
        await self._link.wait_connected(timeout)

    @property
    def connected(self) -> bool:
        return self._link.connected

    def nodelay(self) -> bool | None:
        """TCP_NODELAY as the live socket reports it (None when not connected)."""
        return self._link.nodelay()
