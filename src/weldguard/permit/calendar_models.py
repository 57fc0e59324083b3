"""The holiday calendar: one row per announced day (a holiday or a weekend day
swapped into a workday). Days not listed follow the weekend rule."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime


class CalendarDay(Base):
    """节假日安排 of one day. ``kind`` is a ``domain.calendar.DayKind``; ``source``
    says where the day came from (the built-in seed, an imported file, an admin's
    edit) so that an admin knows what to check against the State Council notice."""

    __tablename__ = "calendar_day"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Named ``day``, not ``date``: the attribute would shadow the type in the class.
    day: Mapped[date] = mapped_column(Date, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(32))  # 春节, 国庆节…
    source: Mapped[str] = mapped_column(String(128))
    # A name, not a user id: CLI imports and the seed have no account.
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
