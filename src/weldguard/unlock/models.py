"""Scans (every one, allowed or blocked, with its reasons), work sessions (unlock to
lock) and special periods declared by regulators."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime


class ScanOutcome(StrEnum):
    ALLOWED = "allowed"  # decision allowed; the session records whether the chip unlocked
    BLOCKED = "blocked"  # decision denied, with reasons
    INVALID_LABEL = "invalid_label"  # forged, tampered or unknown label


class ScanRecord(Base):
    """One scan of a label. Kept for the regulators' counts per area and reason (the
    Shandong platform reports its allowed and blocked scans), and for the welder's
    own "why was I blocked" page. ``reason_codes`` holds the stable codes of
    domain.authorization.ReasonCode; the messages are rebuilt from the snapshot."""

    __tablename__ = "scan_record"
    __table_args__ = (
        Index("ix_scan_record_scanned_at", "scanned_at"),
        Index("ix_scan_record_area_path_scanned_at", "area_path", "scanned_at"),
        Index("ix_scan_record_welder_id_scanned_at", "welder_id", "scanned_at"),
        Index("ix_scan_record_machine_id_scanned_at", "machine_id", "scanned_at"),
        Index("ix_scan_record_enterprise_id_scanned_at", "enterprise_id", "scanned_at"),
        # Blocked scans are well under 1 % of all: lists and reason counts of an area
        # read only them.
        Index(
            "ix_scan_record_blocked_area_path_scanned_at",
            "area_path",
            "scanned_at",
            postgresql_where=text("outcome <> 'allowed'"),
            sqlite_where=text("outcome <> 'allowed'"),
        ),
        # A double tap or a browser's retry carries the form's key again: the
        # database, not one process's memory, says it is the same scan (several web
        # processes; NULLs never collide).
        Index("uq_scan_record_user_id_idempotency_key", "user_id", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    # What the label said (a forged label has no machine).
    machine_code: Mapped[str] = mapped_column(String(32))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"))
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    # The enterprise's area, copied: counts per area must not move with later edits.
    area_path: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    welder_id: Mapped[int | None] = mapped_column(ForeignKey("welder.id"))
    reason_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    warning_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Reasons with their messages as shown to the welder at the time.
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    phone_lat: Mapped[float | None] = mapped_column(Float)
    phone_lon: Mapped[float | None] = mapped_column(Float)
    phone_accuracy_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(String(36))
    idempotency_key: Mapped[str | None] = mapped_column(String(64))


class SessionStatus(StrEnum):
    STARTING = "starting"  # unlock sent, waiting for the chip
    ACTIVE = "active"  # the chip acknowledged the unlock
    ENDED = "ended"
    FAILED = "failed"  # the chip never unlocked (offline, refused, no answer)


class SessionEndReason(StrEnum):
    WELDER = "welder"  # 结束作业 on the scan page
    TIME_LIMIT = "time_limit"  # valid_until passed (permit end, opening hours, …)
    LOCK_EVENT = "lock_event"  # the chip reported it locked
    IDLE = "idle"  # no arc for the idle time
    REPLACED = "replaced"  # another session started on the machine
    ADMIN = "admin"  # locked by a regulator or the enterprise
    PERMIT = "permit"  # its hot-work permit stopped covering work (paused, ended, …)


class WorkSession(Base):
    """From unlock to lock. The id is the session id sent to the chip in the unlock
    command; the chip tags its telemetry with it."""

    __tablename__ = "work_session"
    __table_args__ = (
        Index("ix_work_session_machine_id_started_at", "machine_id", "started_at"),
        Index("ix_work_session_welder_id_started_at", "welder_id", "started_at"),
        Index("ix_work_session_enterprise_id_started_at", "enterprise_id", "started_at"),
        Index("ix_work_session_area_path_started_at", "area_path", "started_at"),
        Index("ix_work_session_status", "status"),
        # One open session per machine, enforced by the database so a double tap or
        # two phones can never start two.
        Index(
            "uq_work_session_open_machine",
            "machine_id",
            unique=True,
            postgresql_where=text("status IN ('starting', 'active')"),
            sqlite_where=text("status IN ('starting', 'active')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id"))
    device_id: Mapped[str] = mapped_column(String(32))
    welder_id: Mapped[int] = mapped_column(ForeignKey("welder.id"))
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"))
    area_path: Mapped[str] = mapped_column(String(128))
    scan_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("scan_record.id")
    )
    permit_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8), default=SessionStatus.STARTING)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    unlocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(16))
    failure: Mapped[str | None] = mapped_column(String(128))
    unlock_command_id: Mapped[str | None] = mapped_column(String(36))
    lock_command_id: Mapped[str | None] = mapped_column(String(36))
    # Accrued from telemetry by the ingest sink.
    arc_seconds: Mapped[int] = mapped_column(Integer, default=0)
    energy_wh: Mapped[float] = mapped_column(Float, default=0.0)
    peak_current_a: Mapped[float | None] = mapped_column(Float)
    last_arc_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_lat: Mapped[float | None] = mapped_column(Float)
    last_lon: Mapped[float | None] = mapped_column(Float)
    long_running_warned: Mapped[bool] = mapped_column(Boolean, default=False)


class SpecialPeriod(Base):
    """特殊时期: a regulator bans hot work (or requires a permit) in an area for a time,
    e.g. during a major event."""

    __tablename__ = "special_period"
    __table_args__ = (Index("ix_special_period_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction.id"))
    area_path: Mapped[str] = mapped_column(String(128))
    # None: every sector.
    sectors: Mapped[list[str] | None] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    declared_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
