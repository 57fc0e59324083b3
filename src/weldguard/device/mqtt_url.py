"""The one parser of broker addresses on the platform side (the simulator keeps
its own: it may use nothing but the protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from weldguard.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class MqttAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    # Never part of repr: an address may be logged.
    password: str | None = None

    def __repr__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"MqttAddress({scheme}://{user}{self.host}:{self.port})"

    __str__ = __repr__

    def with_credentials(self, username: str, password: str) -> MqttAddress:
        return MqttAddress(self.host, self.port, self.tls, username, password)


def parse_mqtt_url(url: str) -> MqttAddress:
    """mqtt://[user:pass@]host[:1883] or mqtts://…[:8883]. Errors never echo the URL:
    it may carry a password."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("mqtt", "tcp"):
        tls, default_port = False, 1883
    elif scheme in ("mqtts", "ssl", "tls"):
        tls, default_port = True, 8883
    else:
        raise InvalidInput("MQTT 地址应以 mqtt:// 或 mqtts:// 开头（e.g. mqtt://127.0.0.1:1883）")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("MQTT 地址的端口无效（expected 1–65535）") from None
    if not parts.hostname:
        raise InvalidInput("MQTT 地址缺少主机名（e.g. mqtt://127.0.0.1:1883）")
    return MqttAddress(
        host=parts.hostname,
        port=port or default_port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def mqtt_login(mqtt_url: str, platform_secret: str) -> MqttAddress:
    """The broker address with the URL's credentials when it has them (an
    operator's Mosquitto account), else with the platform's own account, which the
    embedded broker and the generated Mosquitto files both know."""
    from weldguard.device.broker_auth import platform_mqtt_credentials

    address = parse_mqtt_url(mqtt_url)
    if address.username:
        return address
    return address.with_credentials(*platform_mqtt_credentials(platform_secret))
