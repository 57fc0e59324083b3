"""The reference chip against a real broker: the embedded amqtt broker always,
Mosquitto too when WELDGUARD_TEST_MQTT_URL is set."""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from weldguard.sim.chip import ChipConfig, ChipCore, canonical_bytes
from weldguard.sim.transport import ChipTransport, command_topic, parse_broker_url

from .test_chip_core import signed

MOSQUITTO_URL = os.environ.get("WELDGUARD_TEST_MQTT_URL")
BROKERS = ["amqtt"] + (["mosquitto"] if MOSQUITTO_URL else [])
TIMEOUT = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt on its own event loop in a thread, so that paho's blocking clients and
    the synchronous tests can talk to it."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.broker: Any = None

    def start(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self.thread.start()

        async def boot() -> None:
            self.broker = Broker(config)
            await self.broker.start()

        asyncio.run_coroutine_threadsafe(boot(), self.loop).result(TIMEOUT)

    def stop(self) -> None:
        if self.broker is not None:
            asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def embedded_broker() -> Iterator[str]:
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield f"mqtt://127.0.0.1:{broker.port}"
    finally:
        broker.stop()


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "amqtt":
        return str(request.getfixturevalue("embedded_broker"))
    assert MOSQUITTO_URL
    return MOSQUITTO_URL


class Observer:
    """The platform's side: watches one device's up/ topics and sends commands."""

    def __init__(self, url: str, device_id: str) -> None:
        addr = parse_broker_url(url)
        self.device_id = device_id
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:12]}"
        )
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.messages.put(
            (m.topic.rsplit("/", 1)[1], orjson.loads(m.payload))
        )
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"wg/v1/{device_id}/up/#", qos=1)
        self.client.connect(addr.host, addr.port, keepalive=30)
        self.client.loop_start()
        assert subscribed.wait(TIMEOUT), "observer did not subscribe"

    def send(self, command: dict[str, Any]) -> None:
        self.client.publish(command_topic(self.device_id), orjson.dumps(command), qos=1)

    def wait_for(self, pred: Any, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("expected message did not arrive")
            try:
                kind, msg = self.messages.get(timeout=left)
            except queue.Empty as exc:
                raise AssertionError("expected message did not arrive") from exc
            if pred(kind, msg):
                return kind, msg

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def chip_and_observer(broker_url: str) -> Iterator[tuple[ChipTransport, Observer, str]]:
    device_id = f"sim-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_hex(32)
    observer = Observer(broker_url, device_id)
    now = int(time.time() * 1000)
    core = ChipCore(ChipConfig(device_id=device_id, secret_hex=secret, seed=7), now)
    transport = ChipTransport(core, broker_url, tick_s=0.05)
    transport.start()
    try:
        observer.wait_for(lambda k, m: k == "hello" and m["boot"] is True)
        yield transport, observer, secret
    finally:
        transport.stop()
        observer.close()


def test_signed_unlock_gets_ack_and_event(
    chip_and_observer: tuple[ChipTransport, Observer, str],
) -> None:
    transport, observer, secret = chip_and_observer
    now = int(time.time() * 1000)
    unlock = signed(
        transport.device_id,
        secret,
        "unlock",
        {"sess": "s-1", "welder": "w-1", "until": now + 60_000},
        now,
    )
    started = time.monotonic()
    observer.send(unlock)
    _, ack = observer.wait_for(lambda k, m: k == "ack" and m["id"] == unlock["id"])
    latency = time.monotonic() - started
    assert ack["ok"] is True and ack["code"] == 0 and ack["state"] == "unlocked"
    _, evt = observer.wait_for(lambda k, m: k == "evt" and m["type"] == "unlocked")
    assert evt["sess"] == "s-1" and evt["cmd_id"] == unlock["id"]
    assert evt["seq"] > ack["seq"]
    # TCP_NODELAY on the chip's socket (and asyncio/Mosquitto on the others).
    assert latency < 1.0

    forged = signed(transport.device_id, secret, "lock", {}, now)
    forged["sig"] = "0" * 64
    observer.send(forged)
    _, nack = observer.wait_for(lambda k, m: k == "ack" and m["id"] == forged["id"])
    assert nack["ok"] is False and nack["code"] == 1 and nack["state"] == "unlocked"
    assert len(canonical_bytes(unlock)) > 0


def test_buffered_messages_replay_after_reconnect(
    chip_and_observer: tuple[ChipTransport, Observer, str],
) -> None:
    transport, observer, _ = chip_and_observer

    # Heartbeats every tick make the outage visible quickly.
    def fast_heartbeats() -> None:
        transport.core.hb_s = 0
        transport.core.next_hb_ms = 0

    transport.call_soon(fast_heartbeats)
    first = observer.wait_for(lambda k, m: k == "hb" and m["buf"] is False)[1]
    observer.wait_for(lambda k, m: k == "hb" and m["seq"] > first["seq"])
    transport.set_network(False)
    deadline = time.monotonic() + TIMEOUT
    while transport.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not transport.connected
    time.sleep(0.5)  # ~10 heartbeats buffered at a 50 ms tick
    buffered = len(transport.core.buffer)
    assert buffered >= 3
    transport.set_network(True)

    _, hello = observer.wait_for(lambda k, m: k == "hello" and m["boot"] is False)
    assert hello["buf_count"] >= buffered
    replayed: list[dict[str, Any]] = []
    live_after: list[dict[str, Any]] = []
    while len(replayed) < buffered:
        _, msg = observer.wait_for(lambda k, m: True)
        (replayed if msg["buf"] else live_after).append(msg)
    seqs = [m["seq"] for m in replayed]
    assert seqs == sorted(seqs), "replayed oldest first"
    assert all(m["seq"] < hello["seq"] for m in replayed), "original seq kept"
    assert all(m["seq"] > hello["seq"] for m in live_after), "live messages get new seq"


def test_fleet_publishes_and_answers_commands(broker_url: str) -> None:
    from weldguard.sim.fleet import Fleet, generate_devices

    devices = generate_devices(6, prefix=f"F{uuid.uuid4().hex[:8]}-", seed=3)
    target = devices[0]
    observer = Observer(broker_url, target.device_id)
    fleet = Fleet(devices, broker_url, misbehaving=0.5, tick_s=0.05, seed=3)
    assert len(fleet.misbehaving) == 3
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(fleet.run(3.0),))
    thread.start()
    try:
        observer.wait_for(lambda k, m: k == "hello" and m["boot"] is True)
        now = int(time.time() * 1000)
        ping = signed(target.device_id, target.secret, "ping", {}, now)
        observer.send(ping)
        _, ack = observer.wait_for(lambda k, m: k == "ack" and m["id"] == ping["id"])
        assert ack["code"] == 0
    finally:
        thread.join(15)
        loop.close()
        observer.close()
    assert not thread.is_alive()
    assert fleet.stats.connects >= 6 - sum(c.core.flags.go_offline for c in fleet.chips)
    assert fleet.stats.callback_errors == 0


def test_cli_help() -> None:
    from typer.testing import CliRunner

    from weldguard.sim.cli import sim_app

    runner = CliRunner()
    for args in (["chip", "--help"], ["fleet", "--help"]):
        result = runner.invoke(sim_app, args)
        assert result.exit_code == 0, result.output
    assert "--devices-file" in runner.invoke(sim_app, ["fleet", "--help"]).output
