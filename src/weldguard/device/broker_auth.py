"""Who may connect to the embedded amqtt broker and which topics each may use.

Identity rules (docs/protocol.md): a chip connects with client id = username =
its device id and its 64-hex secret as password; it may publish only under its
own ``wg/v1/{id}/up/{hello|hb|tel|evt|ack}`` and subscribe only to its own
``wg/v1/{id}/down/cmd``. The platform's own clients (ingest, command sender) log in
as ``weldguard-platform`` with a password derived from the platform secret and
may use anything under ``wg/v1/`` plus shared subscriptions of it.

amqtt instantiates plugins itself from dotted class paths, so the plugins cannot be
handed a database session factory directly. ``start_embedded_broker`` registers a
``BrokerAuthContext`` under a key and passes the key in the plugins' config; the
plugins look it up when amqtt creates them. Several brokers (tests) can coexist.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from cryptography.fernet import InvalidToken
from sqlalchemy.orm import Session, sessionmaker

from weldguard.crypto import derive_key
from weldguard.device.repository import DeviceRepository

if TYPE_CHECKING:
    from weldguard.device.registry import DeviceSecrets

log = logging.getLogger(__name__)

PLATFORM_USERNAME = "weldguard-platform"
PLATFORM_KEY_PURPOSE = b"weldguard mqtt platform v1"
TOPIC_ROOT = "wg/v1/"
UP_KINDS = frozenset({"hello", "hb", "tel", "evt", "ack"})
# Device ids are validated at registration (machine.service.DEVICE_ID_RE); checking
# again here keeps a wildcard or a slash in a username from ever reaching a topic.
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,32}$")
_LOG_LIMIT = 200


def platform_password(platform_secret: str) -> str:
    return derive_key(platform_secret, PLATFORM_KEY_PURPOSE).hex()


def platform_mqtt_credentials(platform_secret: str) -> tuple[str, str]:
    """(username, password) of the platform's own MQTT clients."""
    return PLATFORM_USERNAME, platform_password(platform_secret)


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= _LOG_LIMIT else text[:_LOG_LIMIT] + "…"


def _same(given: str, expected: str) -> bool:
    # compare_digest on str refuses non-ASCII; bytes work for any password a
    # client may send, and the comparison stays constant-time.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


# --- topic rules (pure; also the reference for the Mosquitto ACL) -------------


def device_may_publish(device_id: str, topic: str) -> bool:
    prefix = f"{TOPIC_ROOT}{device_id}/up/"
    return topic.startswith(prefix) and topic[len(prefix) :] in UP_KINDS


def device_may_subscribe(device_id: str, topic_filter: str) -> bool:
    # Exact match only: a wildcard filter such as wg/v1/+/down/cmd must not pass.
    return topic_filter == f"{TOPIC_ROOT}{device_id}/down/cmd"


def _under_root(topic: str) -> bool:
    return topic.startswith(TOPIC_ROOT)


def platform_may_subscribe(topic_filter: str) -> bool:
    if topic_filter.startswith("$share/"):
        # $share/{group}/{filter}: the group is one non-empty level without wildcards.
        parts = topic_filter.split("/", 2)
        if len(parts) != 3 or not parts[1] or "+" in parts[1] or "#" in parts[1]:
            return False
        return _under_root(parts[2])
    return _under_root(topic_filter)


def topic_allowed(username: str | None, client_id: str | None, topic: str, action: str) -> bool:
    """The whole access policy. action is amqtt's Action value: publish,
    subscribe (topic is a filter) or receive (the broker delivering a message)."""
    if not username or not topic:
        return False
    if username == PLATFORM_USERNAME:
        if action == "subscribe":
            return platform_may_subscribe(topic)
        return _under_root(topic)
    if username != client_id or not _DEVICE_ID_RE.match(username):
        return False
    if action == "publish":
        return device_may_publish(username, topic)
    if action in ("subscribe", "receive"):
        return device_may_subscribe(username, topic)
    return False


# --- credentials ------------------------------------------------------------


@dataclass
class _Entry:
    secret: str | None
    fetched_at: float


