"""Reading the scan records and work sessions: counts for the regulators (allowed
against blocked, per child area, per reason, per day), the list of blocked scans,
the sessions list, and a welder's own history.

Every query is narrowed by the viewer's Scope through ``scope.record_filter``:
scan records and sessions carry a copy of their enterprise's area path, so a
subtree is an index range on ``(area_path, scanned_at)`` with no join, and the
per-area counts do not move when an enterprise is edited later.

Scale (the Shandong figures: 13 M scans a year in a province, 0.4 % blocked):
counts are ``GROUP BY`` over one index range bounded by the period, per child
area by the prefix of the path (``substr``), per reason over the blocked rows
only (the JSON array of codes unnested in SQL), per day by the China day of the
scan. Lists are newest first, bounded by a period, their totals capped
(``pagination.COUNT_CAP``). bench/scan_stats.py measures them.

Counts over a long period read the daily rollup (``scan_day_count``, folded by
unlock/scan_rollup.py) for the days it holds and the raw table for the rest
(today, yesterday, partial days, days not folded yet), and add them up: the same
numbers as the raw table alone, a few rows per day instead of every scan."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.clock import SHANGHAI, local_today
from weldguard.domain.authorization import ReasonCode
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.paths import within
from weldguard.machine.models import Machine
from weldguard.pagination import COUNT_CAP, MAX_PAGE_SIZE, Page
from weldguard.report.stats_repository import StatsRepository
from weldguard.unlock.models import ScanOutcome, ScanRecord, WorkSession
from weldguard.unlock.rollup_models import ScanDayCount, ScanRollupDay, ScanRollupSector
from weldguard.welder.models import Welder

__all__ = [
    "DEFAULT_PERIOD_DAYS",
    "DayCounts",
    "OutcomeCounts",
    "RecordRepository",
    "ScanFilter",
    "ScanRow",
    "ScanStats",
    "SessionFilter",
    "SessionRow",
    "breakdown_parent",
    "china_day",
    "default_period",
    "local_day_bounds",
    "reason_label",
    "scan_statistics",
]

# China has kept UTC+8 without daylight saving since 1991.
_UTC_OFFSET_HOURS = 8


def reason_label(code: str) -> str:
    """The Chinese name of a stored reason code (the code itself if unknown)."""
    try:
        return ReasonCode(code).label
    except ValueError:
        return code


def local_day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, ...]:
    """China days (both inclusive) as a half-open UTC range."""

    def start(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)

    return (
        start(since) if since else None,
        start(until + timedelta(days=1)) if until else None,
    )


def china_day(column: Any, dialect: str) -> ColumnElement[Any]:
    """The China calendar day of a UTC timestamp column, in SQL."""
    if dialect == "postgresql":
        return func.date(func.timezone("Asia/Shanghai", column))
    return func.date(column, f"+{_UTC_OFFSET_HOURS} hours")


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _reason_pattern(code: str) -> str:
    # The codes are a JSON array of distinct identifiers: the quoted code matches
    # one element exactly, on both backends.
    return '%"' + code.replace("%", "").replace("_", "\\_") + '"%'


@dataclass(frozen=True)
class OutcomeCounts:
    allowed: int = 0
    blocked: int = 0
    invalid_label: int = 0

    @property
    def total(self) -> int:
        return self.allowed + self.blocked + self.invalid_label

    @property
    def blocked_percent(self) -> float:
        decided = self.allowed + self.blocked
        return round(100.0 * self.blocked / decided, 2) if decided else 0.0

    @classmethod
    def of(cls, by_outcome: dict[str, int]) -> OutcomeCounts:
        return cls(
            allowed=by_outcome.get(ScanOutcome.ALLOWED, 0),
            blocked=by_outcome.get(ScanOutcome.BLOCKED, 0),
            invalid_label=by_outcome.get(ScanOutcome.INVALID_LABEL, 0),
        )


@dataclass(frozen=True)
class DayCounts:
    day: date
    counts: OutcomeCounts


@dataclass(frozen=True)
class ScanFilter:
    """Narrows a scope's scans. ``since`` inclusive, ``until`` exclusive (UTC)."""

    area_path: str | None = None
    enterprise_id: int | None = None
    machine_id: int | None = None
    welder_id: int | None = None
    outcome: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ScanRow:
    record: ScanRecord
    machine_code: str | None
    enterprise_name: str | None
    welder_name: str | None
    reason_labels: list[str] = field(default_factory=list)
    warning_labels: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """The messages of the reasons that blocked the scan, as shown to the
        welder at the time, in the reporting order."""
        return self._messages(blocking=True)

    @property
    def warning_messages(self) -> list[str]:
        return self._messages(blocking=False)

    def _messages(self, blocking: bool) -> list[str]:
        codes = set(self.record.reason_codes or [])
        out = []
        for item in self.record.reasons or []:
            if not isinstance(item, dict) or not item.get("message"):
                continue
            is_blocking = item.get("blocking")
            if is_blocking is None:
                is_blocking = item.get("code") in codes
            if bool(is_blocking) == blocking:
                out.append(str(item["message"]))
        return out


