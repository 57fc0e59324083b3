"""Read queries of the device pages: live state on the machine list, a machine's
timeline sources, the alarm list, and the lookups of the installer's page.

Every read of a machine, a binding or an alarm goes through the Scope: records
outside it are simply not found. The device tables (messages, state, commands)
carry no enterprise of their own, so they are only read for a machine that the
scope has already let through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, Text, and_, cast, exists, false, func, or_, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.device.models import DeviceAlarm, DeviceCommand, DeviceMessage, DeviceState
from weldguard.enterprise.models import Enterprise, Site
from weldguard.jurisdiction.paths import within
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.machine.repository import MachineFilter, MachineRepository
from weldguard.pagination import COUNT_CAP, MAX_PAGE_SIZE, Page

# The count of a live-filtered machine list stops here (see machine_page).
LIVE_COUNT_CAP = 1_000


class LiveFilter(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    NO_CHIP = "no_chip"

    @property
    def label(self) -> str:
        return {"online": "在线", "offline": "离线", "no_chip": "未装芯片"}[self.value]


@dataclass(frozen=True)
class MachineLive:
    """A machine with its enterprise, the chip in its open binding and that
    chip's live state (None when no chip is fitted or it never reported)."""

    machine: Machine
    enterprise: Enterprise
    chip: Chip | None
    state: DeviceState | None


# The ingest worker marks a silent chip offline itself (``online`` false) and
# flushes its live state about once a second, later under load: a chip that
# reported just in time reads past its deadline in the database until that flush.
# The deadline only guards against a worker that stopped flushing altogether, so
# it is given this much slack before it overrules the worker's flag.
STATE_FLUSH_SLACK = timedelta(seconds=10)


def online_clause(now: datetime) -> ColumnElement[bool]:
    """The chip counts as online: flagged so and its deadline not passed by more
    than the flush slack (a stale flag, left by a stopped ingest worker, does not
    read as online)."""
    return and_(
        DeviceState.online.is_(True),
        or_(
            DeviceState.offline_deadline.is_(None),
            DeviceState.offline_deadline > now - STATE_FLUSH_SLACK,
        ),
    )


def live_clause(live: LiveFilter, now: datetime, machine_id: Any) -> ColumnElement[bool]:
    """A WHERE clause on a machine id column: correlated EXISTS probes of the
    open binding and its chip's state, each an index lookup per machine."""
    fitted = exists(
        select(ChipBinding.id).where(
            ChipBinding.machine_id == machine_id, ChipBinding.removed_at.is_(None)
        )
    )
    if live is LiveFilter.NO_CHIP:
        return ~fitted
    online = exists(
        select(ChipBinding.id)
        .join(Chip, Chip.id == ChipBinding.chip_id)
        .join(DeviceState, DeviceState.device_id == Chip.device_id)
        .where(
            ChipBinding.machine_id == machine_id,
            ChipBinding.removed_at.is_(None),
            online_clause(now),
        )
    )
    if live is LiveFilter.ONLINE:
        return online
    return and_(fitted, ~online)


def is_online(state: DeviceState | None, now: datetime) -> bool:
    """The Python twin of online_clause."""
    if state is None or not state.online:
        return False
    return state.offline_deadline is None or state.offline_deadline > now - STATE_FLUSH_SLACK


@dataclass(frozen=True)
class AlarmFilter:
    kind: str | None = None
    open: bool | None = None  # True: not cleared; False: cleared
    area_path: str | None = None
    enterprise_id: int | None = None
    machine_id: int | None = None


@dataclass(frozen=True)
class AlarmRow:
    alarm: DeviceAlarm
    machine: Machine | None
    enterprise: Enterprise | None


@dataclass(frozen=True, slots=True)
class MessageView:
    """What the timeline reads of a stored up message."""

    id: int
    kind: str
    device_ts: datetime
    buffered: bool
    payload: dict[str, Any]


@dataclass(frozen=True)
class Span:
    """A window of the timeline: after ``floor`` (exclusive), up to ``until``
    (inclusive); None leaves that side open."""

    floor: datetime | None
    until: datetime | None