class DeviceCredentialCache:
    """Device secrets looked up in the database (in a worker thread) and kept for a
    short while, so that a reconnect storm of a whole fleet costs one query per
    chip rather than one per attempt. Unknown ids are remembered for less time so
    a freshly registered chip gets in quickly. Concurrent lookups of one id share
    a single query."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        device_secrets: DeviceSecrets,
        *,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        refresh_after: float = 5.0,
        max_entries: int = 500_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self._secrets = device_secrets
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        # After a wrong password, re-read the secret (it may have been rotated) but
        # no more often than this, so that guessing cannot hammer the database.
        self.refresh_after = refresh_after
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[_Entry]] = {}
        self.queries = 0  # for tests and metrics

    async def verify(self, device_id: str, password: str) -> bool:
        entry = await self._get(device_id)
        if entry.secret is not None and _same(password, entry.secret):
            return True
        if self._clock() - entry.fetched_at >= self.refresh_after:
            entry = await self._fetch(device_id)
            return entry.secret is not None and _same(password, entry.secret)
        return False

    def invalidate(self, device_id: str | None = None) -> None:
        if device_id is None:
            self._entries.clear()
        else:
            self._entries.pop(device_id, None)

    async def _get(self, device_id: str) -> _Entry:
        entry = self._entries.get(device_id)
        if entry is not None:
            ttl = self.ttl if entry.secret is not None else self.negative_ttl
            if self._clock() - entry.fetched_at < ttl:
                return entry
        return await self._fetch(device_id)

    async def _fetch(self, device_id: str) -> _Entry:
        pending = self._inflight.get(device_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[device_id] = future
        try:
            self.queries += 1
            secret = await asyncio.to_thread(self._load, device_id)
            entry = _Entry(secret, self._clock())
            self._remember(device_id, entry)
            future.set_result(entry)
            return entry
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; retrieving the exception keeps asyncio
            # from logging "exception was never retrieved".
            future.exception()
            raise
        finally:
            del self._inflight[device_id]

    def _remember(self, device_id: str, entry: _Entry) -> None:
        self._entries.pop(device_id, None)
        self._entries[device_id] = entry
        # Bounded: ids that never existed (scans, typos) must not grow memory forever.
        # Dicts keep insertion order, so the first keys are the oldest lookups.
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def _load(self, device_id: str) -> str | None:
        with self._session_factory() as session:
            chip = DeviceRepository(session).chip_with_secret(device_id)
            if chip is None:
                return None
            try:
                return self._secrets.open(chip)
            except InvalidToken:
                # Sealed under another platform secret: the chip cannot log in, and
                # the operator needs to know, but never with the ciphertext.
                log.warning("device %s: stored secret does not decrypt", _short(device_id))
                return None


@dataclass
class BrokerAuthContext:
    """What the broker plugins need from the platform."""

    session_factory: sessionmaker[Session]
    device_secrets: DeviceSecrets
    platform_password: str
    cache_ttl: float = 30.0
    cache: DeviceCredentialCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = DeviceCredentialCache(
            self.session_factory, self.device_secrets, ttl=self.cache_ttl
        )

    async def authenticate(
        self, client_id: str | None, username: str | None, password: str | None
    ) -> bool:
        if not username or password is None:
            return False
        if username == PLATFORM_USERNAME:
            return _same(password, self.platform_password)
        if username != client_id or not _DEVICE_ID_RE.match(username):
            return False
        return await self.cache.verify(username, password)


_contexts: dict[str, BrokerAuthContext] = {}


def register_context(key: str, context: BrokerAuthContext) -> None:
    _contexts[key] = context


def unregister_context(key: str) -> None:
    _contexts.pop(key, None)


def get_context(key: str) -> BrokerAuthContext:
    try:
        return _contexts[key]
    except KeyError:
        raise LookupError(
            f"no BrokerAuthContext registered under {key!r}; start the broker with "
            "weldguard.device.broker.start_embedded_broker"
        ) from None


# --- amqtt plugins ------------------------------------------------------------


class DeviceAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt authentication: platform user or a registered chip with its secret."""

    @dataclass
    class Config:
        context: str = "default"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._auth = get_context(self.config.context)

    async def authenticate(self, *, session: Any) -> bool | None:
        client_id = getattr(session, "client_id", None)
        try:
            ok = await self._auth.authenticate(
                client_id, getattr(session, "username", None), getattr(session, "password", None)
            )
        except Exception as exc:
            # A database outage refuses logins; it must never take the broker down.
            # The message names the failure, never the password.
            log.warning(
                "MQTT authentication of %s failed with %s: %s",
                _short(client_id),
                type(exc).__name__,
                _short(exc),
            )
            return False
        if not ok:
            log.info("MQTT login refused for client %s", _short(client_id))
        return ok


class DeviceTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """amqtt topic filtering for publish, subscribe and delivery."""

    @dataclass
    class Config:
        context: str = "default"

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Any = None
    ) -> bool | None:
        try:
            if session is None or topic is None or action is None:
                return False
            allowed = topic_allowed(session.username, session.client_id, topic, str(action))
        except Exception as exc:
            log.warning("MQTT topic check failed with %s: %s", type(exc).__name__, _short(exc))
            return False
        if not allowed and str(action) != "receive":
            log.info(
                "MQTT %s refused for client %s on %s",
                _short(action),
                _short(session.client_id),
                _short(topic),
            )
        return allowed
