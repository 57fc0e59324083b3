"""The daily rollup of the scan records (扫码记录 statistics): counts per China day,
area, sector, outcome and list of reason codes, folded from ``scan_record`` by
:mod:`weldguard.unlock.scan_rollup` and read by :mod:`weldguard.unlock.records`.

The dimensions are exactly what the regulators' counts filter and group by (area
subtree, sector, outcome, reason code), so that a year of a province is a few
rows per day. Enterprise, machine and welder are left out on purpose: with them a
day would hold about one row per scan; their counts are narrow index ranges on the
raw table and stay there."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime


class ScanDayCount(Base):
    """Scans of one China day with the same area, sector, outcome and reason codes.

    "None" is stored as "" (a forged label has no area and no sector), so that the
    dimensions form a real primary key on both backends (NULLs never collide)."""

    __tablename__ = "scan_day_count"
    __table_args__ = (Index("ix_scan_day_count_area_path_day", "area_path", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    area_path: Mapped[str] = mapped_column(String(128), primary_key=True)
    sector: Mapped[str] = mapped_column(String(32), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The JSON text of ``scan_record.reason_codes`` as the database renders it, so
    # that the reason filter (a LIKE on that text) matches the same scans, and a
    # scan blocked for two reasons stays one scan (its codes are decoded when read).
    reason_codes: Mapped[str] = mapped_column(Text, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ScanRollupDay(Base):
    """A China day whose scans ``scan_day_count`` holds (zero-scan days included):
    the readers take these days from the rollup and every other one from the raw
    table."""

    __tablename__ = "scan_rollup_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scans: Mapped[int] = mapped_column(Integer)
    folded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScanRollupSector(Base):
    """The sector an enterprise's scans are counted under in ``scan_day_count``.

    The raw counts of a sector-limited department follow the enterprise's current
    sector; when it changes, the days holding the enterprise's scans are folded
    again, and until then the readers see the mismatch here and read raw."""

    __tablename__ = "scan_rollup_sector"

    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"), primary_key=True)
    sector: Mapped[str] = mapped_column(String(32))


class ScanRollupState(Base):
    """One row (id 1): who is folding (a lease, so several processes do not all do
    the same work) and how far the late-scan check has read ``scan_record.id``."""

    __tablename__ = "scan_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Scans with a higher id are checked for days already folded.
    checked_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # The highest id seen at ``high_at``: becomes ``checked_id`` once it is old
    # enough that no transaction holding a lower id can still be open.
    high_id: Mapped[int | None] = mapped_column(BigInteger)
    high_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


__all__ = ["ScanDayCount", "ScanRollupDay", "ScanRollupSector", "ScanRollupState"]
