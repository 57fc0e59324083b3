"""MQTT adapter for one reference chip (paho-mqtt 2.x).

One thread drives everything: it connects (with exponential backoff), runs paho's
network loop, ticks the core and publishes what the core returns. Keeping paho's
callbacks and the ticks on the same thread means the core needs no lock.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from weldguard.sim.chip import ChipCore, Outgoing

log = logging.getLogger(__name__)

KEEPALIVE_S = 60


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host:port`` or ``mqtts://host:port`` (ports default to 1883 / 8883)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"unsupported broker scheme {parts.scheme!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls)


def up_topic(device_id: str, kind: str) -> str:
    return f"wg/v1/{device_id}/up/{kind}"


def command_topic(device_id: str) -> str:
    return f"wg/v1/{device_id}/down/cmd"


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def set_nodelay(sock: Any) -> None:
    """Small request/response packets (command → ack) wait up to 40 ms behind
    Nagle's algorithm otherwise."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (e.g. a websocket wrapper)
        log.debug("could not set TCP_NODELAY", exc_info=True)


class ChipTransport:
    """Connects a :class:`ChipCore` to a broker.

    ``clock`` returns the host time in ms (tests may pass a fake one). Use
    :meth:`run` to drive it in the calling thread, or :meth:`start` / :meth:`stop`
    for a background thread. :meth:`set_network` simulates the chip losing and
    regaining its mobile network.
    """

    def __init__(
        self,
        core: ChipCore,
        broker_url: str,
        *,
        tick_s: float = 0.1,
        clock: Callable[[], int] | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.core = core
        self.device_id = core.cfg.device_id
        self.addr = parse_broker_url(broker_url)
        self.tick_s = tick_s
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.published = 0
        self.connects = 0
        self._network_up = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._socket_open = False
        self._pending: list[Callable[[], None]] = []
        self._pending_lock = threading.Lock()

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.username_pw_set(self.device_id, core.cfg.secret_hex)
        if self.addr.tls:
            client.tls_set()
        # The core's buffer is the chip's offline memory; paho only holds what is in
        # flight (it resends unacknowledged QoS 1 messages after a reconnect).
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        self.client = client

    # ------------------------------------------------------------------ callbacks

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        set_nodelay(sock)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        try:
            if reason.is_failure:
                log.warning("chip %s: connection refused: %s", self.device_id, reason)
                return
            self._connected = True
            self.connects += 1
            client.subscribe(command_topic(self.device_id), qos=1)
            self._publish(self.core.on_connect(self.clock()))
        except Exception:
            log.exception("chip %s: on_connect failed", self.device_id)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        try:
            self._connected = False
            self._socket_open = False
            self.core.on_disconnect()
            log.info("chip %s: disconnected (%s)", self.device_id, reason)
        except Exception:
            log.exception("chip %s: on_disconnect failed", self.device_id)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._publish(self.core.handle_command(bytes(msg.payload), self.clock()))
        except Exception:
            log.exception(
                "chip %s: command handling failed for %.200r", self.device_id, msg.payload
            )

    # ------------------------------------------------------------------ publishing

    def _publish(self, out: list[Outgoing]) -> None:
        for kind, message in out:
            info = self.client.publish(up_topic(self.device_id, kind), encode(message), qos=1)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.published += 1
            elif info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
                # NO_CONN: paho keeps the QoS 1 message and sends it after reconnecting.
                log.warning("chip %s: publish failed: %s", self.device_id, info.rc)

    # ------------------------------------------------------------------ control

    def set_network(self, up: bool) -> None:
        """Simulate losing (False) or regaining (True) the mobile network. Thread safe."""
        self._network_up = up

    def reboot(self, *, keep_clock: bool = False) -> None:
        """Simulate a power cycle: the link drops, the core restarts
        (:meth:`ChipCore.reboot`) and the chip connects again at once. Thread safe."""

        def restart() -> None:
            if self._socket_open:
                self._drop_link()
            self.core.reboot(self.clock(), keep_clock=keep_clock)

        self.call_soon(restart)

    @property
    def connected(self) -> bool:
        return self._connected

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the transport thread (the core is not thread safe)."""
        with self._pending_lock:
            self._pending.append(fn)

    def start(self, seconds: float | None = None) -> None:
        self._thread = threading.Thread(
            target=self.run, args=(seconds,), name=f"chip-{self.device_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, seconds: float | None = None) -> None:
        """Drive the chip until :meth:`stop` or for ``seconds``."""
        deadline = None if seconds is None else time.monotonic() + seconds
        backoff = self.backoff_min_s
        next_attempt = 0.0
        next_tick = 0.0
        try:
            while not self._stop.is_set():
                mono = time.monotonic()
                if deadline is not None and mono >= deadline:
                    break
                self._run_pending()
                wanted = self._network_up and self.core.link_wanted(self.clock())
                if not wanted and self._socket_open:
                    self._drop_link()
                elif wanted and not self._socket_open and mono >= next_attempt:
                    if self._try_connect():
                        backoff = self.backoff_min_s
                    else:
                        next_attempt = mono + backoff
                        backoff = min(self.backoff_max_s, backoff * 2)
                if self._socket_open:
                    rc = self.client.loop(timeout=min(self.tick_s, 0.05))
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not self._connected:
                        # The socket broke; paho reported it via on_disconnect.
                        self._socket_open = False
                        next_attempt = mono + backoff
                        backoff = min(self.backoff_max_s, backoff * 2)
                else:
                    time.sleep(min(self.tick_s, 0.05))
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_s
                    self._publish(self.core.tick(self.clock()))
        finally:
            if self._socket_open:
                self.client.disconnect()
                self.client.loop(timeout=0.1)
            self._connected = False

    def _run_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for fn in pending:
            try:
                fn()
            except Exception:
                log.exception("chip %s: scheduled call failed", self.device_id)

    def _try_connect(self) -> bool:
        try:
            self.client.connect(self.addr.host, self.addr.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            log.info("chip %s: cannot connect to %s: %s", self.device_id, self.addr, exc)
            return False
        self._socket_open = True
        return True

    def _drop_link(self) -> None:
        """The network goes away. A clean DISCONNECT keeps the test fast; the core
        cannot tell the difference (it buffers from now on either way)."""
        self.client.disconnect()
        self.client.loop(timeout=0.05)
        self._socket_open = False
        if self._connected:
            self._connected = False
            self.core.on_disconnect()
