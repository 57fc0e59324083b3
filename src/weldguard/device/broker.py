"""The embedded MQTT broker (amqtt) that `weldguard serve` runs when no external
broker is configured, with per-device authentication and topic rules from
weldguard.device.broker_auth.

amqtt speaks MQTT 3.1.1 only and has no shared subscriptions; here a
`$share/{group}/{filter}` subscription is treated as a plain subscription to
`{filter}`, so an ingest worker configured with a share group still gets every
message (one process, one worker: exactly the shared semantics; several workers
would each get everything, which the (device, seq) de-duplication absorbs).
Production fleets use Mosquitto (weldguard.device.mosquitto) or EMQX."""

from __future__ import annotations

import errno
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.utils import gen_client_id
from sqlalchemy.orm import Session, sessionmaker

from weldguard.device.broker_auth import (
    BrokerAuthContext,
    platform_mqtt_credentials,
    platform_password,
    register_context,
    unregister_context,
)
from weldguard.device.registry import DeviceSecrets
from weldguard.errors import DomainError, InvalidInput

__all__ = [
    "BrokerPortInUse",
    "EmbeddedBroker",
    "platform_mqtt_credentials",
    "start_embedded_broker",
]

log = logging.getLogger(__name__)

_AUTH_PLUGIN = "weldguard.device.broker_auth.DeviceAuthPlugin"
_TOPIC_PLUGIN = "weldguard.device.broker_auth.DeviceTopicPlugin"


class BrokerPortInUse(DomainError):
    status_code = 503
    code = "broker_port_in_use"

    @classmethod
    def at(cls, host: str, port: int) -> BrokerPortInUse:
        return cls(
            f"MQTT 端口 {host}:{port} 已被占用（another broker is running?）："
            "设置 WELDGUARD_MQTT_URL 使用现有代理，或用 WELDGUARD_MQTT_LISTEN_PORT 换一个端口"
        )


def _probe_port(host: str, port: int) -> None:
    """Fail early, with a message an operator can act on, when something already
    listens there (typically a system Mosquitto on 1883). SO_REUSEADDR as amqtt
    uses it, so a port in TIME_WAIT from our own last run does not count."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise InvalidInput(f"无法解析 MQTT 监听地址 {host}（{exc.strerror}）") from None
    for family, type_, proto, _name, address in infos:
        with socket.socket(family, type_, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise BrokerPortInUse.at(host, port) from exc
                raise


def _address_in_use(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _SnapshotDict(dict[str, Any]):
    """amqtt 0.12 iterates its subscription table across awaits (broadcast, retained
    messages on connect); a chip subscribing meanwhile raised "dictionary changed
    size during iteration" and the message being broadcast was lost for every
    subscriber. Iterating over a snapshot makes those loops safe."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> Any:
        return list(super().items())


class _AuthFirstBroker(Broker):  # type: ignore[misc]
    """amqtt 0.12 looks up (and, for a clean session, deletes) the session of the
    CONNECT's client id before it authenticates, so anyone who knows a device id
    (it is printed on the label) could disconnect that chip and wipe its
    subscription with a wrong password. This authenticates first and only then
    runs amqtt's own session handling (copied from Broker._initialize_client_session;
    tests/device/test_broker_embedded.py guards it against amqtt upgrades)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _SnapshotDict(self._subscriptions)  # type: ignore[has-type]

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Any]:
        try:
            handler, client_session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except (AMQTTError, MQTTError, NoDataError) as exc:
            await _close_quietly(writer)
            raise AMQTTError(exc) from exc

        if not await self._authenticate(client_session, None):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await _close_quietly(writer)
            raise AMQTTError(f"client {str(client_session.client_id)[:64]!r} not authorized")

        if client_session.clean_session:
            if client_session.client_id:
                await self._delete_session(client_session.client_id)
            else:
                client_session.client_id = gen_client_id()
            client_session.parent = 0
        elif client_session.client_id in self._sessions:
            existing, _ = self._sessions[client_session.client_id]
            existing.will_flag = client_session.will_flag
            existing.will_message = client_session.will_message
            existing.will_topic = client_session.will_topic
            existing.will_qos = client_session.will_qos
            existing.keep_alive = client_session.keep_alive
            existing.username = client_session.username
            existing.password = client_session.password
            client_session = existing
            client_session.parent = 1
        else:
            client_session.parent = 0

        delay = self.config.get("timeout-disconnect-delay", 0)
        if client_session.keep_alive > 0 and isinstance(delay, int):
            client_session.keep_alive += delay
        return handler, client_session

    async def add_subscription(self, subscription: tuple[str, int], session: Any) -> int:
        # Without this, amqtt would file "$share/..." as a literal filter that no
        # topic matches, and a shared-subscription ingest would silently get nothing.
        topic_filter, qos = subscription
        return int(await super().add_subscription((_unshare(topic_filter), qos), session))

    def _del_subscription(self, a_filter: str, session: Any) -> int:
        return int(super()._del_subscription(_unshare(a_filter), session))


def _unshare(topic_filter: str) -> str:
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3 and parts[1] and parts[2]:
            return parts[2]
    return topic_filter


async def _close_quietly(writer: Any) -> None:
    try:
        await writer.close()
    except Exception as exc:  # the peer may already be gone
        log.debug("closing MQTT connection: %s", type(exc).__name__)


@dataclass
class EmbeddedBroker:
    host: str
    port: int
    auth: BrokerAuthContext
    _broker: Any
    _key: str
    _stopped: bool = False

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            await self._broker.shutdown()
        except Exception as exc:
            log.warning("embedded MQTT broker shutdown: %s: %s", type(exc).__name__, exc)
        finally:
            unregister_context(self._key)


async def start_embedded_broker(
    host: str,
    port: int,
    session_factory: sessionmaker[Session],
    platform_secret: str,
    *,
    cache_ttl: float = 30.0,
) -> EmbeddedBroker:
    """Starts amqtt on host:port with per-device authentication against the
    database. Raises BrokerPortInUse when the port is taken."""
    _probe_port(host, port)
    auth = BrokerAuthContext(
        session_factory=session_factory,
        device_secrets=DeviceSecrets(platform_secret),
        platform_password=platform_password(platform_secret),
        cache_ttl=cache_ttl,
    )
    key = uuid.uuid4().hex
    register_context(key, auth)
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only our two plugins: amqtt's defaults include an anonymous login and a
        # packet logger that would write CONNECT packets (passwords) at debug level.
        "plugins": {_AUTH_PLUGIN: {"context": key}, _TOPIC_PLUGIN: {"context": key}},
    }
    try:
        broker = _AuthFirstBroker(config)
        await broker.start()
    except Exception as exc:
        unregister_context(key)
        if _address_in_use(exc):
            raise BrokerPortInUse.at(host, port) from exc
        raise
    log.info("embedded MQTT broker listening on %s:%s", host, port)
    return EmbeddedBroker(host=host, port=port, auth=auth, _broker=broker, _key=key)
