"""Every query of the permit alarms and of the continuous monitor's readings, and
the supervisor's claims on permits.

Reads for people go through the caller's Scope exactly as the permits do
(``PermitRepository.scope_filter``): an alarm is seen by whoever sees its permit."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.domain.permits import MonitorReading
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.paths import within
from weldguard.pagination import COUNT_CAP, MAX_PAGE_SIZE, Page
from weldguard.permit.alarm_models import PermitAlarm, PermitMonitorReading
from weldguard.permit.models import Permit
from weldguard.permit.repository import permit_scope

__all__ = [
    "AlarmRow",
    "MonitorRepository",
    "PermitAlarmFilter",
    "PermitAlarmRepository",
    "RaisedAlarm",
]

_ALARMS = cast(Table, PermitAlarm.__table__)


@dataclass(frozen=True)
class PermitAlarmFilter:
    state: Literal["open", "cleared"] | None = None
    kind: str | None = None
    enterprise_id: int | None = None
    permit_id: int | None = None
    area_path: str | None = None  # a subtree (the page's area filter)


@dataclass(frozen=True)
class AlarmRow:
    alarm: PermitAlarm
    permit_number: str
    enterprise_name: str


@dataclass(frozen=True)
class RaisedAlarm:
    """A condition a supervisor pass found on a permit."""

    kind: str
    message: str


class PermitAlarmRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- for people -------------------------------------------------------------------
    @staticmethod
    def scope_filter(scope: Scope) -> ColumnElement[bool]:
        """The permits' own rule, on the alarm's copies of area and enterprise."""
        return permit_scope(
            scope, PermitAlarm.permit_id, PermitAlarm.area_path, PermitAlarm.enterprise_id
        )

    def list_statement(self, scope: Scope, f: PermitAlarmFilter) -> Select[PermitAlarm]:
        stmt = select(PermitAlarm).where(self.scope_filter(scope))
        if f.state == "open":
            stmt = stmt.where(PermitAlarm.cleared_at.is_(None))
        elif f.state == "cleared":
            stmt = stmt.where(PermitAlarm.cleared_at.is_not(None))
        if f.kind is not None:
            stmt = stmt.where(PermitAlarm.kind == f.kind)
        if f.enterprise_id is not None:
            stmt = stmt.where(PermitAlarm.enterprise_id == f.enterprise_id)
        if f.permit_id is not None:
            stmt = stmt.where(PermitAlarm.permit_id == f.permit_id)
        if f.area_path is not None:
            stmt = stmt.where(within(PermitAlarm.area_path, f.area_path))
        return stmt

    def page(self, scope: Scope, f: PermitAlarmFilter, page: int, size: int) -> Page[AlarmRow]:
        """Newest first, within the scope, with each permit's number and enterprise."""
        size = min(max(1, size), MAX_PAGE_SIZE)
        page = max(1, page)
        base = self.list_statement(scope, f)
        limited = base.with_only_columns(PermitAlarm.id).limit(COUNT_CAP + 1).subquery()
        total = int(self.session.scalar(select(func.count()).select_from(limited)) or 0)
        rows = self.session.execute(
            base.join(Permit, Permit.id == PermitAlarm.permit_id)
            .join(Enterprise, Enterprise.id == PermitAlarm.enterprise_id)
            .add_columns(Permit.number, Enterprise.name)
            .order_by(PermitAlarm.raised_at.desc(), PermitAlarm.id.desc())
            .limit(size)
            .offset((page - 1) * size)
        ).all()
        items = [AlarmRow(alarm, number, name) for alarm, number, name in rows]
        return Page(
            items=items,
            total=min(total, COUNT_CAP),
            page=page,
            size=size,
            capped=total > COUNT_CAP,
        )

    # --- for the supervisor -----------------------------------------------------------
    def candidates(
        self, always: Collection[str], when_due: Collection[str], now: datetime
    ) -> list[int]:
        """The permits in ``always``, and those in ``when_due`` whose window has
        ended or that still have an open alarm: what a supervisor pass looks at."""
        open_alarm = exists().where(
            PermitAlarm.permit_id == Permit.id, PermitAlarm.cleared_at.is_(None)
        )
        stmt = (
            select(Permit.id)
            .where(
                or_(
                    Permit.status.in_(sorted(always)),
                    and_(
                        Permit.status.in_(sorted(when_due)),
                        or_(Permit.ends_at <= now, open_alarm),
                    ),
                )
            )
            .order_by(Permit.id)
        )
        return list(self.session.scalars(stmt))

    def claim(self, permit_id: int, statuses: Collection[str]) -> bool:
        """Locks the permit for this transaction if it is still in ``statuses`` and
        nobody holds it (PostgreSQL ``FOR UPDATE SKIP LOCKED``: another supervisor
        or a person's step on it makes this pass skip it). SQLite has one writer at
        a time, and the header's version check stops a second event there."""
        found = self.session.scalar(
            select(Permit.id)
            .where(Permit.id == permit_id, Permit.status.in_(sorted(statuses)))
            .with_for_update(skip_locked=True)
        )
        return found is not None

    def open_kinds(self, permit_id: int) -> set[str]:
        return set(
            self.session.scalars(
                select(PermitAlarm.kind).where(
                    PermitAlarm.permit_id == permit_id, PermitAlarm.cleared_at.is_(None)
                )
            )
        )

    def raise_or_repeat(self, permit: Permit, alarms: Sequence[RaisedAlarm], now: datetime) -> None:
        """Raises each as a new open alarm, or counts one more sighting of the open
        one of that permit and kind (the partial unique index is the arbiter)."""
        if not alarms:
            return
        postgres = self.session.get_bind().dialect.name == "postgresql"
        ins = (pg_insert if postgres else sqlite_insert)(_ALARMS)
        stmt = ins.on_conflict_do_update(
            index_elements=[_ALARMS.c.permit_id, _ALARMS.c.kind],
            index_where=_ALARMS.c.cleared_at.is_(None),
            set_={
                "count": _ALARMS.c.count + 1,
                "last_seen_at": ins.excluded.last_seen_at,
                "message": ins.excluded.message,
            },
        )
        self.session.execute(
            stmt,
            [
                {
                    "permit_id": permit.id,
                    "enterprise_id": permit.enterprise_id,
                    "area_path": permit.area_path,
                    "kind": a.kind,
                    "message": a.message,
                    "raised_at": now,
                    "last_seen_at": now,
                    "count": 1,
                    "cleared_at": None,
                }
                for a in alarms
            ],
        )

    def clear(self, permit_id: int, kinds: Collection[str], now: datetime) -> int:
        if not kinds:
            return 0
        result = self.session.execute(
            update(PermitAlarm)
            .where(
                PermitAlarm.permit_id == permit_id,
                PermitAlarm.kind.in_(sorted(kinds)),
                PermitAlarm.cleared_at.is_(None),
            )
            .values(cleared_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def clear_unsupervised(self, statuses: Collection[str], now: datetime) -> int:
        """Clears the open alarms of permits no longer in ``statuses`` (closed,
        cancelled, expired before work): nothing of theirs can still need action.
        One conditional UPDATE: safe with several supervisors."""
        result = self.session.execute(
            update(PermitAlarm)
            .where(
                PermitAlarm.cleared_at.is_(None),
                PermitAlarm.permit_id.in_(
                    select(Permit.id).where(Permit.status.not_in(sorted(statuses)))
                ),
            )
            .values(cleared_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class MonitorRepository:
    """The continuous gas monitor's readings of the permits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, rows: Sequence[PermitMonitorReading]) -> None:
        self.session.add_all(rows)
        self.session.flush()

    def latest(self, permit_id: int, now: datetime) -> tuple[MonitorReading, ...]:
        """Each gas's latest reading taken by ``now``: all the rules read (an older
        reading of a gas never decides anything while a newer one exists)."""
        r = PermitMonitorReading
        newest = (
            select(r.gas, func.max(r.taken_at))
            .where(r.permit_id == permit_id, r.taken_at <= now)
            .group_by(r.gas)
        )
        rows = self.session.scalars(
            select(r)
            .where(r.permit_id == permit_id, tuple_(r.gas, r.taken_at).in_(newest))
            .order_by(r.gas, r.id)
        )
        return tuple(
            MonitorReading(x.taken_at, x.gas, x.lel_percent, x.reading_percent, x.device)
            for x in rows
        )

    def recent(self, permit_id: int, limit: int = 50) -> list[PermitMonitorReading]:
        return list(
            self.session.scalars(
                select(PermitMonitorReading)
                .where(PermitMonitorReading.permit_id == permit_id)
                .order_by(PermitMonitorReading.taken_at.desc(), PermitMonitorReading.id.desc())
                .limit(limit)
            )
        )
