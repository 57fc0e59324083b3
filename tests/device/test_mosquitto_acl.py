"""The Mosquitto files the platform writes, enforced by a real Mosquitto 2 started
for the test on a free port (never the system one on 1883)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.device.conftest import REFUSED, MqttClient, free_port, mqtt_connect, wait_for_port
from weldguard.config import Settings, get_settings
from weldguard.device.broker import platform_mqtt_credentials
from weldguard.device.mosquitto import (
    acl_file_text,
    broker_app,
    password_file_line,
    sync_mosquitto_files,
    write_password_file,
)
from weldguard.device.registry import DeviceSecrets

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto = pytest.mark.skipif(
    not os.access(MOSQUITTO, os.X_OK), reason=f"Mosquitto not installed ({MOSQUITTO})"
)
Register = Callable[[int], tuple[str, str]]


def test_password_line_format() -> None:
    salt = bytes(range(12))
    line = password_file_line("WGB000001", "s3cret", salt=salt)
    user, rest = line.split(":", 1)
    _, seven, iterations, salt_b64, hash_b64 = rest.split("$")
    assert (user, seven, iterations) == ("WGB000001", "7", "101")
    assert base64.b64decode(salt_b64) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101, 64)
    assert base64.b64decode(hash_b64) == expected
    with pytest.raises(ValueError):
        password_file_line("evil:user", "x")


@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd not installed")
def test_password_line_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """mosquitto_passwd -U rehashes nothing that is already hashed, and verifies
    nothing either; instead, hash with mosquitto_passwd and recompute its hash
    with our function from the same salt."""
    assert MOSQUITTO_PASSWD
    path = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(path), "WGB000001", "pw"], check=True)
    theirs = path.read_text().strip()
    salt = base64.b64decode(theirs.split("$")[3])
    assert password_file_line("WGB000001", "pw", salt=salt) == theirs


class Mosquitto:
    def __init__(self, directory: Path, port: int) -> None:
        self.port = port
        self.pid_file = directory / "mosquitto.pid"
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.conf.write_text(
            f"""\
listener {port} 127.0.0.1
allow_anonymous false
password_file {directory / "passwd"}
acl_file {directory / "acl"}
persistence false
pid_file {self.pid_file}
set_tcp_nodelay true
# Running as root in CI: stay root so it can read the 0600 files we wrote.
user root
log_dest stderr
"""
        )
        self._log_handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=self._log_handle, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port("127.0.0.1", port)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"mosquitto did not start:\n{self.log.read_text()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log_handle.close()


@pytest.fixture
def mosquitto_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    return directory


@pytest.fixture
def start_mosquitto(mosquitto_dir: Path) -> Iterator[Callable[[], Mosquitto]]:
    started: list[Mosquitto] = []

    def start() -> Mosquitto:
        broker = Mosquitto(mosquitto_dir, free_port())
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


def _connect(
    port: int, client_id: str, user: str, password: str, clients: list[MqttClient]
) -> MqttClient:
    code, client = mqtt_connect("127.0.0.1", port, client_id, user, password)
    assert code == 0 and client is not None, code
    clients.append(client)
    return client


@needs_mosquitto
def test_mosquitto_enforces_the_files(
    db: Session,
    settings: Settings,
    register_chip: Register,
    mosquitto_dir: Path,
    start_mosquitto: Callable[[], Mosquitto],
    mqtt_clients: list[MqttClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_key = settings.resolved_secret_key()
    device_id, secret = register_chip(11)
    other_id, other_secret = register_chip(12)
    count = sync_mosquitto_files(db, DeviceSecrets(secret_key), secret_key, mosquitto_dir)
    assert count == 2
    for name in ("passwd", "acl"):
        assert (mosquitto_dir / name).stat().st_mode & 0o777 == 0o600
    assert secret not in (mosquitto_dir / "passwd").read_text()
    broker = start_mosquitto()
    port = broker.port

    user, password = platform_mqtt_credentials(secret_key)
    platform = _connect(port, "ingest-1", user, password, mqtt_clients)
    assert platform.subscribe("wg/v1/+/up/#") == 1
    shared = _connect(port, "ingest-2", user, password, mqtt_clients)
    assert shared.subscribe("$share/ingest/wg/v1/+/up/#") == 1
    chip = _connect(port, device_id, device_id, secret, mqtt_clients)
    other = _connect(port, other_id, other_id, other_secret, mqtt_clients)

    chip.publish(f"wg/v1/{device_id}/up/hb", b'{"seq":1}')
    assert platform.expect() == (f"wg/v1/{device_id}/up/hb", b'{"seq":1}')
    assert shared.expect() == (f"wg/v1/{device_id}/up/hb", b'{"seq":1}')

    chip.publish(f"wg/v1/{other_id}/up/hb", b'{"seq":666}')
    chip.publish(f"wg/v1/{device_id}/up/nope", b"{}")
    chip.publish(f"wg/v1/{device_id}/down/cmd", b"{}")
    platform.expect_nothing()

    assert other.subscribe(f"wg/v1/{other_id}/down/cmd") == 1
    assert chip.subscribe(f"wg/v1/{device_id}/down/cmd") == 1
    # Mosquitto 2.0's acl_file grants every SUBACK and checks read access on
    # delivery instead, so eavesdropping shows as "no messages", not as 0x80.
    chip.subscribe(f"wg/v1/{other_id}/down/cmd")
    chip.subscribe("wg/v1/+/down/cmd")
    platform.publish(f"wg/v1/{other_id}/down/cmd", b'{"cmd":"lock"}')
    assert other.expect() == (f"wg/v1/{other_id}/down/cmd", b'{"cmd":"lock"}')
    chip.expect_nothing(0.3)
    platform.publish(f"wg/v1/{device_id}/down/cmd", b'{"cmd":"unlock"}')
    assert chip.expect() == (f"wg/v1/{device_id}/down/cmd", b'{"cmd":"unlock"}')

    assert mqtt_connect("127.0.0.1", port, device_id, device_id, other_secret)[0] in REFUSED
    assert mqtt_connect("127.0.0.1", port, "WGB000013", "WGB000013", "0" * 64)[0] in REFUSED

    # A chip registered after start: re-sync through the CLI, which sends SIGHUP.
    new_id, new_secret = register_chip(13)
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", secret_key)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            broker_app,
            ["mosquitto-files", "--dir", str(mosquitto_dir), "--reload-pid", str(broker.pid_file)],
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "已写入 3 个芯片" in result.output
    deadline = time.monotonic() + 5
    while True:
        code, client = mqtt_connect("127.0.0.1", port, new_id, new_id, new_secret)
        if code == 0 and client is not None:
            mqtt_clients.append(client)
            break
        assert time.monotonic() < deadline, broker.output()
        time.sleep(0.1)
    # Reloading kept the connected clients and their rights.
    chip.publish(f"wg/v1/{device_id}/up/tel", b"after reload")
    assert platform.expect() == (f"wg/v1/{device_id}/up/tel", b"after reload")
    assert broker.process.poll() is None


def test_acl_and_password_file_text(tmp_path: Path) -> None:
    text = acl_file_text()
    assert "pattern write wg/v1/%u/up/hb" in text and "pattern read wg/v1/%u/down/cmd" in text
    assert "user weldguard-platform\ntopic readwrite wg/v1/#" in text
    path = tmp_path / "sub" / "passwd"
    assert write_password_file(path, [("WGB000001", "a"), ("WGB000002", "b")]) == 2
    assert path.stat().st_mode & 0o777 == 0o600
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == [
        "WGB000001",
        "WGB000002",
    ]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
