"""Welders (people), their certificates and their employment by enterprises."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime, utcnow


class Welder(Base):
    __tablename__ = "welder"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    # The ID number is never stored in clear: a keyed hash finds the person,
    # the ciphertext is for the rare authorised export, the mask is for screens.
    id_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_masked: Mapped[str] = mapped_column(String(18))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Certificate(Base):
    __tablename__ = "certificate"
    __table_args__ = (UniqueConstraint("kind", "number_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    welder_id: Mapped[int] = mapped_column(ForeignKey("welder.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    # A 特种作业 number is "T" + the holder's ID number, so numbers are kept like
    # ID numbers: a keyed hash to find them and a masked form to show.
    number_hash: Mapped[str] = mapped_column(String(64))
    number_masked: Mapped[str] = mapped_column(String(64))
    item: Mapped[str] = mapped_column(String(64))
    issue_date: Mapped[date] = mapped_column(Date)
    expiry_date: Mapped[date] = mapped_column(Date, index=True)
    review_due_date: Mapped[date | None] = mapped_column(Date)
    last_review_date: Mapped[date | None] = mapped_column(Date)
    issuing_authority: Mapped[str] = mapped_column(String(128))
    # Which feed the record came from (应急管理部门 export, 市场监管 export, manual…).
    source: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    verified: Mapped[bool] = mapped_column(Boolean, default=True)
    # Provisional acceptance of a not-yet-verified certificate by an enterprise.
    confirmed_by_enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Employment(Base):
    """A welder working for an enterprise; a mobile welder may have several open ones."""

    __tablename__ = "employment"

    id: Mapped[int] = mapped_column(primary_key=True)
    welder_id: Mapped[int] = mapped_column(ForeignKey("welder.id"), index=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprise.id"), index=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
