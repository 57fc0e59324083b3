"""What the chips said (raw up messages, append-only) and what the platform knows
about each chip right now (live state, flushed from memory in batches)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, UniqueConstraint
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
