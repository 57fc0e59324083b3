"""Broker access for a production Mosquitto (2.x): the platform writes Mosquitto's
password file and ACL file from the chip register and tells Mosquitto to reload
them (SIGHUP). Mosquitto then enforces the same rules as the embedded broker
(weldguard.device.broker_auth): a chip publishes only under its own up/ topics
and reads only its own down/cmd; the platform user has wg/v1/ and its shared
subscriptions.

Usernames, not client ids, carry identity in the ACL (%u), so a chip that logs
in with its own secret reaches only its own topics whatever client id it sends."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import secrets
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from cryptography.fernet import InvalidToken
from sqlalchemy.orm import Session

from weldguard.device.broker_auth import PLATFORM_USERNAME, UP_KINDS, platform_password
from weldguard.device.registry import DeviceSecrets
from weldguard.device.repository import DeviceRepository

log = logging.getLogger(__name__)

PASSWORD_FILE = "passwd"  # noqa: S105 - a file name, not a password
ACL_FILE = "acl"
# mosquitto_passwd's defaults for the $7$ (PBKDF2-SHA512) format.
_SALT_BYTES = 12
_HASH_BYTES = 64
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def password_file_line(
    username: str, password: str, salt: bytes | None = None, iterations: int = 101
) -> str:
    """One line of a Mosquitto 2 password file, as mosquitto_passwd writes it:
    ``user:$7$iterations$base64(salt)$base64(pbkdf2_sha512(password, salt))``."""
    if not _USERNAME_RE.match(username):
        # ':' or a newline would corrupt the file; wildcards would break %u in the ACL.
        raise ValueError(f"username not allowed in a Mosquitto password file: {username[:64]!r}")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    return (
        f"{username}:$7${iterations}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def _write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: Mosquitto reloading at any
    moment sees the old file or the new one, never half of one. Mode 0600; when
    the file already exists its owner and group are kept (Mosquitto running as
    its own user needs to read it: chown it once, later syncs keep that)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.stat() if path.exists() else None
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            if previous is not None and (previous.st_uid, previous.st_gid) != (
                os.getuid(),
                os.getgid(),
            ):
                with contextlib.suppress(PermissionError):
                    os.fchown(handle.fileno(), previous.st_uid, previous.st_gid)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_password_file(path: Path, entries: Iterable[tuple[str, str]]) -> int:
    """Writes (username, clear password) pairs as a Mosquitto password file; returns
    the number of users written."""
    lines = [password_file_line(username, password) for username, password in entries]
    _write_atomically(path, "".join(f"{line}\n" for line in lines))
    return len(lines)


def acl_file_text() -> str:
    up = "\n".join(f"pattern write wg/v1/%u/up/{kind}" for kind in sorted(UP_KINDS))
    return f"""\
# Written by weldguard (weldguard broker mosquitto-files); edits are overwritten.
# Chips log in with username = client id = device id (docs/protocol.md).
# Patterns apply to every user; %u is the authenticated username.
{up}
pattern read wg/v1/%u/down/cmd

# The platform's own clients: ingest workers (shared subscriptions) and the
# command sender. Mosquitto 2.0.11 checks a $share subscription's reads on delivery
# against the plain topic; the $share line covers versions that check the filter.
user {PLATFORM_USERNAME}
topic readwrite wg/v1/#
topic read $share/+/wg/v1/#
"""


def sync_mosquitto_files(
    session: Session, device_secrets: DeviceSecrets, platform_secret: str, directory: Path
) -> int:
    """Writes directory/passwd (the platform user and every chip with a secret) and
    directory/acl. Returns the number of chips written."""
    directory = Path(directory)

    def entries() -> Iterable[tuple[str, str]]:
        yield PLATFORM_USERNAME, platform_password(platform_secret)
        for chip in DeviceRepository(session).chips_with_secrets():
            if chip.device_id == PLATFORM_USERNAME or not _USERNAME_RE.match(chip.device_id):
                log.warning("chip %s skipped: its id cannot be a broker username", chip.device_id)
                continue
            try:
                yield chip.device_id, device_secrets.open(chip)
            except InvalidToken:
                log.warning("chip %s skipped: stored secret does not decrypt", chip.device_id)

    users = write_password_file(directory / PASSWORD_FILE, entries())
    _write_atomically(directory / ACL_FILE, acl_file_text())
    return users - 1


def reload_mosquitto(pid_or_pid_file: int | str | Path) -> int:
    """SIGHUP makes Mosquitto re-read its password and ACL files without dropping
    connections. Accepts a pid or the path of Mosquitto's pid_file; returns the pid."""
    if isinstance(pid_or_pid_file, int):
        pid = pid_or_pid_file
    elif isinstance(pid_or_pid_file, str) and pid_or_pid_file.strip().isdigit():
        pid = int(pid_or_pid_file.strip())
    else:
        pid = int(Path(pid_or_pid_file).read_text().strip())
    if pid <= 1:
        raise ValueError(f"refusing to signal pid {pid}")
    os.kill(pid, signal.SIGHUP)
    return pid


broker_app = typer.Typer(no_args_is_help=True, help="MQTT broker access (Mosquitto)")


@broker_app.callback()
def _broker_group() -> None:
    """MQTT broker access (Mosquitto). A callback keeps this a command group even
    while it has one command, so the command line is the same standalone and mounted."""


@broker_app.command("mosquitto-files")
def mosquitto_files(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write passwd and acl (Mosquitto's config)")
    ],
    reload_pid: Annotated[
        str | None,
        typer.Option(help="Mosquitto's pid, or its pid_file, to send SIGHUP after writing"),
    ] = None,
) -> None:
    """Write Mosquitto's password and ACL files from the chip register, then reload it.

    mosquitto.conf needs: allow_anonymous false, password_file DIR/passwd,
    acl_file DIR/acl."""
    from weldguard.config import get_settings
    from weldguard.db import make_engine, make_session_factory, transaction

    settings = get_settings()
    secret = settings.resolved_secret_key()
    engine = make_engine(settings.resolved_database_url())
    try:
        with transaction(make_session_factory(engine)) as session:
            count = sync_mosquitto_files(session, DeviceSecrets(secret), secret, directory)
    finally:
        engine.dispose()
    typer.echo(f"已写入 {count} 个芯片的 Mosquitto 账号和 ACL：{directory}")
    if reload_pid:
        try:
            pid = reload_mosquitto(reload_pid)
        except (OSError, ValueError) as exc:
            typer.secho(f"无法通知 Mosquitto 重新加载：{exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None
        typer.echo(f"已通知 Mosquitto（pid {pid}）重新加载")
