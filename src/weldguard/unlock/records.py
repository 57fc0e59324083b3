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
(``pagination.COUNT_CAP``). bench/scan_stats.py measures them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, case, cast, func, literal, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.clock import SHANGHAI
from weldguard.domain.authorization import ReasonCode
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.paths import within
from weldguard.machine.models import Machine
from weldguard.pagination import COUNT_CAP, MAX_PAGE_SIZE, Page
from weldguard.report.stats_repository import StatsRepository
from weldguard.unlock.models import ScanOutcome, ScanRecord, WorkSession
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
            # The codes are a JSON array of distinct identifiers: the quoted code
            # matches one element exactly, on both backends.
            pattern = '%"' + f.reason.replace("%", "").replace("_", "\\_") + '"%'
            where.append(cast(ScanRecord.reason_codes, String).like(pattern, escape="\\"))
        if f.since is not None:
            where.append(ScanRecord.scanned_at >= f.since)
        if f.until is not None:
            where.append(ScanRecord.scanned_at < f.until)
        return where

    # --- scans: counts ----------------------------------------------------------
    def scan_totals(self, scope: Scope, f: ScanFilter) -> OutcomeCounts:
        stmt = (
            select(ScanRecord.outcome, func.count())
            .where(*self._scan_where(scope, f))
            .group_by(ScanRecord.outcome)
        )
        return OutcomeCounts.of({outcome: n for outcome, n in self.session.execute(stmt).all()})

    def scan_counts_by_node(
        self, scope: Scope, f: ScanFilter, nodes: Sequence[Jurisdiction]
    ) -> dict[int, OutcomeCounts]:
        """Counts per node (by id) for sibling nodes: one ``GROUP BY`` on the
        prefix of the path per length of the nodes' paths (usually one)."""
        by_length: dict[int, dict[str, int]] = defaultdict(dict)
        for node in nodes:
            by_length[len(node.path)][node.path] = node.id
        raw: dict[int, dict[str, int]] = defaultdict(dict)
        where = self._scan_where(scope, f)
        for length, paths in by_length.items():
            prefix = func.substr(ScanRecord.area_path, 1, length)
            lowest, highest = min(paths), max(paths)
            stmt = (
                select(prefix, ScanRecord.outcome, func.count())
                .where(
                    *where,
                    ScanRecord.area_path >= lowest,
                    ScanRecord.area_path < highest[:-1] + "0",
                )
                .group_by(prefix, ScanRecord.outcome)
            )
            for path, outcome, n in self.session.execute(stmt).all():
                node_id = paths.get(path)
                if node_id is not None:
                    raw[node_id][outcome] = n
        return {node.id: OutcomeCounts.of(raw.get(node.id, {})) for node in nodes}

    def blocked_by_reason(self, scope: Scope, f: ScanFilter) -> list[tuple[str, int]]:
        """Blocked scans per reason code, most frequent first. A scan blocked for
        two reasons counts under both."""
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
        counts = [(str(c), int(n)) for c, n in self.session.execute(stmt).all()]
        return sorted(counts, key=lambda item: (-item[1], _code_order(item[0])))

    def scans_by_day(self, scope: Scope, f: ScanFilter) -> list[DayCounts]:
        """Counts per China calendar day, oldest first; days without scans are
        left out (the caller fills the gaps if it draws a chart)."""
        day = self._day_expression()
        stmt = (
            select(day, ScanRecord.outcome, func.count())
            .where(*self._scan_where(scope, f))
            .group_by(day, ScanRecord.outcome)
        )
        raw: dict[date, dict[str, int]] = defaultdict(dict)
        for value, outcome, n in self.session.execute(stmt).all():
            key = value if isinstance(value, date) else date.fromisoformat(str(value))
            raw[key][outcome] = n
        return [DayCounts(d, OutcomeCounts.of(raw[d])) for d in sorted(raw)]

    def scan_rollup(
        self, scope: Scope, f: ScanFilter, nodes: Sequence[Jurisdiction]
    ) -> tuple[dict[date, OutcomeCounts], dict[int, OutcomeCounts], list[tuple[str, int]]]:
        """Per day, per node (sibling nodes, by id) and per reason in one pass over
        the range: ``GROUP BY`` the China day, the node's prefix of the path, the
        outcome and, for blocked scans only, the list of reason codes as text (a
        few combinations), decoded here. The separate queries above read the
        range three times; at a year of a province's scans that is the cost."""
        where = self._scan_where(scope, f)
        paths: dict[str, int] = {node.path: node.id for node in nodes}
        lengths = {len(path) for path in paths}
        if len(lengths) == 1:
            area_key: ColumnElement[Any] = func.substr(ScanRecord.area_path, 1, lengths.pop())
        elif paths:
            area_key = case(
                *[(within(ScanRecord.area_path, p), p) for p in paths],  # type: ignore[arg-type]
                else_=None,
            )
        else:
            area_key = literal(None)
        day = self._day_expression()
        blocked = ScanRecord.outcome == ScanOutcome.BLOCKED.value
        codes = case((blocked, cast(ScanRecord.reason_codes, String)), else_=None)
        stmt = (
            select(day, area_key, ScanRecord.outcome, codes, func.count())
            .where(*where)
            .group_by(day, area_key, ScanRecord.outcome, codes)
        )
        per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_node: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_reason: dict[str, int] = defaultdict(int)
        for value, prefix, outcome, text, n in self.session.execute(stmt).all():
            key = value if isinstance(value, date) else date.fromisoformat(str(value))
            per_day[key][outcome] += n
            node_id = paths.get(prefix) if prefix is not None else None
            if node_id is not None:
                per_node[node_id][outcome] += n
            if text:
                for code in json.loads(text):
                    per_reason[str(code)] += n
        days = {d: OutcomeCounts.of(c) for d, c in per_day.items()}
        by_node = {node.id: OutcomeCounts.of(per_node.get(node.id, {})) for node in nodes}
        reasons = sorted(per_reason.items(), key=lambda item: (-item[1], _code_order(item[0])))
        return days, by_node, reasons

    def _day_expression(self) -> ColumnElement[Any]:
        if self._dialect == "postgresql":
            return func.date(func.timezone("Asia/Shanghai", ScanRecord.scanned_at))
        return func.date(ScanRecord.scanned_at, f"+{_UTC_OFFSET_HOURS} hours")

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
