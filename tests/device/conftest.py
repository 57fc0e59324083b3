"""Fixtures for device tests against real brokers: free ports, the embedded amqtt
broker running on its own event loop thread, the ``broker`` parametrised over the
embedded broker and Mosquitto (when WELDGUARD_TEST_MQTT_URL names one; the unlock
tests use it too), registered chips, and small synchronous paho-mqtt clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW
from weldguard.config import Settings
from weldguard.device.broker import EmbeddedBroker, start_embedded_broker
from weldguard.device.mqtt_url import parse_mqtt_url
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets

T = TypeVar("T")
TIMEOUT = 5.0
# paho 2 reports an MQTT 3.1.1 CONNACK refusal as the v5 reason code: 134 bad user
# name or password, 135 not authorised (what amqtt and Mosquitto send).
REFUSED = frozenset({134, 135})
MQTT_URL = os.environ.get("WELDGUARD_TEST_MQTT_URL")
BROKERS = ["embedded"] + (["mosquitto"] if MQTT_URL else [])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


class LoopThread:
    """An asyncio loop on a daemon thread, so synchronous tests can drive
    clients while the broker runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def embedded_broker(
    loop_thread: LoopThread, session_factory: sessionmaker[Session], settings: Settings
) -> Iterator[EmbeddedBroker]:
    broker = loop_thread.run(
        start_embedded_broker(
            "127.0.0.1", free_port(), session_factory, settings.resolved_secret_key()
        )
    )
    try:
        yield broker
    finally:
        loop_thread.run(broker.stop(), timeout=10)


@contextlib.contextmanager
def embedded_broker_thread(
    session_factory: sessionmaker[Session], secret: str
) -> Iterator[EmbeddedBroker]:
    """The embedded broker (checking the chips' credentials) on a free port and a
    loop thread of its own, so that the test's own loop stays free for clients."""
    thread = LoopThread()
    try:
        embedded = thread.run(
            start_embedded_broker("127.0.0.1", free_port(), session_factory, secret)
        )
        try:
            yield embedded
        finally:
            thread.run(embedded.stop(), timeout=10)
    finally:
        thread.close()


@dataclass
class Broker:
    kind: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@pytest.fixture(params=BROKERS)
def broker(
    request: pytest.FixtureRequest,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> Iterator[Broker]:
    """Each test runs on the embedded broker, and on Mosquitto too when
    WELDGUARD_TEST_MQTT_URL names one (shared by parallel tests: use unique ids)."""
    if request.param == "mosquitto":
        assert MQTT_URL
        address = parse_mqtt_url(MQTT_URL)
        yield Broker("mosquitto", address.host, address.port)
        return
    with embedded_broker_thread(session_factory, settings.resolved_secret_key()) as embedded:
        yield Broker("embedded", embedded.host, embedded.port)


@pytest.fixture
def register_chip(db: Session, settings: Settings) -> Callable[[int], tuple[str, str]]:
    """register_chip(n) -> (device_id, secret), committed so the broker sees it."""

    def register(n: int) -> tuple[str, str]:
        registry = DeviceRegistry(db, DeviceSecrets(settings.resolved_secret_key()))
        chip, secret = registry.register(
            ChipInput(f"WGB{n:06d}", f"88{n:013d}", f"8986{n:016d}", "1.0.0"), NOW
        )
        db.commit()
        return chip.device_id, secret

    return register


@dataclass
class MqttClient:
    """A paho client with a received-message queue and blocking helpers."""

    client: mqtt.Client
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    _subacks: queue.Queue[list[int]] = field(default_factory=queue.Queue)

    def subscribe(self, topic: str, qos: int = 1, timeout: float = TIMEOUT) -> int:
        """Granted QoS, or 128 when the broker refused the subscription."""
        result, _mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        return self._subacks.get(timeout=timeout)[0]

    def publish(self, topic: str, payload: bytes, qos: int = 1, timeout: float = TIMEOUT) -> None:
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(timeout)

    def expect(self, timeout: float = TIMEOUT) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)

    def expect_nothing(self, wait: float = 0.7) -> None:
        with contextlib.suppress(queue.Empty):
            got = self.messages.get(timeout=wait)
            raise AssertionError(f"unexpected message {got!r}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def mqtt_connect(
    host: str,
    port: int,
    client_id: str,
    username: str | None,
    password: str | None,
    timeout: float = TIMEOUT,
) -> tuple[int, MqttClient | None]:
    """Connects with MQTT 3.1.1 (what amqtt speaks). Returns the CONNACK code
    (0 = accepted, see REFUSED, -1 = connection dropped without a CONNACK) and,
    when accepted, a connected client; a refused client is already stopped."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    wrapper = MqttClient(client)
    outcome: queue.Queue[int] = queue.Queue()

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        outcome.put(int(reason.value) if reason.is_failure else 0)

    def on_disconnect(_c: Any, _u: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        outcome.put(-1)

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        wrapper.messages.put((message.topic, bytes(message.payload)))

    def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: list[Any], _props: Any) -> None:
        wrapper._subacks.put([int(r.value) for r in reasons])

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    if username is not None:
        client.username_pw_set(username, password)
    client.connect(host, port, keepalive=30)
    # Drive the handshake on this thread: a background loop would sit out paho's
    # one-second reconnect delay before it could be stopped after a refusal.
    deadline = time.monotonic() + timeout
    while outcome.empty():
        if time.monotonic() > deadline:
            client.disconnect()
            raise TimeoutError(f"no CONNACK from {host}:{port}")
        client.loop(0.05)
    code = outcome.get_nowait()
    if code != 0:
        with contextlib.suppress(Exception):
            client.disconnect()
        return code, None
    client.loop_start()
    return 0, wrapper


@pytest.fixture
def mqtt_clients() -> Iterator[list[MqttClient]]:
    """Clients appended here are closed after the test, even when it fails."""
    clients: list[MqttClient] = []
    yield clients
    for c in clients:
        c.close()
