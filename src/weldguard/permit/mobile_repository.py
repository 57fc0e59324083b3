"""Every query of mobile jobs (流动作业报备)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from weldguard.auth.scope import Scope
from weldguard.domain.mobile_jobs import JobState, JobStatus
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.machine.models import Machine
from weldguard.pagination import Page, paginate
from weldguard.permit.mobile_models import MobileJob, MobileJobMachine, MobileJobWelder
from weldguard.welder.models import Employment


def visible_jobs(scope: Scope) -> ColumnElement[bool]:
    """Regulators see the jobs that take place in their area (the place's street,
    not the contractor's home: the street must know who welds in it); the
    contractor and the client their own; a welder the jobs naming them."""
    if scope.welder_id is not None:
        return MobileJob.id.in_(
            select(MobileJobWelder.job_id).where(MobileJobWelder.welder_id == scope.welder_id)
        )
    if scope.enterprise_id is not None:
        return or_(
            MobileJob.contractor_enterprise_id == scope.enterprise_id,
            MobileJob.client_enterprise_id == scope.enterprise_id,
        )
    return scope.record_filter(
        MobileJob.area_path, MobileJob.contractor_enterprise_id, MobileJob.declared_by_welder_id
    )


def _state_clause(state: str | None, now: datetime) -> list[ColumnElement[bool]]:
    declared = MobileJob.status == JobStatus.DECLARED.value
    if state == JobState.UPCOMING:
        return [declared, MobileJob.starts_at > now]
    if state == JobState.ACTIVE:
        return [declared, MobileJob.starts_at <= now, MobileJob.ends_at > now]
    if state == JobState.ENDED:
        return [
            or_(
                MobileJob.status == JobStatus.ENDED.value,
                (MobileJob.status == JobStatus.DECLARED.value) & (MobileJob.ends_at <= now),
            )
        ]
    if state == JobState.CANCELLED:
        return [MobileJob.status == JobStatus.CANCELLED.value]
    return []


class MobileJobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _loaded(self) -> Select[MobileJob]:
        return select(MobileJob).options(
            selectinload(MobileJob.welders), selectinload(MobileJob.machines)
        )

    def page(
        self,
        scope: Scope,
        state: str | None,
        now: datetime,
        page: int,
        size: int,
        *,
        enterprise_id: int | None = None,
        between: tuple[datetime, datetime] | None = None,
    ) -> Page[MobileJob]:
        """Newest window first; optionally one enterprise's jobs (as contractor or
        client) and those whose window overlaps ``between`` (half-open)."""
        clauses = [visible_jobs(scope), *_state_clause(state, now)]
        if enterprise_id is not None:
            clauses.append(
                or_(
                    MobileJob.contractor_enterprise_id == enterprise_id,
                    MobileJob.client_enterprise_id == enterprise_id,
                )
            )
        if between is not None:
            clauses += [MobileJob.starts_at < between[1], MobileJob.ends_at > between[0]]
        stmt = self._loaded().where(*clauses)
        stmt = stmt.order_by(MobileJob.starts_at.desc(), MobileJob.id.desc())
        return paginate(self.session, stmt, page, size)

    def visible(self, scope: Scope, job_id: int) -> MobileJob | None:
        return self.session.scalars(
            self._loaded().where(MobileJob.id == job_id, visible_jobs(scope))
        ).one_or_none()

    def add(self, job: MobileJob) -> MobileJob:
        self.session.add(job)
        self.session.flush()
        return job

    # --- what a declaration is checked against ------------------------------------
    def enterprise_by_credit_code(self, credit_code: str) -> Enterprise | None:
        return self.session.scalars(
            select(Enterprise).where(Enterprise.credit_code == credit_code)
        ).one_or_none()

    def enterprise(self, enterprise_id: int) -> Enterprise | None:
        return self.session.get(Enterprise, enterprise_id)

    def jurisdiction_by_code(self, code: str) -> Jurisdiction | None:
        return self.session.scalars(
            select(Jurisdiction).where(Jurisdiction.code == code)
        ).one_or_none()

    def jurisdiction(self, jurisdiction_id: int) -> Jurisdiction | None:
        return self.session.get(Jurisdiction, jurisdiction_id)

    def machines_for_update(
        self, machine_ids: Sequence[int]
    ) -> dict[int, tuple[Machine, Enterprise]]:
        """The machines with their owners, locked (PostgreSQL) until the commit, so
        that two declarations for the same machine at once cannot both pass the
        overlap check."""
        rows = self.session.execute(
            select(Machine, Enterprise)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(Machine.id.in_(list(machine_ids)))
            .order_by(Machine.id)
            .with_for_update(of=Machine)
        ).all()
        return {m.id: (m, e) for m, e in rows}

    def employers_on(self, welder_ids: Sequence[int], day: date) -> dict[int, set[int]]:
        """welder id → the enterprises employing them on ``day``."""
        rows = self.session.execute(
            select(Employment.welder_id, Employment.enterprise_id).where(
                Employment.welder_id.in_(list(welder_ids)),
                Employment.start_date <= day,
                or_(Employment.end_date.is_(None), Employment.end_date >= day),
            )
        ).all()
        employers: dict[int, set[int]] = {}
        for welder_id, enterprise_id in rows:
            employers.setdefault(welder_id, set()).add(enterprise_id)
        return employers

    def live_overlapping(
        self, machine_ids: Sequence[int], starts_at: datetime, ends_at: datetime, now: datetime
    ) -> list[tuple[int, MobileJob]]:
        """(machine id, job) for declared jobs not yet over that name one of the
        machines and whose window overlaps ``[starts_at, ends_at)``."""
        rows = self.session.execute(
            select(MobileJobMachine.machine_id, MobileJob)
            .join(MobileJob, MobileJob.id == MobileJobMachine.job_id)
            .where(
                MobileJobMachine.machine_id.in_(list(machine_ids)),
                MobileJob.status == JobStatus.DECLARED.value,
                MobileJob.ends_at > now,
                MobileJob.starts_at < ends_at,
                MobileJob.ends_at > starts_at,
            )
            .order_by(MobileJob.starts_at)
        ).all()
        return [(machine_id, job) for machine_id, job in rows]

    # --- the scan ---------------------------------------------------------------------
    def covering(
        self, welder_id: int, machine_id: int, now: datetime
    ) -> list[tuple[MobileJob, Enterprise | None, bool]]:
        """Declared jobs naming the machine whose window holds ``now``, with the
        registered client and whether the job names the welder too (one round
        trip). Unscoped: the scan decision needs them whoever declared them."""
        names_welder = (
            exists()
            .where(MobileJobWelder.job_id == MobileJob.id, MobileJobWelder.welder_id == welder_id)
            .label("names_welder")
        )
        rows = self.session.execute(
            select(MobileJob, Enterprise, names_welder)
            .join(MobileJobMachine, MobileJobMachine.job_id == MobileJob.id)
            .outerjoin(Enterprise, Enterprise.id == MobileJob.client_enterprise_id)
            .where(
                MobileJobMachine.machine_id == machine_id,
                MobileJob.status == JobStatus.DECLARED.value,
                MobileJob.starts_at <= now,
                MobileJob.ends_at > now,
            )
            .order_by(MobileJob.starts_at, MobileJob.id)
        ).all()
        return [(job, client, bool(named)) for job, client, named in rows]
