"""Small works below the permit threshold that involve hot work, filed with the
street where they happen, and the street's checks of them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from weldguard.db import Base, UTCDateTime


class SmallWorkFiling(Base):
    __tablename__ = "small_work_filing"
    __table_args__ = (
        Index("ix_small_work_filing_area_path_filed_at", "area_path", "filed_at"),
        Index("ix_small_work_filing_enterprise_id_filed_at", "enterprise_id", "filed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # domain.small_works.FilingStatus
    status: Mapped[str] = mapped_column(String(32))
    # The filer: the enterprise whose users filed it (they see it afterwards).
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"))
    filed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # 建设单位/业主: a registered enterprise or a person.
    owner_kind: Mapped[str] = mapped_column(String(16))  # enterprise | person
    owner_enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    owner_name: Mapped[str] = mapped_column(String(128))
    owner_phone: Mapped[str] = mapped_column(String(32), default="")
    address: Mapped[str] = mapped_column(String(256))
    # The street (街道/乡镇) it is filed with; path copied for scoping.
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction.id"))
    area_path: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512))
    expected_start: Mapped[date] = mapped_column(Date)
    expected_end: Mapped[date] = mapped_column(Date)
    # 施工单位: a registered enterprise or a name.
    contractor_enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    contractor_name: Mapped[str] = mapped_column(String(128))
    hot_work: Mapped[bool] = mapped_column(Boolean)
    hot_work_method: Mapped[str] = mapped_column(String(64), default="")
    contact_name: Mapped[str] = mapped_column(String(64))
    contact_phone: Mapped[str] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    checks: Mapped[list[SmallWorkCheck]] = relationship(
        lazy="raise", order_by="SmallWorkCheck.checked_at"
    )


class SmallWorkCheck(Base):
    """One check (核查) by the street: kept, never overwritten."""

    __tablename__ = "small_work_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    filing_id: Mapped[int] = mapped_column(
        ForeignKey("small_work_filing.id", ondelete="CASCADE"), index=True
    )
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    checked_by_name: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(8))  # domain.small_works.CheckResult
    notes: Mapped[str] = mapped_column(String(1024), default="")