@dataclass(frozen=True)
class SessionFilter:
    area_path: str | None = None
    enterprise_id: int | None = None
    machine_id: int | None = None
    welder_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SessionRow:
    session: WorkSession
    machine_code: str | None
    welder_name: str | None
    enterprise_name: str | None


def _paginate(
    session: Session,
    rows_stmt: Select[*tuple[Any, ...]],
    count_stmt: Select[Any],
    page: int,
    size: int,
) -> tuple[list[Any], int, int, int, bool]:
    size = min(max(1, size), MAX_PAGE_SIZE)
    limited = count_stmt.order_by(None).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(limited)) or 0
    page = max(1, page)
    rows = list(session.execute(rows_stmt.limit(size).offset((page - 1) * size)).all())
    return rows, min(total, COUNT_CAP), page, size, total > COUNT_CAP


@dataclass(frozen=True)
class _Sources:
    """Where a filter's scans are counted: runs of China days (first, last, both
    inclusive) the daily rollup holds, and the rest of the period (the days not
    folded yet, partial days) as filters over the raw table."""

    folded: tuple[tuple[date, date], ...]
    raw: tuple[ScanFilter, ...]


@dataclass(frozen=True)
class _Columns:
    """One source of counts: the raw table (one row per scan) or the rollup."""

    area_path: Any
    outcome: Any
    codes: Any  # the JSON text of the reason codes
    day: Any
    count: ColumnElement[Any]
    where: list[ColumnElement[bool]]


def _first_full_day(since: datetime) -> date:
    day = local_today(since)
    start, _ = local_day_bounds(day, None)
    return day if start is not None and start >= since else day + timedelta(days=1)


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


class RecordRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # --- scans: conditions ----------------------------------------------------
    def _scan_where(self, scope: Scope, f: ScanFilter) -> list[ColumnElement[bool]]:
        where = [
            scope.record_filter(
                ScanRecord.area_path, ScanRecord.enterprise_id, ScanRecord.welder_id
            )
        ]
        if f.area_path:
            where.append(within(ScanRecord.area_path, f.area_path))  # type: ignore[arg-type]
        if f.enterprise_id is not None:
            where.append(ScanRecord.enterprise_id == f.enterprise_id)
        if f.machine_id is not None:
            where.append(ScanRecord.machine_id == f.machine_id)
        if f.welder_id is not None:
            where.append(ScanRecord.welder_id == f.welder_id)
        if f.outcome:
            where.append(ScanRecord.outcome == f.outcome)
        if f.reason:
            pattern = _reason_pattern(f.reason)
            where.append(cast(ScanRecord.reason_codes, String).like(pattern, escape="\\"))
        if f.since is not None:
            where.append(ScanRecord.scanned_at >= f.since)
        if f.until is not None:
            where.append(ScanRecord.scanned_at < f.until)
        return where

    # --- scans: raw rows or the daily rollup -------------------------------------
    def _sources(self, scope: Scope, f: ScanFilter) -> _Sources:
        """The rollup (unlock/scan_rollup.py) holds counts per day, area, sector,
        outcome and reason codes: it serves area scopes (with or without sectors)
        and the area, outcome and reason filters. Enterprise and welder scopes,
        and the enterprise, machine and welder filters, are narrow index ranges on
        the raw table and stay there."""
        whole = _Sources((), (f,))
        if scope.enterprise_id is not None or scope.welder_id is not None:
            return whole
        if not scope.everything and scope.area_path is None:
            return whole
        if f.enterprise_id is not None or f.machine_id is not None or f.welder_id is not None:
            return whole
        stmt = select(ScanRollupDay.day).order_by(ScanRollupDay.day)
        if f.since is not None:
            stmt = stmt.where(ScanRollupDay.day >= _first_full_day(f.since))
        if f.until is not None:
            stmt = stmt.where(ScanRollupDay.day < local_today(f.until))
        days = [_as_date(d) for d in self.session.scalars(stmt)]
        if not days:
            return whole
        if not scope.everything and scope.sectors is not None and self._sectors_moved(scope):
            return whole
        runs = _runs(days)
        raw: list[ScanFilter] = []
        cursor = f.since
        for first, last in runs:
            start, end = local_day_bounds(first, last)
            assert start is not None and end is not None
            if cursor is None or cursor < start:
                raw.append(replace(f, since=cursor, until=start))
            cursor = end
        if f.until is None or (cursor is not None and cursor < f.until):
            raw.append(replace(f, since=cursor, until=f.until))
        return _Sources(tuple(runs), tuple(raw))

    def _sectors_moved(self, scope: Scope) -> bool:
        """Whether an enterprise moved into or out of the scope's sectors since its
        scans were folded (the rollup catches up at its next run; until then the
        raw table, which follows the current sector, answers)."""
        sectors = sorted(scope.sectors or ())
        t = ScanRollupSector
        stmt = (
            select(t.enterprise_id)
            .join(Enterprise, Enterprise.id == t.enterprise_id)
            .where(
                Enterprise.sector != t.sector,
                or_(Enterprise.sector.in_(sectors), t.sector.in_(sectors)),
            )
            .limit(1)
        )
        return self.session.scalar(stmt) is not None

    def _rollup_where(
        self, scope: Scope, f: ScanFilter, runs: Sequence[tuple[date, date]]
    ) -> list[ColumnElement[bool]]:
        """``_scan_where`` over the rollup, for the folded days."""
        d = ScanDayCount
        where = [or_(*[and_(d.day >= first, d.day <= last) for first, last in runs])]
        if not scope.everything:
            assert scope.area_path is not None
            where.append(within(d.area_path, scope.area_path))
            if scope.sectors is not None:
                where.append(d.sector.in_(sorted(scope.sectors)))
        if f.area_path:
            where.append(within(d.area_path, f.area_path))
        if f.outcome:
            where.append(d.outcome == f.outcome)
        if f.reason:
            where.append(d.reason_codes.like(_reason_pattern(f.reason), escape="\\"))
        return where

    def _columns(self, scope: Scope, f: ScanFilter) -> list[_Columns]:
        """The sources of ``f``'s counts; their counts add up."""
        sources = self._sources(scope, f)
        out = [
            _Columns(
                area_path=ScanRecord.area_path,
                outcome=ScanRecord.outcome,
                codes=cast(ScanRecord.reason_codes, String),
                day=self._day_expression(),
                count=func.count(),
                where=self._scan_where(scope, part),
            )
            for part in sources.raw
        ]
        if sources.folded:
            d = ScanDayCount
            out.append(
                _Columns(
                    area_path=d.area_path,
                    outcome=d.outcome,
                    codes=d.reason_codes,
                    day=d.day,
                    count=func.sum(d.count),
                    where=self._rollup_where(scope, f, sources.folded),
                )
            )
        return out

    # --- scans: counts ----------------------------------------------------------
    def scan_totals(self, scope: Scope, f: ScanFilter) -> OutcomeCounts:
        counts: dict[str, int] = defaultdict(int)
        for c in self._columns(scope, f):
            stmt = select(c.outcome, c.count).where(*c.where).group_by(c.outcome)
            for outcome, n in self.session.execute(stmt).all():
                counts[outcome] += int(n)
        return OutcomeCounts.of(counts)

    def scan_counts_by_node(
        self, scope: Scope, f: ScanFilter, nodes: Sequence[Jurisdiction]
    ) -> dict[int, OutcomeCounts]:
        """Counts per node (by id) for sibling nodes: one ``GROUP BY`` on the
        prefix of the path per length of the nodes' paths (usually one)."""
        by_length: dict[int, dict[str, int]] = defaultdict(dict)
        for node in nodes:
            by_length[len(node.path)][node.path] = node.id
        raw: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for c in self._columns(scope, f) if nodes else []:
            for length, paths in by_length.items():
                prefix = func.substr(c.area_path, 1, length)
                lowest, highest = min(paths), max(paths)
                stmt = (
                    select(prefix, c.outcome, c.count)
                    .where(*c.where, c.area_path >= lowest, c.area_path < highest[:-1] + "0")
                    .group_by(prefix, c.outcome)
                )
                for path, outcome, n in self.session.execute(stmt).all():
                    node_id = paths.get(path)
                    if node_id is not None:
                        raw[node_id][outcome] += int(n)
        return {node.id: OutcomeCounts.of(raw.get(node.id, {})) for node in nodes}

    def blocked_by_reason(self, scope: Scope, f: ScanFilter) -> list[tuple[str, int]]:
        """Blocked scans per reason code, most frequent first. A scan blocked for
        two reasons counts under both."""
        per_reason: dict[str, int] = defaultdict(int)
        sources = self._sources(scope, f)
        for part in sources.raw:
            for code, n in self._raw_blocked_by_reason(scope, part):
                per_reason[code] += n
        if sources.folded:
            d = ScanDayCount
            stmt = (
                select(d.reason_codes, func.sum(d.count))
                .where(
                    *self._rollup_where(scope, f, sources.folded),
                    d.outcome == ScanOutcome.BLOCKED.value,
                )
                .group_by(d.reason_codes)
            )
            for text, n in self.session.execute(stmt).all():
                for code in json.loads(text) if text else []:
                    per_reason[str(code)] += int(n)
        return sorted(per_reason.items(), key=lambda item: (-item[1], _code_order(item[0])))

    def _raw_blocked_by_reason(self, scope: Scope, f: ScanFilter) -> list[tuple[str, int]]:
        where = [*self._scan_where(scope, f), ScanRecord.outcome == ScanOutcome.BLOCKED.value]
        if self._dialect == "postgresql":
            elements = func.json_array_elements_text(ScanRecord.reason_codes).table_valued("value")
        else:
            elements = func.json_each(ScanRecord.reason_codes).table_valued("value")
        code = elements.c.value
        stmt = (
            select(code, func.count())
            .select_from(ScanRecord)
            .join(elements, literal(True))
            .where(*where)
            .group_by(code)
        )
        return [(str(c), int(n)) for c, n in self.session.execute(stmt).all()]

    def scans_by_day(self, scope: Scope, f: ScanFilter) -> list[DayCounts]:
        """Counts per China calendar day, oldest first; days without scans are
        left out (the caller fills the gaps if it draws a chart)."""
        raw: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for c in self._columns(scope, f):
            stmt = select(c.day, c.outcome, c.count).where(*c.where).group_by(c.day, c.outcome)
            for value, outcome, n in self.session.execute(stmt).all():
                raw[_as_date(value)][outcome] += int(n)
        return [DayCounts(d, OutcomeCounts.of(raw[d])) for d in sorted(raw)]

    def scan_rollup(
        self, scope: Scope, f: ScanFilter, nodes: Sequence[Jurisdiction]
    ) -> tuple[dict[date, OutcomeCounts], dict[int, OutcomeCounts], list[tuple[str, int]]]:
        """Per day, per node (sibling nodes, by id) and per reason in one pass over
        the range: ``GROUP BY`` the China day, the node's prefix of the path, the
        outcome and, for blocked scans only, the list of reason codes as text (a
        few combinations), decoded here. The separate queries above read the
        range three times; at a year of a province's scans that is the cost."""
        paths: dict[str, int] = {node.path: node.id for node in nodes}
        lengths = {len(path) for path in paths}
        per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_node: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_reason: dict[str, int] = defaultdict(int)
        for c in self._columns(scope, f):
            if len(lengths) == 1:
                area_key: ColumnElement[Any] = func.substr(c.area_path, 1, next(iter(lengths)))
            elif paths:
                area_key = case(*[(within(c.area_path, p), p) for p in paths], else_=None)
            else:
                area_key = literal(None)
            blocked = c.outcome == ScanOutcome.BLOCKED.value
            codes = case((blocked, c.codes), else_=None)
            stmt = (
                select(c.day, area_key, c.outcome, codes, c.count)
                .where(*c.where)
                .group_by(c.day, area_key, c.outcome, codes)
            )
            for value, prefix, outcome, text, n in self.session.execute(stmt).all():
                per_day[_as_date(value)][outcome] += int(n)
                node_id = paths.get(prefix) if prefix is not None else None
                if node_id is not None:
                    per_node[node_id][outcome] += int(n)
                if text:
                    for code in json.loads(text):
                        per_reason[str(code)] += int(n)
        days = {d: OutcomeCounts.of(c) for d, c in per_day.items()}
        by_node = {node.id: OutcomeCounts.of(per_node.get(node.id, {})) for node in nodes}
        reasons = sorted(per_reason.items(), key=lambda item: (-item[1], _code_order(item[0])))
        return days, by_node, reasons

    def _day_expression(self) -> ColumnElement[Any]:
        return china_day(ScanRecord.scanned_at, self._dialect)

    # --- scans: lists -------------------------------------------------------------
    def scan_page(self, scope: Scope, f: ScanFilter, page: int, size: int) -> Page[ScanRow]:
        """Scans newest first, with the machine's code, the enterprise's and the
        welder's names (a welder's name only: never an ID number)."""
        where = self._scan_where(scope, f)
        count_stmt = select(ScanRecord.id).where(*where)
        rows_stmt = (
            select(ScanRecord, Machine.code, Enterprise.name, Welder.name)
            .outerjoin(Machine, Machine.id == ScanRecord.machine_id)
            .outerjoin(Enterprise, Enterprise.id == ScanRecord.enterprise_id)
            .outerjoin(Welder, Welder.id == ScanRecord.welder_id)
            .where(*where)
            .order_by(ScanRecord.scanned_at.desc(), ScanRecord.id.desc())
        )
        rows, total, number, size, capped = _paginate(
            self.session, rows_stmt, count_stmt, page, size
        )
        items = [
            ScanRow(
                record=r,
                machine_code=code or r.machine_code,
                enterprise_name=enterprise,
                welder_name=welder,
                reason_labels=[reason_label(c) for c in r.reason_codes or []],
                warning_labels=[reason_label(c) for c in r.warning_codes or []],
            )
            for r, code, enterprise, welder in rows
        ]
        return Page(items=items, total=total, page=number, size=size, capped=capped)

    def own_scans(self, scope: Scope, outcome: str | None, page: int, size: int) -> Page[ScanRow]:
        """A welder's own scans (the scope must be a welder's)."""
        if scope.welder_id is None:
            return Page(items=[], total=0, page=1, size=size)
        f = ScanFilter(welder_id=scope.welder_id, outcome=outcome)
        return self.scan_page(scope, f, page, size)

    # --- work sessions ------------------------------------------------------------
    def _session_where(self, scope: Scope, f: SessionFilter) -> list[ColumnElement[bool]]:
        where = [
            scope.record_filter(
                WorkSession.area_path, WorkSession.enterprise_id, WorkSession.welder_id
            )
        ]
        if f.area_path:
            where.append(within(WorkSession.area_path, f.area_path))
        if f.enterprise_id is not None:
            where.append(WorkSession.enterprise_id == f.enterprise_id)
        if f.machine_id is not None:
            where.append(WorkSession.machine_id == f.machine_id)
        if f.welder_id is not None:
            where.append(WorkSession.welder_id == f.welder_id)
        if f.status:
            where.append(WorkSession.status == f.status)
        if f.since is not None:
            where.append(WorkSession.started_at >= f.since)
        if f.until is not None:
            where.append(WorkSession.started_at < f.until)
        return where

    def session_page(
        self, scope: Scope, f: SessionFilter, page: int, size: int
    ) -> Page[SessionRow]:
        where = self._session_where(scope, f)
        count_stmt = select(WorkSession.id).where(*where)
        rows_stmt = (
            select(WorkSession, Machine.code, Welder.name, Enterprise.name)
            .outerjoin(Machine, Machine.id == WorkSession.machine_id)
            .outerjoin(Welder, Welder.id == WorkSession.welder_id)
            .outerjoin(Enterprise, Enterprise.id == WorkSession.enterprise_id)
            .where(*where)
            .order_by(WorkSession.started_at.desc(), WorkSession.id.desc())
        )
        rows, total, number, size, capped = _paginate(
            self.session, rows_stmt, count_stmt, page, size
        )
        items = [SessionRow(s, code, welder, enterprise) for s, code, welder, enterprise in rows]
        return Page(items=items, total=total, page=number, size=size, capped=capped)

    def own_sessions(self, scope: Scope, page: int, size: int) -> Page[SessionRow]:
        if scope.welder_id is None:
            return Page(items=[], total=0, page=1, size=size)
        return self.session_page(scope, SessionFilter(welder_id=scope.welder_id), page, size)

    def session_totals(self, scope: Scope, f: SessionFilter) -> tuple[int, int, float]:
        """Sessions, arc seconds and energy (Wh) within the filter."""
        row = self.session.execute(
            select(
                func.count(WorkSession.id),
                func.coalesce(func.sum(WorkSession.arc_seconds), 0),
                func.coalesce(func.sum(WorkSession.energy_wh), 0.0),
            ).where(*self._session_where(scope, f))
        ).one()
        return int(row[0]), int(row[1]), float(row[2])


