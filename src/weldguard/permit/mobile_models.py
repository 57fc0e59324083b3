"""Mobile jobs (流动作业报备): a contractor's or a mobile welder's declaration of a
job at a customer's premises, with the welders and machines that go there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from weldguard.db import Base, UTCDateTime


class MobileJob(Base):
    __tablename__ = "mobile_job"
    __table_args__ = (
        Index("ix_mobile_job_area_path_starts_at", "area_path", "starts_at"),
        Index(
            "ix_mobile_job_contractor_enterprise_id_starts_at",
            "contractor_enterprise_id",
            "starts_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # domain.mobile_jobs.JobStatus
    status: Mapped[str] = mapped_column(String(16))
    # Who goes: the contractor enterprise, or None for a mobile welder declaring
    # for themself (``declared_by_welder_id``).
    contractor_enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"))
    declared_by_welder_id: Mapped[int | None] = mapped_column(ForeignKey("welder.id"), index=True)
    declared_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The client: a registered enterprise, or a name and a contact.
    client_enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("enterprise.id"), index=True
    )
    client_name: Mapped[str] = mapped_column(String(128))
    client_contact: Mapped[str] = mapped_column(String(64), default="")
    client_phone: Mapped[str] = mapped_column(String(32), default="")
    # The place: the street (or district) it lies in, copied path for scoping.
    address: Mapped[str] = mapped_column(String(256))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    jurisdiction_id: Mapped[int] = mapped_column(ForeignKey("jurisdiction.id"))
    area_path: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(512), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)  # exclusive
    fire_watch_name: Mapped[str] = mapped_column(String(64))
    fire_watch_phone: Mapped[str] = mapped_column(String(32))
    # Relative paths under the data dir ("photos/<hex>.jpg"), see weldguard.photos.
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    welders: Mapped[list[MobileJobWelder]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="MobileJobWelder.welder_id"
    )
    machines: Mapped[list[MobileJobMachine]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="MobileJobMachine.machine_id"
    )


class MobileJobWelder(Base):
    """A welder named in a job. The scan looks jobs up by welder."""

    __tablename__ = "mobile_job_welder"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("mobile_job.id", ondelete="CASCADE"), primary_key=True
    )
    welder_id: Mapped[int] = mapped_column(ForeignKey("welder.id"), primary_key=True, index=True)


class MobileJobMachine(Base):
    """A machine named in a job. Overlap checks look jobs up by machine."""

    __tablename__ = "mobile_job_machine"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("mobile_job.id", ondelete="CASCADE"), primary_key=True
    )
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id"), primary_key=True, index=True)
