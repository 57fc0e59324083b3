"""Every query of the hot-work permits. Reads go through the caller's Scope: a
permit outside it is absent (None), exactly like a missing one."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from weldguard.auth.models import User
from weldguard.auth.scope import Scope
from weldguard.db import PREPARED
from weldguard.domain.permits import CLAIMING_STATUSES, MachineClaim, PermitStatus
from weldguard.enterprise.models import Enterprise, Site
from weldguard.errors import Conflict
from weldguard.machine.models import Machine, MachineStatus
from weldguard.pagination import Page, paginate
from weldguard.permit.models import Permit, PermitEventRow, PermitMachine, PermitWelder
from weldguard.welder.models import Certificate, Employment, Welder

#: The statuses in which a permit may cover an unlock or explain why it does not
#: (started and standing still); the others are never candidates of a scan.
SCAN_CANDIDATE_STATUSES = (
    PermitStatus.IN_PROGRESS.value,
    PermitStatus.PAUSED.value,
    PermitStatus.SUSPENDED.value,
)


@dataclass(frozen=True)
class PermitFilter:
    status: str | None = None
    enterprise_id: int | None = None
    since: datetime | None = None  # windows ending after
    until: datetime | None = None  # windows starting before


@dataclass(frozen=True)
class FormChoices:
    machines: list[Machine]
    welders: list[Welder]
    accounts: list[User]
    sites: list[Site]


@dataclass(frozen=True)
class ScanCandidate:
    """What a scan reads of a started permit: the header's columns the unlock
    decision needs (never the content or the step log) and who and what it names."""

    id: int
    number: str
    status: str
    enterprise_id: int
    site_id: int | None
    starts_at: datetime
    ends_at: datetime
    hot_spot_lat: float
    hot_spot_lon: float
    hot_spot_radius_m: float
    hot_spot_polygon: list[list[float]] | None
    crowded_exception: dict[str, Any] | None
    welder_ids: set[int]
    machine_ids: set[int]


def permit_scope(
    scope: Scope,
    permit_id: InstrumentedAttribute[int],
    area_path: InstrumentedAttribute[str],
    enterprise_id: InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """Who reaches a permit, or a row that copies a permit's area and enterprise
    (its alarms): regulators their area (and sectors), enterprise users their
    enterprise, a welder the permits naming them."""
    if scope.welder_id is not None and not scope.everything:
        return exists(
            select(PermitWelder.id).where(
                PermitWelder.permit_id == permit_id, PermitWelder.welder_id == scope.welder_id
            )
        )
    return scope.record_filter(area_path, enterprise_id, enterprise_id)


class PermitRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- scope ------------------------------------------------------------------------
    @staticmethod
    def scope_filter(scope: Scope) -> ColumnElement[bool]:
        return permit_scope(scope, Permit.id, Permit.area_path, Permit.enterprise_id)

    # --- one permit ---------------------------------------------------------------------
    def get(self, scope: Scope, permit_id: int, *, for_update: bool = False) -> Permit | None:
        """The permit with its welders and machines. ``for_update``: locks the row
        (PostgreSQL ``SELECT … FOR UPDATE``; SQLite serialises writers itself and the
        version check in :meth:`advance` is the guard there)."""
        stmt = (
            select(Permit)
            .where(Permit.id == permit_id, self.scope_filter(scope))
            .options(selectinload(Permit.welders), selectinload(Permit.machines))
        )
        if for_update:
            stmt = stmt.with_for_update(of=Permit)
        return self.session.scalars(stmt).one_or_none()

    def events(self, permit_id: int) -> list[PermitEventRow]:
        return list(
            self.session.scalars(
                select(PermitEventRow)
                .where(PermitEventRow.permit_id == permit_id)
                .order_by(PermitEventRow.id)
            )
        )

    def names_photo(self, permit_id: int, key: str) -> bool:
        """Whether one of the permit's steps names the photo ``key``. Read in
        Python: the photo lists are JSON, and a permit has tens of steps."""
        photos = self.session.scalars(
            select(PermitEventRow.photos).where(PermitEventRow.permit_id == permit_id)
        )
        return any(key in listed for listed in photos)

    def event(self, event_id: int) -> PermitEventRow | None:
        return self.session.get(PermitEventRow, event_id)

    def add_numbered(self, permit: Permit, day: date, attempts: int = 5) -> Permit:
        """Adds the permit with the next number of ``day``. Two applications at once
        may pick the same number: the unique index refuses the second, which takes the
        next one (a savepoint keeps the transaction going)."""
        for _ in range(attempts):
            permit.number = self.next_number(day)
            try:
                with self.session.begin_nested():
                    self.session.add(permit)
                    self.session.flush()
                return permit
            except IntegrityError:
                continue
        raise Conflict("作业票编号分配冲突，请稍后重试")

    def add_event(self, event: PermitEventRow) -> PermitEventRow:
        self.session.add(event)
        self.session.flush()
        return event

    def advance(
        self, permit: Permit, read_version: int, status: str, event_id: int, now: datetime
    ) -> bool:
        """Moves the header to ``status`` if nobody else moved it since
        ``read_version`` was read; False when someone did."""
        result = self.session.execute(
            update(Permit)
            .where(Permit.id == permit.id, Permit.version == read_version)
            .values(status=status, version=read_version + 1, last_event_id=event_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            return False
        self.session.expire(permit, ["status", "version", "last_event_id", "updated_at"])
        return True

    def next_number(self, day: date) -> str:
        """DH-YYYYMMDD-NNNN, the next of the day (the unique index is the backstop)."""
        prefix = f"DH-{day:%Y%m%d}-"
        last = self.session.scalar(
            select(func.max(Permit.number)).where(Permit.number.startswith(prefix))
        )
        n = int(last.rsplit("-", 1)[1]) + 1 if last else 1
        return f"{prefix}{n:04d}"

    # --- lists --------------------------------------------------------------------------
    def page(self, scope: Scope, f: PermitFilter, page: int, size: int) -> Page[Permit]:
        stmt = select(Permit).where(self.scope_filter(scope))
        if f.status is not None:
            stmt = stmt.where(Permit.status == f.status)
        if f.enterprise_id is not None:
            stmt = stmt.where(Permit.enterprise_id == f.enterprise_id)
        if f.since is not None:
            stmt = stmt.where(Permit.ends_at > f.since)
        if f.until is not None:
            stmt = stmt.where(Permit.starts_at < f.until)
        stmt = stmt.order_by(Permit.starts_at.desc(), Permit.id.desc())
        return paginate(self.session, stmt, page, size)

    # --- what a permit names ------------------------------------------------------------
    def enterprise(self, scope: Scope, enterprise_id: int) -> Enterprise | None:
        return self.session.scalars(
            select(Enterprise).where(Enterprise.id == enterprise_id, scope.enterprise_filter())
        ).one_or_none()

    def enterprise_names(self, ids: Collection[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = self.session.execute(
            select(Enterprise.id, Enterprise.name).where(Enterprise.id.in_(sorted(ids)))
        )
        return {row.id: row.name for row in rows}

    def site_of(self, enterprise_id: int, site_id: int) -> bool:
        found = self.session.scalar(
            select(Site.id).where(Site.id == site_id, Site.enterprise_id == enterprise_id)
        )
        return found is not None

    def enterprise_by_id(self, enterprise_id: int) -> Enterprise | None:
        return self.session.get(Enterprise, enterprise_id)

    def machines(self, ids: Collection[int]) -> list[Machine]:
        if not ids:
            return []
        return list(self.session.scalars(select(Machine).where(Machine.id.in_(sorted(ids)))))

    def welders_employed(self, enterprise_id: int, ids: Collection[int], day: date) -> list[Welder]:
        """The welders among ``ids`` employed by the enterprise on ``day``."""
        if not ids:
            return []
        employed = select(Employment.welder_id).where(
            Employment.enterprise_id == enterprise_id,
            Employment.start_date <= day,
            or_(Employment.end_date.is_(None), Employment.end_date >= day),
        )
        return list(
            self.session.scalars(
                select(Welder).where(Welder.id.in_(sorted(ids)), Welder.id.in_(employed))
            )
        )

    def form_choices(self, enterprise_id: int, day: date) -> FormChoices:
        """What an applicant picks from: the enterprise's machines in service, the
        welders it employs on ``day``, and the people with an account who may sign
        (its staff and those welders' accounts)."""
        employed = select(Employment.welder_id).where(
            Employment.enterprise_id == enterprise_id,
            Employment.start_date <= day,
            or_(Employment.end_date.is_(None), Employment.end_date >= day),
        )
        welders = list(
            self.session.scalars(
                select(Welder).where(Welder.id.in_(employed)).order_by(Welder.name, Welder.id)
            )
        )
        machines = list(
            self.session.scalars(
                select(Machine)
                .where(
                    Machine.enterprise_id == enterprise_id,
                    Machine.status != MachineStatus.RETIRED.value,
                )
                .order_by(Machine.code)
            )
        )
        accounts = list(
            self.session.scalars(
                select(User)
                .where(
                    User.is_active.is_(True),
                    or_(User.enterprise_id == enterprise_id, User.welder_id.in_(employed)),
                )
                .order_by(User.display_name, User.id)
            )
        )
        sites = list(
            self.session.scalars(
                select(Site).where(Site.enterprise_id == enterprise_id).order_by(Site.name)
            )
        )
        return FormChoices(machines, welders, accounts, sites)

    def welders(self, ids: Collection[int]) -> list[Welder]:
        if not ids:
            return []
        return list(self.session.scalars(select(Welder).where(Welder.id.in_(sorted(ids)))))

    def certificates_of(self, welder_ids: Collection[int]) -> list[Certificate]:
        if not welder_ids:
            return []
        return list(
            self.session.scalars(
                select(Certificate)
                .where(Certificate.welder_id.in_(sorted(welder_ids)))
                .order_by(Certificate.id)
            )
        )

    def other_claims(
        self, machine_ids: Collection[int], exclude_permit_id: int
    ) -> tuple[MachineClaim, ...]:
        """The other permits booking any of ``machine_ids`` (in a claiming status),
        each with all its machines."""
        if not machine_ids:
            return ()
        naming = select(PermitMachine.permit_id).where(
            PermitMachine.machine_id.in_(sorted(machine_ids))
        )
        rows = self.session.execute(
            select(Permit, PermitMachine.machine_id, Machine.code)
            .join(PermitMachine, PermitMachine.permit_id == Permit.id)
            .join(Machine, Machine.id == PermitMachine.machine_id)
            .where(
                Permit.id.in_(naming),
                Permit.id != exclude_permit_id,
                Permit.status.in_(sorted(s.value for s in CLAIMING_STATUSES)),
            )
            .order_by(Permit.id)
        ).all()
        grouped: dict[int, tuple[Permit, list[tuple[int, str]]]] = {}
        for permit, machine_id, code in rows:
            grouped.setdefault(permit.id, (permit, []))[1].append((machine_id, code))
        return tuple(
            MachineClaim(
                permit_id=p.id,
                number=p.number,
                machine_ids=frozenset(mid for mid, _ in labels),
                starts_at=p.starts_at,
                ends_at=p.ends_at,
                machine_labels=tuple(labels),
            )
            for p, labels in grouped.values()
        )

    # --- the scan -------------------------------------------------------------------------
    def scan_candidates(self, welder_id: int, machine_id: int) -> list[ScanCandidate]:
        """The started permits naming the welder or the machine, with who and what
        they name: one statement of plain columns (the small cross product of
        welders × machines is taken apart here). The scan path is latency-critical:
        no entities, no JSON of the step log, a statement built once."""
        rows = self.session.execute(
            _SCAN_CANDIDATES, {"welder_id": welder_id, "machine_id": machine_id}
        ).all()
        found: dict[int, ScanCandidate] = {}
        for r in rows:
            candidate = found.get(r.id)
            if candidate is None:
                candidate = found[r.id] = ScanCandidate(
                    r.id,
                    r.number,
                    r.status,
                    r.enterprise_id,
                    r.site_id,
                    r.starts_at,
                    r.ends_at,
                    r.hot_spot_lat,
                    r.hot_spot_lon,
                    r.hot_spot_radius_m,
                    r.hot_spot_polygon,
                    r.crowded_exception,
                    set(),
                    set(),
                )
            if r.welder_id is not None:
                candidate.welder_ids.add(r.welder_id)
            if r.machine_id is not None:
                candidate.machine_ids.add(r.machine_id)
        return list(found.values())


_SCAN_COLUMNS = (
    Permit.id,
    Permit.number,
    Permit.status,
    Permit.enterprise_id,
    Permit.site_id,
    Permit.starts_at,
    Permit.ends_at,
    Permit.hot_spot_lat,
    Permit.hot_spot_lon,
    Permit.hot_spot_radius_m,
    Permit.hot_spot_polygon,
    Permit.crowded_exception,
)


def certificate_ids(rows: Sequence[PermitWelder]) -> set[int]:
    return {cid for row in rows for cid in row.certificate_ids}


# Built once with bind parameters and prepared on PostgreSQL, as the scan's other
# reads (unlock/repository.py): every scan where a permit is required runs it.
_SCAN_CANDIDATES = (
    select(*_SCAN_COLUMNS, PermitWelder.welder_id, PermitMachine.machine_id)
    .outerjoin(PermitWelder, PermitWelder.permit_id == Permit.id)
    .outerjoin(PermitMachine, PermitMachine.permit_id == Permit.id)
    .where(
        Permit.status.in_(SCAN_CANDIDATE_STATUSES),
        or_(
            Permit.id.in_(
                select(PermitWelder.permit_id).where(
                    PermitWelder.welder_id == bindparam("welder_id")
                )
            ),
            Permit.id.in_(
                select(PermitMachine.permit_id).where(
                    PermitMachine.machine_id == bindparam("machine_id")
                )
            ),
        ),
    )
    .order_by(Permit.id)
    .execution_options(**{PREPARED: True})
)