def _code_order(code: str) -> int:
    try:
        return ReasonCode(code).order
    except ValueError:
        return len(ReasonCode)


# --- statistics for a page or the API -------------------------------------------
DEFAULT_PERIOD_DAYS = 30


def default_period(today: date) -> tuple[date, date]:
    """The last 30 China days, today included: lists and counts are always
    bounded by a period, so that a province's history is never scanned whole."""
    return today - timedelta(days=DEFAULT_PERIOD_DAYS - 1), today


@dataclass(frozen=True)
class ScanStats:
    totals: OutcomeCounts
    parent: Jurisdiction | None
    by_area: list[tuple[Jurisdiction, OutcomeCounts]]
    by_reason: list[tuple[str, int]]
    by_day: list[DayCounts]


def breakdown_parent(scope: Scope, area_path: str | None) -> str | None:
    """The node whose children the per-area counts are grouped by: the area asked
    for, else the viewer's own node (the roots for the admin)."""
    if area_path:
        return area_path
    if scope.enterprise_id is None and scope.welder_id is None:
        return scope.area_path
    return None


def scan_statistics(
    session: Session,
    scope: Scope,
    f: ScanFilter,
    since_day: date,
    until_day: date,
) -> ScanStats:
    """Totals, per child area, per reason and per day (every day of the period,
    zeros included) of the scope's scans within the filter."""
    repo = RecordRepository(session)
    area_users = scope.enterprise_id is None and scope.welder_id is None
    parent_path = breakdown_parent(scope, f.area_path)
    parent: Jurisdiction | None = None
    children: list[Jurisdiction]
    if area_users and (parent_path is not None or scope.everything):
        stats = StatsRepository(session)
        parent = stats.node_by_path(parent_path) if parent_path else None
        children = [
            node
            for node in stats.child_nodes(parent_path)
            if scope.everything or scope.covers_path(node.path)
        ]
    else:
        children = []
    days, counts, reasons = repo.scan_rollup(scope, f, children)
    by_area = [(node, counts[node.id]) for node in children]
    # The totals are the sum of the days.
    totals = OutcomeCounts(
        allowed=sum(c.allowed for c in days.values()),
        blocked=sum(c.blocked for c in days.values()),
        invalid_label=sum(c.invalid_label for c in days.values()),
    )
    span = (until_day - since_day).days + 1
    by_day = [
        DayCounts(day, days.get(day, OutcomeCounts()))
        for day in (since_day + timedelta(days=i) for i in range(max(0, min(span, 400))))
    ]
    return ScanStats(
        totals=totals,
        parent=parent,
        by_area=by_area,
        by_reason=reasons,
        by_day=by_day,
    )
