"""Enterprises of the register (企业底数) and their work sites."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime, utcnow


class Enterprise(Base):
    __tablename__ = "enterprise"

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    # 企业类型 of the template: the sector (工贸, 危化, 施工工地, …, 人员密集场所).
    sector: Mapped[str] = mapped_column(String(32), index=True)
    # 人密场所子类: set when the enterprise is a crowded place (医院, 学校, …).
    crowded_subtype: Mapped[str | None] = mapped_column(String(32))
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction.id"), index=True)
    # Copy of the jurisdiction's path so that scoping is one indexed prefix match.
    area_path: Mapped[str] = mapped_column(String(128), index=True)
    address: Mapped[str] = mapped_column(String(256), default="")
    legal_rep_name: Mapped[str] = mapped_column(String(64), default="")
    legal_rep_phone: Mapped[str] = mapped_column(String(32), default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="")
    production_status: Mapped[str] = mapped_column(String(16), default="在产")
    involves_welding: Mapped[bool] = mapped_column(Boolean, default=True)
    mobile_work: Mapped[bool] = mapped_column(Boolean, default=False)
    declared_machine_count: Mapped[int] = mapped_column(Integer, default=0)
    declared_welder_count: Mapped[int] = mapped_column(Integer, default=0)
    # Crowded places: [{"days": [1..7], "open": "09:00", "close": "21:00"}]; no hot
    # work inside these windows.
    opening_hours: Mapped[list[Any] | None] = mapped_column(JSON)
    # Whether hot work here needs a permit, set for this enterprise by a regulator
    # (or tightened by the enterprise itself); None: the sector rule decides.
    permit_required: Mapped[bool | None] = mapped_column(Boolean, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Site(Base):
    """A named work place of an enterprise (workshop, building site, ward…)."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprise.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(256), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # Optional outline as [[lat, lng], ...] (WGS-84), the geofence of later issues.
    polygon: Mapped[list[Any] | None] = mapped_column(JSON)
