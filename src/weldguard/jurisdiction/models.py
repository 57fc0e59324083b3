"""Administrative divisions (province → city → district → street) and departments."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"

    @property
    def label(self) -> str:
        return {"province": "省", "city": "市", "district": "区县", "street": "街镇"}[self.value]


class Jurisdiction(Base):
    __tablename__ = "jurisdiction"

    id: Mapped[int] = mapped_column(primary_key=True)
    # National administrative division code (GB/T 2260; 9 digits for streets).
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdiction.id"), index=True)
    # Materialised path of codes, "310000/310100/310105/": a subtree is one prefix match.
    path: Mapped[str] = mapped_column(String(128), index=True)
    full_name: Mapped[str] = mapped_column(String(256))


class Department(Base):
    __tablename__ = "department"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    short_name: Mapped[str] = mapped_column(String(16), unique=True)
    # A department that oversees every sector (应急, 公安…) sees its whole subtree;
    # the others see only enterprises of the sectors listed.
    all_sectors: Mapped[bool] = mapped_column(Boolean, default=False)
    sectors: Mapped[list[Any]] = mapped_column(JSON, default=list)
