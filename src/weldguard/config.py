"""Settings: the one place that reads the environment (prefix ``WELDGUARD_``)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WELDGUARD_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where the SQLite file and keys live")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default a SQLite file under data_dir"
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs cookies and derives the ID-number keys. When unset, one is "
        "generated once and kept in data_dir/secret.key so restarts keep sessions and "
        "encrypted ID numbers readable.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://host:port or mqtts://… of an existing broker (Mosquitto, "
        "EMQX); when unset, `serve` runs the embedded broker",
    )
    mqtt_listen_host: str = "127.0.0.1"
    mqtt_listen_port: int = 1883
    mqtt_share_group: str | None = Field(
        default=None,
        description="Shared-subscription group so several ingest workers split the load",
    )
    serve_device_workers: bool = Field(
        default=True,
        description="Run the ingest worker and the command dispatcher inside `serve`; "
        "false when they run as their own processes (`weldguard ingest`)",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address phones reach the platform at; printed into the QR "
        "labels (scheme and host, no trailing slash), so changing it means reprinting",
    )
    session_hours: int = 12
    api_token_days: int = 30
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    cookie_secure: bool = False
    # argon2id cost; tests lower it so that creating personas stays quick.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    page_size: int = 20
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    map_tile_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Leaflet tile source; deployments in China point this at a "
        "Tianditu or in-house tile server",
    )
    node_modules_dir: Path | None = Field(
        default=None, description="Front-end libraries installed by npm; default ./node_modules"
    )

    # --- work sessions (作业会话) ---------------------------------------------------
    session_idle_minutes: int = Field(
        default=30,
        description="End a work session (and lock the machine) after this many minutes "
        "without welding since the unlock or the last arc",
    )
    session_long_hours: int = Field(
        default=24, description="Warn (once per session) when a session is on longer than this"
    )
    session_supervisor_interval_s: float = Field(
        default=5.0, description="How often the session supervisor looks for sessions to end"
    )

    # --- scan to unlock (扫码开机) -------------------------------------------------
    scan_max_distance_m: float = Field(
        default=500.0,
        description="远距离扫码: the phone must be within this many metres of the machine "
        "(chip fix, else its site); exactly this distance passes",
    )
    scan_require_position: bool = Field(
        default=False,
        description="Refuse a scan whose phone shares no position (default: a warning, "
        "since indoor phones and refused browser permissions are common)",
    )
    permit_sectors: str = Field(
        default="危化,人员密集场所,施工工地",
        description="Sectors where hot work needs a permit (comma-separated); an "
        "enterprise's own setting wins",
    )
    permit_processes: str = Field(
        default="",
        description="Machine processes that always need a permit (comma-separated, e.g. "
        "gas_cutting)",
    )
    permit_everywhere: bool = Field(
        default=False, description="Every hot work needs a permit (GB 30871-2022 everywhere)"
    )
    scan_refuse_busy_elsewhere: bool = Field(
        default=True,
        description="Refuse a welder who has an open work session on another machine",
    )
    unlock_wait_s: float = Field(
        default=8.0,
        description="How long the scan page waits for the chip to acknowledge an unlock "
        "before the session fails (设备离线/芯片无响应) and its command is expired",
    )
    unlock_command_ttl_s: int = Field(
        default=30, description="Lifetime (exp) of the signed unlock and lock commands"
    )
    session_default_hours: float = Field(
        default=8.0,
        description="A work session's time limit when the decision sets none; it also "
        "caps a later limit (the chip locks itself at the session's valid_until)",
    )
    phone_session_days: int = Field(
        default=30,
        description="记住我 on the scan page's phone sign-in: how long the phone stays signed in",
    )
    unlock_command_bus: bool = Field(
        default=False,
        description="Start the unlock fast path (an MQTT client in the web process that "
        "publishes unlocks at once and hears the chips' acks) in the app's lifespan; "
        "`serve` and `api` processes turn it on, tests start it explicitly",
    )

    gc_freeze: bool = Field(
        default=True,
        description="Freeze the objects alive after start-up out of Python's cyclic "
        "garbage collector (weldguard/process.py): no full-collection stalls of ~80 ms "
        "in long-running processes; tests that build many apps in one process turn it off",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'weldguard.sqlite3').resolve()}"

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        key_file = self.data_dir / "secret.key"
        if key_file.exists():
            return key_file.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.write_text(key)
        key_file.chmod(0o600)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
