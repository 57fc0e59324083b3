"""MqttLink: what its callbacks do with a failing owner, and its connection loop's
cancellation (a stand-in gmqtt client), without a broker; against real brokers
(the embedded amqtt broker always, Mosquitto too when WELDGUARD_TEST_MQTT_URL is
set): a dropped connection and a cancelled stop(). The dispatcher and the command
bus run it end to end in test_command_delivery.py and
tests/unlock/test_command_bus.py."""

from __future__ import annotations

import asyncio
import logging
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from gmqtt import Client as MQTTClient
from gmqtt.mqtt.constants import MQTTv311

from tests.device.cancellation import cancel_after_turns
from tests.device.conftest import Broker
from tests.device.test_command_delivery import run, until
from weldguard.config import Settings
from weldguard.device import mqtt_link
from weldguard.device.broker_auth import platform_mqtt_credentials
from weldguard.device.gmqtt_compat import disable_own_reconnect, disconnect
from weldguard.device.mqtt_link import LOG_TRUNCATE, MqttLink


def test_a_message_the_owner_fails_on_is_logged_truncated_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(topic: str, payload: bytes) -> None:
        raise ValueError("owner bug")

    link = MqttLink("test", client_prefix="test", on_message=broken)
    caplog.set_level(logging.ERROR, logger="weldguard.device.mqtt_link")
    payload = b"x" * (LOG_TRUNCATE * 5)
    # gmqtt's reason code for the PUBACK: success, so the broker does not redeliver it.
    assert link._on_message(object(), "wg/v1/D/up/ack", payload, 1, None) == 0
    assert link.message_errors == 1
    [record] = caplog.records
    assert "wg/v1/D/up/ack" in record.getMessage()
    assert "x" * LOG_TRUNCATE in record.getMessage()
    assert "x" * (LOG_TRUNCATE + 1) not in record.getMessage()


def test_callbacks_of_a_replaced_client_are_ignored() -> None:
    link = MqttLink("test", client_prefix="test")
    link._on_disconnect(object(), None)
    link._on_subscribe(object(), 1, [1], None)
    assert not link._disconnected.is_set() and not link._subscribed.is_set()


def test_nothing_is_published_while_not_connected() -> None:
    link = MqttLink("test", client_prefix="test")
    assert link.publish("wg/v1/D/down/cmd", b"{}") is False
    assert link.nodelay() is None and not link.connected and not link.running
    assert link.client_id.startswith("test-")


# ---------------------------------------------------------------------- cancellation
# Python 3.11's asyncio.wait_for returned normally when it was cancelled just as
# what it awaited completed (CPython gh-86296, fixed in 3.12): the cancellation was
# lost. The tests below cancel at each point of the wake-up chain in turn.

# A cancelled link ends within its bounded close (milliseconds normally).
STOP_S = 5.0


class FakeClient:
    """Stands in for gmqtt's Client: connect() returns when the test says so."""

    def __init__(self, client_id: str, clean_session: bool = True) -> None:
        self.client_id = client_id
        self._package_handler = SimpleNamespace(_reconnect_callback=self._reconnect)
        self.connecting = False
        self.connect_returns = asyncio.Event()
        self.disconnected = False

    async def _reconnect(self, delay: bool = False) -> None:
        raise AssertionError("gmqtt's own reconnect was left on")

    def set_config(self, config: dict[str, Any]) -> None:
        pass

    def set_auth_credentials(self, username: str, password: str | None = None) -> None:
        pass

    async def connect(self, host: str, port: int, **kwargs: Any) -> None:
        self.connecting = True
        await self.connect_returns.wait()

    async def disconnect(self) -> None:
        self.disconnected = True


def test_a_link_cancelled_as_its_connect_completes_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """A link whose cancellation was lost went on to wait for a disconnect that
    never came, and its owner's stop() waited for it for ever."""
    clients: list[FakeClient] = []

    def make_client(client_id: str, clean_session: bool = True) -> FakeClient:
        clients.append(FakeClient(client_id, clean_session))
        return clients[-1]

    monkeypatch.setattr(mqtt_link, "MQTTClient", make_client)

    async def scenario() -> None:
        for turns in range(6):
            clients.clear()
            link = MqttLink("test", client_prefix="test")
            link.start()
            task = link._task
            assert task is not None
            await until(lambda: bool(clients) and clients[0].connecting)
            clients[0].connect_returns.set()
            await cancel_after_turns(task, turns, "the link")
            # The loop closed its client on the way out.
            assert clients[0].disconnected and link._client is None and not link.connected
            await link.stop()
            assert len(clients) == 1

    run(scenario)