def _payload(raw: str | bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else {}


def _window(column: Any, span: Span) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if span.floor is not None:
        clauses.append(column > span.floor)
    if span.until is not None:
        clauses.append(column <= span.until)
    return clauses


def _paginate_rows(
    session: Session, stmt: Select[Any], count_stmt: Select[Any], page: int, size: int
) -> tuple[list[Any], int, int, int, bool]:
    size = min(max(1, size), MAX_PAGE_SIZE)
    limited = count_stmt.order_by(None).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(limited)) or 0
    page = max(1, page)
    rows = [tuple(row) for row in session.execute(stmt.limit(size).offset((page - 1) * size))]
    return rows, min(total, COUNT_CAP), page, size, total > COUNT_CAP


class DeviceViewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.machines = MachineRepository(session)

    # --- machine list with live state ----------------------------------------
    def machine_page(
        self,
        scope: Scope,
        f: MachineFilter,
        live: LiveFilter | None,
        now: datetime,
        page: int,
        size: int,
    ) -> Page[MachineLive]:
        """One page of machines, each with enterprise, current chip and live
        state, in one statement (plus the capped count).

        The page's ids are chosen first, in a subquery that is the register's own
        search plus, for a live filter, a correlated EXISTS: the planner keeps
        walking machines in id order and stops at the page, where outer joins
        over the whole scope would make it join and sort every machine (SQLite
        took 4x longer for a district's 60k machines). The joins then fetch
        chip and state for those ids only."""
        base = self.machines.search_statement(scope, f)
        filtered = base if live is None else base.where(live_clause(live, now, Machine.id))
        size = min(max(1, size), MAX_PAGE_SIZE)
        page = max(1, page)
        if live is not None and self.session.get_bind().dialect.name == "sqlite":
            # SQLite would probe every machine of the scope before sorting them.
            # Sorted first, in a subquery it runs as a co-routine (LIMIT -1 OFFSET
            # 0 keeps it from being flattened), the probes walk the ids in that
            # order and stop at the page: 200 -> 60 ms for a district's 60k
            # machines. PostgreSQL plans the plain form well (35 ms).
            ordered = base.with_only_columns(Machine.id).offset(0).subquery("ordered")
            ids = (
                select(ordered.c.id.label("id"))
                .where(live_clause(live, now, ordered.c.id))
                .limit(size)
                .offset((page - 1) * size)
                .subquery("page_ids")
            )
        else:
            ids = (
                filtered.with_only_columns(Machine.id)
                .limit(size)
                .offset((page - 1) * size)
                .subquery("page_ids")
            )
        stmt = (
            select(Machine, Enterprise, Chip, DeviceState)
            .join(ids, ids.c.id == Machine.id)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .outerjoin(
                ChipBinding,
                and_(ChipBinding.machine_id == Machine.id, ChipBinding.removed_at.is_(None)),
            )
            .outerjoin(Chip, Chip.id == ChipBinding.chip_id)
            .outerjoin(DeviceState, DeviceState.device_id == Chip.device_id)
            .where(scope.enterprise_filter())
            .order_by(Machine.id.desc())
        )
        # Live state changes by the minute: past LIVE_COUNT_CAP a live-filtered
        # count says "1000+" instead of probing every machine of a city.
        cap = COUNT_CAP if live is None else LIVE_COUNT_CAP
        limited = filtered.with_only_columns(Machine.id).order_by(None).limit(cap + 1)
        total = self.session.scalar(select(func.count()).select_from(limited.subquery())) or 0
        items = [MachineLive(m, e, c, s) for m, e, c, s in self.session.execute(stmt)]
        return Page(items=items, total=min(total, cap), page=page, size=size, capped=total > cap)

    def machine_live(self, scope: Scope, machine_id: int) -> MachineLive | None:
        row = self.session.execute(
            select(Machine, Enterprise, Chip, DeviceState)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .outerjoin(
                ChipBinding,
                and_(ChipBinding.machine_id == Machine.id, ChipBinding.removed_at.is_(None)),
            )
            .outerjoin(Chip, Chip.id == ChipBinding.chip_id)
            .outerjoin(DeviceState, DeviceState.device_id == Chip.device_id)
            .where(Machine.id == machine_id, scope.enterprise_filter())
            .limit(1)
        ).first()
        if row is None:
            return None
        machine, enterprise, chip, state = row
        return MachineLive(machine, enterprise, chip, state)

    def site_of(self, machine: Machine) -> Site | None:
        if machine.site_id is None:
            return None
        return self.session.scalars(
            select(Site).where(
                Site.id == machine.site_id, Site.enterprise_id == machine.enterprise_id
            )
        ).one_or_none()

    # --- bindings -------------------------------------------------------------
    def bindings_of(self, scope: Scope, machine_id: int) -> list[tuple[ChipBinding, Chip]]:
        """A visible machine's bindings, newest first."""
        rows = self.session.execute(
            select(ChipBinding, Chip)
            .join(Chip, Chip.id == ChipBinding.chip_id)
            .join(Machine, Machine.id == ChipBinding.machine_id)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(ChipBinding.machine_id == machine_id, scope.enterprise_filter())
            .order_by(ChipBinding.fitted_at.desc(), ChipBinding.id.desc())
        )
        return [(b, c) for b, c in rows]

    def visible_binding(
        self, scope: Scope, binding_id: int
    ) -> tuple[ChipBinding, Chip, Machine, Enterprise] | None:
        row = self.session.execute(
            select(ChipBinding, Chip, Machine, Enterprise)
            .join(Chip, Chip.id == ChipBinding.chip_id)
            .join(Machine, Machine.id == ChipBinding.machine_id)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(ChipBinding.id == binding_id, scope.enterprise_filter())
        ).first()
        if row is None:
            return None
        binding, chip, machine, enterprise = row
        return binding, chip, machine, enterprise

    # --- the installer's lookups ---------------------------------------------------
    def visible_machine_by_code(self, scope: Scope, code: str) -> MachineLive | None:
        machine_id = self.session.scalar(
            select(Machine.id)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(Machine.code == code, scope.enterprise_filter())
        )
        return None if machine_id is None else self.machine_live(scope, machine_id)

    def chip_by_device_id(self, device_id: str) -> Chip | None:
        """Unscoped: a chip belongs to no jurisdiction until it is fitted."""
        return self.machines.chip_by_device_id(device_id)

    def machine_holding_chip(self, chip_id: int) -> Machine | None:
        """The machine the chip currently sits in, whoever's it is (the caller
        decides what of it may be shown)."""
        return self.session.scalars(
            select(Machine)
            .join(ChipBinding, ChipBinding.machine_id == Machine.id)
            .where(ChipBinding.chip_id == chip_id, ChipBinding.removed_at.is_(None))
            .limit(1)
        ).first()

    def machine_visible(self, scope: Scope, machine_id: int) -> bool:
        return self.machines.visible(scope, machine_id) is not None

    # --- timeline sources (the machine already checked against the scope) -------
    @staticmethod
    def _messages_of(bindings: Sequence[tuple[ChipBinding, Chip]]) -> ColumnElement[bool]:
        """Messages of the chips while they sat in this machine."""
        parts = []
        for binding, chip in bindings:
            clause = and_(
                DeviceMessage.device_id == chip.device_id,
                DeviceMessage.device_ts >= binding.fitted_at,
            )
            if binding.removed_at is not None:
                clause = and_(clause, DeviceMessage.device_ts < binding.removed_at)
            parts.append(clause)
        return or_(*parts) if parts else false()

    def messages(
        self,
        bindings: Sequence[tuple[ChipBinding, Chip]],
        span: Span,
        limit: int,
        *,
        kinds: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[MessageView]:
        """Plain rows, not ORM objects: a timeline page reads up to a few
        thousand heartbeats and telemetry windows."""
        if not bindings:
            return []
        # The payload as text, decoded with orjson: the JSON type's standard
        # library decoder was most of a page's time.
        stmt = select(
            DeviceMessage.id,
            DeviceMessage.kind,
            DeviceMessage.device_ts,
            DeviceMessage.buffered,
            cast(DeviceMessage.payload, Text),
        ).where(self._messages_of(bindings), *_window(DeviceMessage.device_ts, span))
        if kinds is not None:
            stmt = stmt.where(DeviceMessage.kind.in_(list(kinds)))
        if exclude:
            stmt = stmt.where(DeviceMessage.kind.not_in(list(exclude)))
        stmt = stmt.order_by(DeviceMessage.device_ts.desc(), DeviceMessage.id.desc()).limit(limit)
        return [
            MessageView(mid, kind, ts, buffered, _payload(raw))
            for mid, kind, ts, buffered, raw in self.session.execute(stmt)
        ]

    def commands(self, machine_id: int, span: Span, limit: int) -> list[DeviceCommand]:
        return list(
            self.session.scalars(
                select(DeviceCommand)
                .where(
                    DeviceCommand.machine_id == machine_id, *_window(DeviceCommand.created_at, span)
                )
                .order_by(DeviceCommand.created_at.desc())
                .limit(limit)
            )
        )

    def alarms_raised(self, machine_id: int, span: Span, limit: int) -> list[DeviceAlarm]:
        return list(
            self.session.scalars(
                select(DeviceAlarm)
                .where(DeviceAlarm.machine_id == machine_id, *_window(DeviceAlarm.raised_at, span))
                .order_by(DeviceAlarm.raised_at.desc())
                .limit(limit)
            )
        )

    def alarms_cleared(self, machine_id: int, span: Span, limit: int) -> list[DeviceAlarm]:
        return list(
            self.session.scalars(
                select(DeviceAlarm)
                .where(
                    DeviceAlarm.machine_id == machine_id,
                    DeviceAlarm.cleared_at.is_not(None),
                    *_window(DeviceAlarm.cleared_at, span),
                )
                .order_by(DeviceAlarm.cleared_at.desc())
                .limit(limit)
            )
        )

    def has_older(
        self, machine_id: int, bindings: Sequence[tuple[ChipBinding, Chip]], before: datetime
    ) -> bool:
        """Whether any message, command or alarm of the machine lies at or before
        ``before`` (each an indexed probe), so the timeline offers no empty pages."""
        probes: list[Select[Any]] = [
            select(DeviceCommand.id).where(
                DeviceCommand.machine_id == machine_id, DeviceCommand.created_at <= before
            ),
            select(DeviceAlarm.id).where(
                DeviceAlarm.machine_id == machine_id, DeviceAlarm.raised_at <= before
            ),
        ]
        if bindings:
            probes.append(
                select(DeviceMessage.id).where(
                    self._messages_of(bindings), DeviceMessage.device_ts <= before
                )
            )
        return any(self.session.scalar(probe.limit(1)) is not None for probe in probes)

    # --- alarms list -----------------------------------------------------------
    def alarm_page(self, scope: Scope, f: AlarmFilter, page: int, size: int) -> Page[AlarmRow]:
        """Alarms of the enterprises in scope, newest first. An alarm raised by
        a chip fitted to no machine has no enterprise: only the admin sees it."""
        if scope.everything:
            stmt = select(DeviceAlarm).outerjoin(
                Enterprise, Enterprise.id == DeviceAlarm.enterprise_id
            )
        else:
            stmt = (
                select(DeviceAlarm)
                .join(Enterprise, Enterprise.id == DeviceAlarm.enterprise_id)
                .where(scope.enterprise_filter())
            )
        if f.kind:
            stmt = stmt.where(DeviceAlarm.kind == f.kind)
        if f.open is True:
            stmt = stmt.where(DeviceAlarm.cleared_at.is_(None))
        elif f.open is False:
            stmt = stmt.where(DeviceAlarm.cleared_at.is_not(None))
        if f.area_path:
            stmt = stmt.where(within(Enterprise.area_path, f.area_path))
        if f.enterprise_id is not None:
            stmt = stmt.where(DeviceAlarm.enterprise_id == f.enterprise_id)
        if f.machine_id is not None:
            stmt = stmt.where(DeviceAlarm.machine_id == f.machine_id)
        count_stmt = stmt.with_only_columns(DeviceAlarm.id)
        rows_stmt = (
            stmt.outerjoin(Machine, Machine.id == DeviceAlarm.machine_id)
            .add_columns(Machine, Enterprise)
            .order_by(DeviceAlarm.raised_at.desc(), DeviceAlarm.id.desc())
        )
        rows, total, number, size, capped = _paginate_rows(
            self.session, rows_stmt, count_stmt, page, size
        )
        items = [AlarmRow(a, m, e) for a, m, e in rows]
        return Page(items=items, total=total, page=number, size=size, capped=capped)
