"""Welding machines, their chips and the history of which chip sat in which machine."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime, utcnow


class WeldingProcess(StrEnum):
    MANUAL_ARC = "manual_arc"
    MIG_MAG = "mig_mag"
    TIG = "tig"
    SUBMERGED_ARC = "submerged_arc"
    PLASMA_CUTTING = "plasma_cutting"
    RESISTANCE = "resistance"
    BRAZING = "brazing"
    GAS_WELDING = "gas_welding"
    GAS_CUTTING = "gas_cutting"

    @property
    def label(self) -> str:
        return PROCESS_LABELS[self]


PROCESS_LABELS = {
    WeldingProcess.MANUAL_ARC: "焊条电弧焊",
    WeldingProcess.MIG_MAG: "熔化极气体保护焊(MIG/MAG)",
    WeldingProcess.TIG: "钨极氩弧焊(TIG)",
    WeldingProcess.SUBMERGED_ARC: "埋弧焊",
    WeldingProcess.PLASMA_CUTTING: "等离子切割",
    WeldingProcess.RESISTANCE: "电阻焊",
    WeldingProcess.BRAZING: "钎焊",
    WeldingProcess.GAS_WELDING: "气焊",
    WeldingProcess.GAS_CUTTING: "气割",
}


class MachineStatus(StrEnum):
    REGISTERED = "registered"
    CHIP_FITTED = "chip_fitted"
    RETIRED = "retired"

    @property
    def label(self) -> str:
        return {"registered": "已登记", "chip_fitted": "已加芯", "retired": "已报废"}[self.value]


class Machine(Base):
    __tablename__ = "machine"
    __table_args__ = (
        UniqueConstraint("make", "serial_number"),
        # Lists filter by enterprise (through the scope) and often by status;
        # together they make the count of a status filter a covering index scan.
        Index("ix_machine_enterprise_id_status", "enterprise_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The platform's own code, printed on the QR label (赋码).
    code: Mapped[str] = mapped_column(String(16), unique=True)
    serial_number: Mapped[str] = mapped_column(String(64), index=True)
    make: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64), index=True)
    process: Mapped[str] = mapped_column(String(32))
    rated_current_a: Mapped[int] = mapped_column(Integer)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=MachineStatus.REGISTERED)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Chip(Base):
    """An IoT module (芯). Device credentials and protocol state come with the device issue."""

    __tablename__ = "chip"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32), unique=True)
    imei: Mapped[str] = mapped_column(String(15), unique=True)
    iccid: Mapped[str] = mapped_column(String(20))
    firmware: Mapped[str] = mapped_column(String(32), default="")
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The per-device secret: broker password and HMAC key of its commands. Kept
    # encrypted because the platform must sign with it; null until issued.
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChipBinding(Base):
    """One period during which a chip was fitted to a machine. The open binding
    (removed_at is null) is the current one; closed ones are the history."""

    __tablename__ = "chip_binding"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id"), index=True)
    chip_id: Mapped[int] = mapped_column(ForeignKey("chip.id"), index=True)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    fitted_by_name: Mapped[str] = mapped_column(String(64), default="")
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_by_name: Mapped[str | None] = mapped_column(String(64))
    removal_reason: Mapped[str | None] = mapped_column(String(128))
    # The installer's photo of the fitted chip, relative to the data directory.
    photo_path: Mapped[str | None] = mapped_column(String(255))
