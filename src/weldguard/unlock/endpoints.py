"""/api/v1/special-periods, /api/v1/scans and /api/v1/work-sessions.

Reads follow the caller's scope (a record outside it is 404, an area outside it
too); a welder gets their own scans and sessions. Declaring and ending a special
period needs ``Action.DECLARE_SPECIAL_PERIOD`` (admin, regulators: 403 for the
rest) and an area inside the caller's jurisdiction. Periods of scans and
sessions are China calendar days (``since``/``until`` inclusive), the last 30
days when not given."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.clock import local_today
from weldguard.deps import CurrentScope, CurrentUser, DbSession, Now
from weldguard.domain.authorization import ReasonCode
from weldguard.errors import NotFound, invalid
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.pagination import PageNumber, PageSize
from weldguard.schemas import PageOut
from weldguard.unlock.models import ScanOutcome, SessionStatus, SpecialPeriod
from weldguard.unlock.records import (
    OutcomeCounts,
    RecordRepository,
    ScanFilter,
    ScanRow,
    SessionFilter,
    SessionRow,
    default_period,
    local_day_bounds,
    reason_label,
    scan_statistics,
)
from weldguard.unlock.special_periods import (
    STATE_LABELS,
    SpecialPeriodInput,
    SpecialPeriodService,
    kind_label,
    period_state,
)

router = APIRouter(tags=["scans and special periods"])

DEFAULT_SIZE = 20
MAX_PERIOD_DAYS = 400


# --- shapes -------------------------------------------------------------------------
class SpecialPeriodIn(BaseModel):
    title: str = Field(default="", max_length=256)
    kind: str = Field(
        default="", description="ban_hot_work 禁止动火 | require_permit 须持动火作业票"
    )
    area: str = Field(default="", max_length=16, description="Division code inside your area")
    sectors: list[str] | None = Field(default=None, description="None or empty: every sector")
    starts_at: datetime | None = None
    ends_at: datetime | None = Field(default=None, description="Exclusive; after starts_at")


class SpecialPeriodOut(BaseModel):
    id: int
    title: str
    kind: str
    kind_label: str
    area_code: str
    area_path: str
    sectors: list[str] | None
    starts_at: datetime
    ends_at: datetime
    state: str
    state_label: str
    declared_at: datetime
    may_end: bool

    @classmethod
    def of(cls, period: SpecialPeriod, code: str, now: datetime, may_end: bool) -> SpecialPeriodOut:
        state = period_state(period, now)
        return cls(
            id=period.id,
            title=period.title,
            kind=period.kind,
            kind_label=kind_label(period.kind),
            area_code=code,
            area_path=period.area_path,
            sectors=period.sectors,
            starts_at=period.starts_at,
            ends_at=period.ends_at,
            state=state.value,
            state_label=STATE_LABELS[state.value],
            declared_at=period.declared_at,
            may_end=may_end,
        )


class ReasonOut(BaseModel):
    code: str
    label: str
    message: str = ""


class ScanOut(BaseModel):
    id: int
    scanned_at: datetime
    outcome: str
    machine_id: int | None
    machine_code: str | None
    enterprise_id: int | None
    enterprise_name: str | None
    area_path: str | None
    welder_id: int | None
    welder_name: str | None
    reasons: list[ReasonOut]
    warnings: list[ReasonOut]
    distance_m: float | None

    @classmethod
    def of(cls, row: ScanRow) -> ScanOut:
        r = row.record
        messages = {
            str(item.get("code")): str(item.get("message", ""))
            for item in r.reasons or []
            if isinstance(item, dict)
        }
        return cls(
            id=r.id,
            scanned_at=r.scanned_at,
            outcome=r.outcome,
            machine_id=r.machine_id,
            machine_code=row.machine_code,
            enterprise_id=r.enterprise_id,
            enterprise_name=row.enterprise_name,
            area_path=r.area_path,
            welder_id=r.welder_id,
            welder_name=row.welder_name,
            reasons=[
                ReasonOut(code=c, label=reason_label(c), message=messages.get(c, ""))
                for c in r.reason_codes or []
            ],
            warnings=[
                ReasonOut(code=c, label=reason_label(c), message=messages.get(c, ""))
                for c in r.warning_codes or []
            ],
            distance_m=r.distance_m,
        )


class CountsOut(BaseModel):
    allowed: int
    blocked: int
    invalid_label: int
    blocked_percent: float


class AreaCountsOut(CountsOut):
    code: str
    name: str


class ReasonCountOut(BaseModel):
    code: str
    label: str
    count: int


class DayCountsOut(CountsOut):
    day: date


class ScanStatsOut(BaseModel):
    since: date
    until: date
    area_code: str | None
    totals: CountsOut
    by_area: list[AreaCountsOut]
    by_reason: list[ReasonCountOut]
    by_day: list[DayCountsOut]


class SessionOut(BaseModel):
    id: str
    machine_id: int
    machine_code: str | None
    welder_id: int
    welder_name: str | None
    enterprise_id: int
    enterprise_name: str | None
    status: str
    started_at: datetime
    unlocked_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    arc_seconds: int
    energy_wh: float
    peak_current_a: float | None

    @classmethod
    def of(cls, row: SessionRow) -> SessionOut:
        s = row.session
        return cls(
            id=s.id,
            machine_id=s.machine_id,
            machine_code=row.machine_code,
            welder_id=s.welder_id,
            welder_name=row.welder_name,
            enterprise_id=s.enterprise_id,
            enterprise_name=row.enterprise_name,
            status=s.status,
            started_at=s.started_at,
            unlocked_at=s.unlocked_at,
            ended_at=s.ended_at,
            end_reason=s.end_reason,
            arc_seconds=s.arc_seconds,
            energy_wh=s.energy_wh,
            peak_current_a=s.peak_current_a,
        )


# --- helpers --------------------------------------------------------------------
def scoped_area_path(session: Session, scope: Scope, code: str | None) -> str | None:
    """The path of the node ``code``, which must lie inside the caller's reach
    (404 otherwise, like a missing one)."""
    if not code:
        return None
    node = JurisdictionRepository(session).by_code(code.strip())
    if node is None or scope.enterprise_id is not None or scope.welder_id is not None:
        raise NotFound("区域不存在")
    if not scope.covers_path(node.path):
        raise NotFound("区域不存在")
    return node.path


def period_days(now: datetime, since: date | None, until: date | None) -> tuple[date, date]:
    start, end = default_period(local_today(now))
    since = since or (until - (end - start) if until else start)
    until = until or end
    if until < since:
        raise invalid("until", "结束日期不能早于开始日期")
    if (until - since).days >= MAX_PERIOD_DAYS:
        raise invalid("since", f"统计期间最长 {MAX_PERIOD_DAYS} 天")
    return since, until


def _counts(c: OutcomeCounts) -> dict[str, int | float]:
    return {
        "allowed": c.allowed,
        "blocked": c.blocked,
        "invalid_label": c.invalid_label,
        "blocked_percent": c.blocked_percent,
    }


# --- special periods --------------------------------------------------------------
@router.get("/special-periods", response_model=PageOut[SpecialPeriodOut])
def list_special_periods(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    state: Annotated[str | None, Query(description="upcoming | active | ended | cancelled")] = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[SpecialPeriodOut]:
    """Periods inside your area or covering it (an enterprise: covering it)."""
    if state is not None and state not in STATE_LABELS:
        raise invalid("state", "状态无效，可选：" + "、".join(STATE_LABELS))
    service = SpecialPeriodService(session)
    result = service.list_page(scope, now, state, page, size)
    items = [
        SpecialPeriodOut.of(p, j.code, now, service.may_manage(scope, p)) for p, j in result.items
    ]
    return PageOut.of(result, items)


@router.get("/special-periods/{period_id}", response_model=SpecialPeriodOut)
def get_special_period(
    period_id: int, session: DbSession, scope: CurrentScope, now: Now
) -> SpecialPeriodOut:
    service = SpecialPeriodService(session)
    period = service.get(scope, period_id)
    node = JurisdictionRepository(session).by_id(period.jurisdiction_id)
    return SpecialPeriodOut.of(
        period, node.code if node else "", now, service.may_manage(scope, period)
    )


@router.post("/special-periods", response_model=SpecialPeriodOut, status_code=201)
def declare_special_period(
    body: SpecialPeriodIn, session: DbSession, scope: CurrentScope, user: CurrentUser, now: Now
) -> SpecialPeriodOut:
    """Declares a period; 422 names every field that is wrong, and nothing is written."""
    service = SpecialPeriodService(session)
    period = service.declare(
        scope,
        SpecialPeriodInput(
            title=body.title,
            kind=body.kind,
            area=body.area,
            sectors=body.sectors,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
        ),
        user.id,
        now,
    )
    return SpecialPeriodOut.of(period, body.area.strip(), now, True)


@router.post("/special-periods/{period_id}/end", response_model=SpecialPeriodOut)
def end_special_period(
    period_id: int, session: DbSession, scope: CurrentScope, now: Now
) -> SpecialPeriodOut:
    """Ends the period now (cancels it if it has not started); 409 if already over."""
    service = SpecialPeriodService(session)
    period = service.end_early(scope, period_id, now)
    node = JurisdictionRepository(session).by_id(period.jurisdiction_id)
    return SpecialPeriodOut.of(period, node.code if node else "", now, False)


# --- scans ------------------------------------------------------------------------
@router.get("/scans/stats", response_model=ScanStatsOut)
def scan_stats(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    area: Annotated[str | None, Query(description="Division code inside your area")] = None,
    enterprise_id: int | None = None,
    since: Annotated[
        date | None, Query(description="First China day (default: 29 days ago)")
    ] = None,
    until: Annotated[date | None, Query(description="Last China day (default: today)")] = None,
) -> ScanStatsOut:
    """Allowed against blocked scans: totals, per child area of ``area`` (default:
    your own node), per reason of the blocked ones, per day."""
    first, last = period_days(now, since, until)
    start, end = local_day_bounds(first, last)
    area_path = scoped_area_path(session, scope, area)
    f = ScanFilter(area_path=area_path, enterprise_id=enterprise_id, since=start, until=end)
    stats = scan_statistics(session, scope, f, first, last)
    return ScanStatsOut(
        since=first,
        until=last,
        area_code=area,
        totals=CountsOut.model_validate(_counts(stats.totals)),
        by_area=[
            AreaCountsOut.model_validate({"code": node.code, "name": node.name, **_counts(c)})
            for node, c in stats.by_area
        ],
        by_reason=[
            ReasonCountOut(code=code, label=reason_label(code), count=n)
            for code, n in stats.by_reason
        ],
        by_day=[
            DayCountsOut.model_validate({"day": d.day, **_counts(d.counts)}) for d in stats.by_day
        ],
    )


@router.get("/scans", response_model=PageOut[ScanOut])
def list_scans(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    outcome: Annotated[str | None, Query(description="allowed | blocked | invalid_label")] = None,
    reason: Annotated[str | None, Query(description="A reason code, e.g. CERT_EXPIRED")] = None,
    area: str | None = None,
    enterprise_id: int | None = None,
    machine_id: int | None = None,
    welder_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[ScanOut]:
    """Scans newest first, with their reasons in Chinese (a welder: their own)."""
    if outcome is not None and outcome not in {o.value for o in ScanOutcome}:
        raise invalid("outcome", "结果无效，可选：allowed、blocked、invalid_label")
    if reason is not None and reason not in {c.value for c in ReasonCode}:
        raise invalid("reason", "未知的原因代码")
    first, last = period_days(now, since, until)
    start, end = local_day_bounds(first, last)
    f = ScanFilter(
        area_path=scoped_area_path(session, scope, area),
        enterprise_id=enterprise_id,
        machine_id=machine_id,
        welder_id=welder_id,
        outcome=outcome,
        reason=reason,
        since=start,
        until=end,
    )
    result = RecordRepository(session).scan_page(scope, f, page, size)
    return PageOut.of(result, [ScanOut.of(row) for row in result.items])


# --- work sessions -------------------------------------------------------------------
@router.get("/work-sessions", response_model=PageOut[SessionOut])
def list_work_sessions(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    area: str | None = None,
    enterprise_id: int | None = None,
    machine_id: int | None = None,
    welder_id: int | None = None,
    status: Annotated[str | None, Query(description="starting | active | ended | failed")] = None,
    since: date | None = None,
    until: date | None = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[SessionOut]:
    """Work sessions newest first (a welder: their own)."""
    if status is not None and status not in {s.value for s in SessionStatus}:
        raise invalid("status", "状态无效，可选：starting、active、ended、failed")
    first, last = period_days(now, since, until)
    start, end = local_day_bounds(first, last)
    f = SessionFilter(
        area_path=scoped_area_path(session, scope, area),
        enterprise_id=enterprise_id,
        machine_id=machine_id,
        welder_id=welder_id,
        status=status,
        since=start,
        until=end,
    )
    result = RecordRepository(session).session_page(scope, f, page, size)
    return PageOut.of(result, [SessionOut.of(row) for row in result.items])
