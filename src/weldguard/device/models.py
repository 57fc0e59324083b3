"""What the chips said (raw up messages, append-only), what the platform knows
about each chip right now (live state, flushed from memory in batches), the
commands sent to chips and the alarms their messages raised."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime


class DeviceMessage(Base):
    """Every valid up message, stored once. Append-only: nothing updates or deletes
    rows here except retention jobs.

    The dedupe key is (device_id, seq, device_ts) rather than (device_id, seq): a
    chip restarts seq at 1 after a boot hello, so the same seq legitimately comes
    back after every power cycle, while a redelivered duplicate repeats the whole
    message, device timestamp included."""

    __tablename__ = "device_message"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", "device_ts", name="uq_device_message_dedupe"),
        Index("ix_device_message_device_id_device_ts", "device_id", "device_ts"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    seq: Mapped[int] = mapped_column(BigInteger)
    device_ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    buffered: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeviceState(Base):
    """One row per chip: the latest known state, written by the ingest worker's
    periodic flush (never once per message)."""

    __tablename__ = "device_state"

    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_state: Mapped[str | None] = mapped_column(String(8))
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    boot_count: Mapped[int] = mapped_column(Integer, default=0)
    rssi: Mapped[int | None] = mapped_column(Integer)
    vin_mv: Mapped[int | None] = mapped_column(Integer)
    lat_e6: Mapped[int | None] = mapped_column(Integer)
    lon_e6: Mapped[int | None] = mapped_column(Integer)
    gps_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arc_on: Mapped[bool] = mapped_column(Boolean, default=False)
    session_id: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(32))
    heartbeat_interval_s: Mapped[int | None] = mapped_column(Integer)
    # last_seen_at + factor x heartbeat interval: past it the chip counts as offline.
    offline_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class CommandStatus(StrEnum):
    QUEUED = "queued"  # waiting: the device has another command in flight, or is offline
    SENT = "sent"  # published at least once, no ack yet (the one in flight)
    ACKED = "acked"  # the chip answered code 0
    FAILED = "failed"  # the chip answered a non-zero code (other than busy/unsynced)
    EXPIRED = "expired"  # exp passed without an ack


class DeviceCommand(Base):
    """A signed command and its delivery. The payload is signed once and re-published
    byte for byte on every retry (docs/protocol.md § 13)."""

    __tablename__ = "device_command"
    __table_args__ = (
        Index("ix_device_command_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_device_command_device_id_created_at", "device_id", "created_at"),
        Index("ix_device_command_machine_id_created_at", "machine_id", "created_at"),
        # One command in flight per device, enforced by the database so two
        # dispatchers can never both send.
        Index(
            "uq_device_command_in_flight",
            "device_id",
            unique=True,
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
    )

    # The command's wire id (a UUID).
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"))
    cmd: Mapped[str] = mapped_column(String(16))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Canonical signed JSON, exactly what goes on the wire.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default=CommandStatus.QUEUED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When a dispatcher may next (re)publish it; claimed with a conditional UPDATE.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ack_code: Mapped[int | None] = mapped_column(Integer)
    ack_state: Mapped[str | None] = mapped_column(String(8))
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    # Why it was sent, e.g. a work session id or "manual"; shown on the timeline.
    reason: Mapped[str] = mapped_column(String(64), default="")


class AlarmKind(StrEnum):
    OFFLINE_POWERED = "offline_powered"  # 离线(通电)
    CHIP_REMOVED = "chip_removed"  # 芯片拆除
    CURRENT_WHILE_LOCKED = "current_while_locked"  # 锁定状态下有焊接电流 (疑似改装/旁路)
    CURRENT_WITHOUT_SESSION = "current_without_session"  # 无作业会话焊接
    OVER_CURRENT = "over_current"  # 超额定电流
    TAMPER = "tamper"  # 外壳打开/防拆
    GAS = "gas"  # 气体报警
    TEMPERATURE = "temperature"  # 温度报警
    LONG_SESSION = "long_session"  # 作业超过 24 小时 (raised by the session supervisor)


class AlarmSeverity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class DeviceAlarm(Base):
    """One row per condition occurrence: raised once, repeats counted, cleared when
    the condition ends. The partial unique index makes "one open alarm per device and
    kind" atomic, so two messages milliseconds apart cannot raise it twice."""

    __tablename__ = "device_alarm"
    __table_args__ = (
        Index(
            "uq_device_alarm_open",
            "device_id",
            "kind",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
            sqlite_where=text("cleared_at IS NULL"),
        ),
        Index("ix_device_alarm_raised_at", "raised_at"),
        Index("ix_device_alarm_machine_id_raised_at", "machine_id", "raised_at"),
        Index("ix_device_alarm_enterprise_id_raised_at", "enterprise_id", "raised_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    # Where the chip sat when the alarm was raised (copied: a chip moved later must
    # not move its old alarms).
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"))
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    jurisdiction_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdiction.id"))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
