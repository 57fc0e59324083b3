"""Hot-work permits (动火作业票): the header with the content the applicant fills in,
the welders and machines named on it, and the append-only event log.

The log is the audit trail (each step with its time, person and photos) and the
source of the domain ``Permit``: every event row keeps the input it was given and
the permit's recorded state after it (``state``), so a permit is rebuilt from its
last event without judging its history again (a replay through the rules would
judge old steps with today's calendar and today's certificate statuses). Permits
are kept at least a year: there is no delete path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from weldguard.db import Base, UTCDateTime, utcnow


class Permit(Base):
    """One permit. ``status`` and ``version`` change with every applied event, in the
    same flush as the event row; ``version`` makes two concurrent events on one
    permit conflict (a conditional UPDATE), ``last_event_id`` is the event whose
    ``state`` is the permit's present state."""

    __tablename__ = "permit"
    __table_args__ = (
        Index("ix_permit_area_path_starts_at", "area_path", "starts_at"),
        Index("ix_permit_enterprise_id_starts_at", "enterprise_id", "starts_at"),
        Index("ix_permit_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    # The enterprise's area, copied as scans and sessions do: an area is an index range.
    area_path: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # No foreign key: the two tables would reference each other.
    last_event_id: Mapped[int | None] = mapped_column(Integer)
    base_level: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    methods: Mapped[list[str]] = mapped_column(JSON)
    place_description: Mapped[str] = mapped_column(String(256))
    hot_spot_lat: Mapped[float] = mapped_column(Float)
    hot_spot_lon: Mapped[float] = mapped_column(Float)
    hot_spot_radius_m: Mapped[float] = mapped_column(Float)
    # [[lat, lon], ...] when an area is drawn instead of the radius.
    hot_spot_polygon: Mapped[list[Any] | None] = mapped_column(JSON)
    # {"name", "user_id", "welder_id"}; the fire watch adds "trained".
    lead: Mapped[dict[str, Any]] = mapped_column(JSON)
    fire_watch: Mapped[dict[str, Any]] = mapped_column(JSON)
    hazards: Mapped[list[str]] = mapped_column(JSON)
    # [{"code", "text", "applicable"}, ...]
    measures: Mapped[list[Any]] = mapped_column(JSON)
    linked_permits: Mapped[list[str]] = mapped_column(JSON)
    gas_analysis_required: Mapped[bool] = mapped_column(Boolean, default=False)
    special_equipment: Mapped[bool] = mapped_column(Boolean, default=False)
    check_in_interval_min: Mapped[int] = mapped_column(Integer)
    # The crowded-place exception path (营业时间动火), when requested: its two signed
    # records ({"risk_assessment": step | null, "fire_separation": step | null}).
    crowded_exception: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    welders: Mapped[list[PermitWelder]] = relationship(
        lazy="raise", order_by="PermitWelder.id", cascade="all, delete-orphan"
    )
    machines: Mapped[list[PermitMachine]] = relationship(
        lazy="raise", order_by="PermitMachine.id", cascade="all, delete-orphan"
    )


class PermitWelder(Base):
    """A welder named on the permit (动火人) with the certificates written on it."""

    __tablename__ = "permit_welder"
    __table_args__ = (Index("ix_permit_welder_welder_id", "welder_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    permit_id: Mapped[int] = mapped_column(ForeignKey("permit.id"), index=True)
    welder_id: Mapped[int] = mapped_column(ForeignKey("welder.id"))
    certificate_ids: Mapped[list[int]] = mapped_column(JSON)


class PermitMachine(Base):
    """A machine named on the permit."""

    __tablename__ = "permit_machine"
    __table_args__ = (Index("ix_permit_machine_machine_id", "machine_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    permit_id: Mapped[int] = mapped_column(ForeignKey("permit.id"), index=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id"))


class PermitEventRow(Base):
    """One step on a permit, never changed or deleted. ``payload``: the event's
    input; ``state``: the permit's recorded state after it (see the module doc)."""

    __tablename__ = "permit_event"
    __table_args__ = (Index("ix_permit_event_permit_id_id", "permit_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    permit_id: Mapped[int] = mapped_column(ForeignKey("permit.id"))
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    person_name: Mapped[str] = mapped_column(String(64), default="")
    person_role: Mapped[str] = mapped_column(String(32), default="")
    status_before: Mapped[str | None] = mapped_column(String(16))
    status_after: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    photos: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
