"""What we change in gmqtt's behaviour, in one place for the clients that keep a
connection loop of their own (the ingest worker, MqttLink): its own reconnection
turned off, and a disconnect that is bounded and never leaves a socket open.
These reach into gmqtt internals (0.6-0.8); ``disable_own_reconnect`` refuses to
run rather than silently keep the behaviour it is there to remove."""

from __future__ import annotations

import asyncio
from typing import Any


async def _no_reconnect(delay: bool = False) -> None:
    """Stands in for gmqtt's own reconnect (see ``disable_own_reconnect``)."""


def disable_own_reconnect(client: Any) -> None:
    """Turns gmqtt's own reconnection off, for a client whose owner reconnects with
    a loop (and a fresh client) of its own.

    ``set_config({"reconnect_retries": 0})`` does not: gmqtt's test is
    ``failed_connections <= reconnect_retries``, and a connection that got its
    CONNACK resets the failures to 0. So after a dropped connection gmqtt
    reconnects once, ``reconnect_delay`` later, even if ``disconnect()`` was called
    meanwhile (it checks only before its delay). With a fixed client id the client
    the owner's loop has given up then takes the session over from the loop's new
    connection, whose drop starts the next such reconnect, and the two kick each
    other off every second for ever. gmqtt's package handler reconnects through
    its ``_reconnect_callback`` (gmqtt 0.6-0.8) after a dropped connection, a
    refused CONNACK that may be retried and the MQTT 5 to 3.1.1 downgrade: the
    owner sees the drop (on_disconnect), the refusal (connect() raises) or, for the
    downgrade, a connect that times out."""
    handler = client._package_handler
    if not hasattr(handler, "_reconnect_callback"):
        raise RuntimeError("gmqtt has no _reconnect_callback: pin gmqtt 0.6-0.8")
    handler._reconnect_callback = _no_reconnect


def transport_of(client: Any) -> Any:
    """The client's asyncio transport, or None (not connected, or not yet)."""
    return getattr(getattr(client, "_connection", None), "_transport", None)


async def disconnect(client: Any, timeout: float) -> None:
    """``client.disconnect()`` (DISCONNECT, then the socket closed), waiting at most
    ``timeout``: a broker that does not answer must not hold its owner up.

    Timed out, failed or cancelled, the socket is dropped rather than left open
    (``disconnect()`` has marked the client inactive before any wait), and what
    ended it is raised: TimeoutError, gmqtt's error, or the cancellation.
    ``asyncio.timeout``, never ``asyncio.wait_for``: on Python 3.11 a wait_for
    cancelled just as what it awaits completes returns normally, losing the
    cancellation (CPython gh-86296, fixed in 3.12)."""
    try:
        async with asyncio.timeout(timeout):
            await client.disconnect()
    except BaseException:
        transport = transport_of(client)
        if transport is not None:
            transport.abort()
        raise
