"""Permit alarms (作业票报警) and the continuous gas monitor's readings (连续监测).

A permit alarm is one condition of one running permit that the supervisor
(``permit/supervisor.py``) found: raised once, seen again on every pass while the
condition lasts (``count``), cleared when it is gone. The partial unique index
``uq_permit_alarm_open`` (permit_id, kind WHERE cleared_at IS NULL) is the conflict
target of the raising INSERT, as for the device alarms: two supervisors meeting the
same condition make one row, never two.

Monitor readings are facts sent by the gas monitor (or the enterprise's system)
and never changed: the supervisor and the steps that start or resume 特级 work
read each gas's latest one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime, utcnow
from weldguard.domain.permits import SuspendCause

__all__ = ["PermitAlarm", "PermitAlarmKind", "PermitMonitorReading"]


class PermitAlarmKind(StrEnum):
    """The kinds are the domain's suspension causes (the conditions that stop the
    work), plus the expiry of a permit under which work was going on."""

    FIRE_WATCH_ABSENT = SuspendCause.FIRE_WATCH_ABSENT.value
    PERMIT_EXPIRED = "permit_expired"
    GAS_OVER_LIMIT = SuspendCause.GAS_OVER_LIMIT.value
    GAS_RETEST_DUE = SuspendCause.GAS_RETEST_DUE.value
    MONITOR_FAILED = SuspendCause.MONITOR_FAILED.value
    OPENING_HOURS = SuspendCause.OPENING_HOURS.value

    @property
    def label(self) -> str:
        if self is PermitAlarmKind.PERMIT_EXPIRED:
            return "作业票到期"
        return SuspendCause(self.value).label


class PermitAlarm(Base):
    __tablename__ = "permit_alarm"
    __table_args__ = (
        Index(
            "uq_permit_alarm_open",
            "permit_id",
            "kind",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
            sqlite_where=text("cleared_at IS NULL"),
        ),
        Index("ix_permit_alarm_raised_at", "raised_at"),
        Index("ix_permit_alarm_area_path_raised_at", "area_path", "raised_at"),
        Index("ix_permit_alarm_enterprise_id_raised_at", "enterprise_id", "raised_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    permit_id: Mapped[int] = mapped_column(ForeignKey("permit.id"))
    # Copied from the permit, as scans and sessions do: an area is an index range.
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"))
    area_path: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    # The rule's reason in plain Chinese, as last seen (times in it move on).
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Supervisor passes that saw the condition, the raising one included.
    count: Mapped[int] = mapped_column(Integer, default=1)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PermitMonitorReading(Base):
    __tablename__ = "permit_monitor_reading"
    __table_args__ = (
        Index("ix_permit_monitor_reading_permit_id_taken_at", "permit_id", "taken_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    permit_id: Mapped[int] = mapped_column(ForeignKey("permit.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    gas: Mapped[str] = mapped_column(String(32))
    lel_percent: Mapped[float] = mapped_column(Float)
    reading_percent: Mapped[float] = mapped_column(Float)
    device: Mapped[str] = mapped_column(String(64), default="")
    # When the platform got it: a monitor's buffered readings arrive late, and the
    # record shows how late.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