def test_wait_connected_keeps_a_cancellation_that_comes_as_the_link_connects() -> None:
    async def scenario() -> None:
        for turns in range(6):
            link = MqttLink("test", client_prefix="test")
            waiter = asyncio.create_task(link.wait_connected(10))
            await asyncio.sleep(0)
            link._connected.set()
            for _ in range(turns):
                await asyncio.sleep(0)
            # False when it had returned already: too late to be cancelled.
            requested = waiter.cancel()
            await asyncio.wait({waiter}, timeout=2)
            assert waiter.cancelled() or not requested, (
                f"wait_connected lost its cancellation after {turns} turns"
            )

    run(scenario)


def test_the_reconnect_hook_is_replaced_or_the_client_refused() -> None:
    client = FakeClient("test")
    disable_own_reconnect(client)
    assert client._package_handler._reconnect_callback is not client._reconnect
    # gmqtt would schedule it after a dropped connection: it does nothing.
    asyncio.run(client._package_handler._reconnect_callback(delay=True))
    client._package_handler = SimpleNamespace()
    with pytest.raises(RuntimeError, match="_reconnect_callback"):
        disable_own_reconnect(client)


# ---------------------------------------------------------------------- real brokers


def platform_link(broker: Broker, settings: Settings) -> MqttLink:
    username, password = platform_mqtt_credentials(settings.resolved_secret_key())
    return MqttLink(
        "test",
        client_prefix="test-link",
        host=broker.host,
        port=broker.port,
        username=username,
        password=password,
        # Renewed on every connect: the link counts as connected only after the SUBACK.
        subscriptions={f"wg/v1/{uuid.uuid4().hex[:12].upper()}/up/ack": 1},
    )


async def stop_link(link: MqttLink) -> None:
    stopping = asyncio.ensure_future(link.stop())
    done, _ = await asyncio.wait({stopping}, timeout=STOP_S)
    assert done, f"stop() did not end within {STOP_S} s"
    stopping.result()


def test_a_connection_the_broker_drops_is_reconnected_once(
    broker: Broker, settings: Settings
) -> None:
    """gmqtt reconnects by itself after a dropped connection, reconnect_retries 0
    or not, and disconnect() called or not: that client took the session (a fixed
    client id) over from the link's new connection a second later, whose drop
    started the next such reconnect, and the two took turns for ever."""
    link = platform_link(broker, settings)
    username, password = platform_mqtt_credentials(settings.resolved_secret_key())

    async def take_over() -> None:
        # A client with the link's id: the broker drops the link's connection.
        # With a persistent session, as gmqtt's own reconnect asks for: amqtt takes
        # over only such a session. It leaves at once, its own reconnect off.
        intruder = MQTTClient(link.client_id, clean_session=False)
        disable_own_reconnect(intruder)
        intruder.set_auth_credentials(username, password)
        async with asyncio.timeout(5):
            await intruder.connect(broker.host, broker.port, version=MQTTv311)
        await disconnect(intruder, 2)

    async def scenario() -> None:
        link.start()
        try:
            await link.wait_connected(10)
            assert link.connects == 1 and link.nodelay() is True
            await take_over()
            await until(lambda: link.connects >= 2 and link.connected)
            # gmqtt's own reconnect came a second after the drop.
            await asyncio.sleep(3)
            assert (link.connects, link.connected, link.connect_failures) == (2, True, 0)
        finally:
            await stop_link(link)
        assert not link.connected and not link.running

    run(scenario)


def test_stop_keeps_the_cancellation_of_its_caller(broker: Broker, settings: Settings) -> None:
    """stop() awaited the loop task under suppress(CancelledError): a cancellation of
    stop()'s caller was swallowed with the loop task's own, and the caller went on."""
    link = platform_link(broker, settings)

    async def owner() -> None:
        await link.stop()
        await asyncio.sleep(0)

    async def scenario() -> None:
        link.start()
        loop_task = link._task
        assert loop_task is not None
        try:
            await link.wait_connected(10)
            client = link._client
            caller = asyncio.create_task(owner())
            await asyncio.sleep(0)  # the caller waits in stop() for the loop to end
            caller.cancel()
            done, _ = await asyncio.wait({caller}, timeout=STOP_S)
            assert done and caller.cancelled()
            # The loop still ends, and closes its connection on the way out.
            done, _ = await asyncio.wait({loop_task}, timeout=STOP_S)
            assert done and loop_task.cancelled()
            assert link._client is None and not link.connected and not link.running
            transport = client._connection._transport
            assert transport is None or transport.is_closing()
        finally:
            loop_task.cancel()
            await stop_link(link)

    run(scenario)
