"""MqttLink without a broker: what its callbacks do with a failing owner. The
connection loop itself runs against real brokers in test_command_delivery.py
(the dispatcher) and tests/unlock/test_command_bus.py (the command bus)."""

from __future__ import annotations

import logging

import pytest

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
