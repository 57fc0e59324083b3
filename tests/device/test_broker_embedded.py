"""The embedded amqtt broker with per-device credentials and topic rules, driven by
real paho-mqtt clients over TCP."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.device.conftest import REFUSED, LoopThread, MqttClient, mqtt_connect
from weldguard.config import Settings
from weldguard.device.broker import (
    BrokerPortInUse,
    EmbeddedBroker,
    _SnapshotDict,
    platform_mqtt_credentials,
    start_embedded_broker,
)
from weldguard.device.broker_auth import topic_allowed
from weldguard.device.mqtt_url import MqttAddress, parse_mqtt_url
from weldguard.errors import InvalidInput

Register = Callable[[int], tuple[str, str]]


def _platform(
    broker: EmbeddedBroker,
    settings: Settings,
    clients: list[MqttClient],
    client_id: str = "ingest-1",
) -> MqttClient:
    user, password = platform_mqtt_credentials(settings.resolved_secret_key())
    code, client = mqtt_connect(broker.host, broker.port, client_id, user, password)
    assert code == 0 and client is not None
    clients.append(client)
    return client


def _chip(
    broker: EmbeddedBroker, device_id: str, secret: str, clients: list[MqttClient]
) -> MqttClient:
    code, client = mqtt_connect(broker.host, broker.port, device_id, device_id, secret)
    assert code == 0 and client is not None
    clients.append(client)
    return client


def test_logins(
    embedded_broker: EmbeddedBroker,
    register_chip: Register,
    settings: Settings,
    mqtt_clients: list[MqttClient],
) -> None:
    device_id, secret = register_chip(1)
    other_id, other_secret = register_chip(2)
    host, port = embedded_broker.host, embedded_broker.port

    _chip(embedded_broker, device_id, secret, mqtt_clients)
    _platform(embedded_broker, settings, mqtt_clients)

    assert mqtt_connect(host, port, other_id, other_id, secret)[0] in REFUSED
    assert mqtt_connect(host, port, "WGB999999", "WGB999999", "0" * 64)[0] in REFUSED
    # A chip's own credentials under another client id: refused.
    assert mqtt_connect(host, port, other_id, device_id, secret)[0] in REFUSED
    assert mqtt_connect(host, port, other_id, None, None)[0] in REFUSED
    assert mqtt_connect(host, port, "x", "weldguard-platform", other_secret)[0] in REFUSED


def test_topics(
    embedded_broker: EmbeddedBroker,
    register_chip: Register,
    settings: Settings,
    mqtt_clients: list[MqttClient],
) -> None:
    device_id, secret = register_chip(3)
    other_id, other_secret = register_chip(4)
    platform = _platform(embedded_broker, settings, mqtt_clients)
    assert platform.subscribe("wg/v1/+/up/#") == 1
    chip = _chip(embedded_broker, device_id, secret, mqtt_clients)
    other = _chip(embedded_broker, other_id, other_secret, mqtt_clients)

    chip.publish(f"wg/v1/{device_id}/up/hb", b'{"seq":1}')
    assert platform.expect() == (f"wg/v1/{device_id}/up/hb", b'{"seq":1}')

    # Posing as another chip, or writing outside up/: not delivered.
    chip.publish(f"wg/v1/{other_id}/up/hb", b'{"seq":666}')
    chip.publish(f"wg/v1/{device_id}/up/nope", b"{}")
    chip.publish(f"wg/v1/{device_id}/down/cmd", b"{}")
    platform.expect_nothing()

    assert other.subscribe(f"wg/v1/{other_id}/down/cmd") == 1
    assert chip.subscribe(f"wg/v1/{device_id}/down/cmd") == 1
    # Eavesdropping on another chip's commands, or on everything: refused.
    assert chip.subscribe(f"wg/v1/{other_id}/down/cmd") == 0x80
    assert chip.subscribe("wg/v1/+/down/cmd") == 0x80
    assert chip.subscribe("#") == 0x80

    platform.publish(f"wg/v1/{other_id}/down/cmd", b'{"cmd":"lock"}')
    assert other.expect() == (f"wg/v1/{other_id}/down/cmd", b'{"cmd":"lock"}')
    platform.publish(f"wg/v1/{device_id}/down/cmd", b'{"cmd":"unlock"}')
    assert chip.expect() == (f"wg/v1/{device_id}/down/cmd", b'{"cmd":"unlock"}')
    chip.expect_nothing(0.3)

    # The platform stays inside wg/v1/.
    assert platform.subscribe("other/#") == 0x80


def test_shared_subscription_is_delivered(
    embedded_broker: EmbeddedBroker,
    register_chip: Register,
    settings: Settings,
    mqtt_clients: list[MqttClient],
) -> None:
    device_id, secret = register_chip(8)
    ingest = _platform(embedded_broker, settings, mqtt_clients)
    assert ingest.subscribe("$share/ingest/wg/v1/+/up/#") == 1
    chip = _chip(embedded_broker, device_id, secret, mqtt_clients)
    assert chip.subscribe(f"$share/x/wg/v1/{device_id}/down/#") == 0x80
    chip.publish(f"wg/v1/{device_id}/up/evt", b"shared")
    assert ingest.expect() == (f"wg/v1/{device_id}/up/evt", b"shared")
    ingest.client.unsubscribe("$share/ingest/wg/v1/+/up/#")
    ingest.expect_nothing(0.2)  # lets the UNSUBACK through
    chip.publish(f"wg/v1/{device_id}/up/evt", b"after unsubscribe")
    ingest.expect_nothing()


def test_wrong_password_does_not_kick_the_real_chip(
    embedded_broker: EmbeddedBroker,
    register_chip: Register,
    settings: Settings,
    mqtt_clients: list[MqttClient],
) -> None:
    device_id, secret = register_chip(5)
    chip = _chip(embedded_broker, device_id, secret, mqtt_clients)
    assert chip.subscribe(f"wg/v1/{device_id}/down/cmd") == 1
    host, port = embedded_broker.host, embedded_broker.port
    assert mqtt_connect(host, port, device_id, device_id, "f" * 64)[0] in REFUSED
    platform = _platform(embedded_broker, settings, mqtt_clients)
    platform.publish(f"wg/v1/{device_id}/down/cmd", b"still here")
    assert chip.expect() == (f"wg/v1/{device_id}/down/cmd", b"still here")


def test_lookups_are_cached_and_new_chips_get_in(
    embedded_broker: EmbeddedBroker, register_chip: Register, mqtt_clients: list[MqttClient]
) -> None:
    device_id, secret = register_chip(6)
    host, port = embedded_broker.host, embedded_broker.port
    for _ in range(3):
        code, client = mqtt_connect(host, port, device_id, device_id, secret)
        assert code == 0 and client is not None
        client.close()
    assert embedded_broker.auth.cache.queries == 1
    # Registered after the broker had looked it up and not found it.
    assert mqtt_connect(host, port, "WGB000007", "WGB000007", "0" * 64)[0] in REFUSED
    new_id, new_secret = register_chip(7)
    embedded_broker.auth.cache.invalidate(new_id)  # instead of waiting out the negative TTL
    _chip(embedded_broker, new_id, new_secret, mqtt_clients)


def test_port_taken(
    loop_thread: LoopThread, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerPortInUse) as caught:
            loop_thread.run(
                start_embedded_broker(
                    "127.0.0.1", port, session_factory, settings.resolved_secret_key()
                )
            )
    message = str(caught.value)
    assert f"MQTT 端口 127.0.0.1:{port} 已被占用（another broker is running?）" in message
    assert "WELDGUARD_MQTT_URL" in message and "WELDGUARD_MQTT_LISTEN_PORT" in message
    assert caught.value.status_code == 503


def test_topic_policy() -> None:
    assert topic_allowed("WGB000001", "WGB000001", "wg/v1/WGB000001/up/tel", "publish")
    assert not topic_allowed("WGB000001", "WGB000001", "wg/v1/WGB000001/up/tel/x", "publish")
    assert not topic_allowed("WGB000001", "other", "wg/v1/WGB000001/up/tel", "publish")
    assert not topic_allowed("WGB000001", "WGB000001", "wg/v1/WGB000001/down/cmd", "publish")
    assert topic_allowed("WGB000001", "WGB000001", "wg/v1/WGB000001/down/cmd", "receive")
    assert not topic_allowed("WGB000001", "WGB000001", "wg/v1/WGB000002/down/cmd", "receive")
    assert not topic_allowed("WG+1", "WG+1", "wg/v1/WG+1/down/cmd", "subscribe")
    assert not topic_allowed(None, None, "wg/v1/x/up/hb", "publish")
    assert topic_allowed("weldguard-platform", "c", "$share/g/wg/v1/+/up/#", "subscribe")
    assert not topic_allowed("weldguard-platform", "c", "$share/g/#", "subscribe")
    assert not topic_allowed("weldguard-platform", "c", "$share//wg/v1/#", "subscribe")
    assert not topic_allowed("weldguard-platform", "c", "$SYS/#", "subscribe")


def test_parse_mqtt_url() -> None:
    assert parse_mqtt_url("mqtt://127.0.0.1") == MqttAddress("127.0.0.1", 1883, False)
    assert parse_mqtt_url("mqtts://broker.example.cn:8884") == MqttAddress(
        "broker.example.cn", 8884, True
    )
    address = parse_mqtt_url(" mqtt://u:p%40ss@mq:1884 ")
    assert address == MqttAddress("mq", 1884, False, "u", "p@ss")
    assert "p@ss" not in repr(address) and "p@ss" not in str(address)
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "127.0.0.1:1883"):
        with pytest.raises(InvalidInput) as caught:
            parse_mqtt_url(bad)
        assert "p@" not in str(caught.value)


def test_subscription_table_iterates_over_a_snapshot(embedded_broker: EmbeddedBroker) -> None:
    # amqtt awaits inside its loops over the subscription table; a chip that
    # subscribes meanwhile must not abort a broadcast (and lose the message).
    table = embedded_broker._broker._subscriptions
    assert isinstance(table, _SnapshotDict)
    table["wg/v1/A/down/cmd"] = []
    for key in table:
        table[key + "/x"] = []
    for key, _ in table.items():
        table[key + "/y"] = []
    assert "wg/v1/A/down/cmd/x/y" in table
