"""Pages of the scan records (扫码记录), the work sessions (作业记录), the special
periods (特殊时期), and the welder's own pages: 我的证书, 我的作业, 我的被拒记录.

Every read goes through the viewer's scope (weldguard.unlock.records); a
welder's name is shown, never an ID number. Periods are China calendar days,
the last 30 by default."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from weldguard.auth.scope import Action
from weldguard.deps import DbSession
from weldguard.domain.authorization import ReasonCode
from weldguard.errors import DomainError, NotFound, PermissionDenied
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.jurisdiction.service import SECTORS
from weldguard.unlock.models import ScanOutcome, SessionEndReason, SessionStatus
from weldguard.unlock.records import (
    RecordRepository,
    ScanFilter,
    ScanStats,
    SessionFilter,
    default_period,
    local_day_bounds,
    reason_label,
    scan_statistics,
)
from weldguard.unlock.special_periods import (
    KIND_LABELS,
    STATE_LABELS,
    SpecialPeriodInput,
    SpecialPeriodService,
    kind_label,
    period_state,
)
from weldguard.web.common import (
    choice_param,
    date_param,
    datetime_input,
    filter_enterprise,
    int_param,
    is_htmx,
    make_pager,
    parse_datetime_input,
    render,
    settings_of,
    text_param,
)
from weldguard.web.context import OVERSIGHT_ROLES, PageViewer, Viewer, area_options, resolve_area
from weldguard.web.csrf import verify_csrf
from weldguard.web.views import certificate_rows
from weldguard.welder.repository import WelderRepository

router = APIRouter()

RECORD_ROLES = OVERSIGHT_ROLES
OUTCOME_OPTIONS = {
    ScanOutcome.BLOCKED.value: "被拒",
    ScanOutcome.ALLOWED.value: "允许",
    ScanOutcome.INVALID_LABEL.value: "无效标签",
}
OUTCOME_TONES = {"allowed": "ok", "blocked": "bad", "invalid_label": "dark"}
REASON_OPTIONS = {code.value: code.label for code in ReasonCode}
SESSION_STATUS_LABELS = {
    SessionStatus.STARTING.value: "开机中",
    SessionStatus.ACTIVE.value: "作业中",
    SessionStatus.ENDED.value: "已结束",
    SessionStatus.FAILED.value: "开机失败",
}
SESSION_STATUS_TONES = {"starting": "info", "active": "ok", "ended": "muted", "failed": "bad"}
END_REASON_LABELS = {
    SessionEndReason.WELDER.value: "焊工结束作业",
    SessionEndReason.TIME_LIMIT.value: "到达时限",
    SessionEndReason.LOCK_EVENT.value: "焊机上报锁定",
    SessionEndReason.IDLE.value: "长时间未起弧",
    SessionEndReason.REPLACED.value: "焊机被他人开机",
    SessionEndReason.ADMIN.value: "监管或企业锁定",
}
PERIOD_STATE_TONES = {"upcoming": "info", "active": "bad", "ended": "muted", "cancelled": "muted"}
MAX_PERIOD_DAYS = 400


def _require_records(viewer: Viewer) -> None:
    if viewer.role not in RECORD_ROLES:
        raise PermissionDenied("当前账号无权查看该页面")


def _require_welder(viewer: Viewer) -> None:
    if not viewer.is_welder:
        raise PermissionDenied("该页面仅供焊工本人查看")


@dataclass(frozen=True)
class Period:
    since: date
    until: date

    @property
    def bounds(self) -> tuple[datetime | None, ...]:
        return local_day_bounds(self.since, self.until)


def _period(viewer: Viewer, params: Mapping[str, str]) -> Period:
    """The days asked for (bad or reversed dates fall back to the default, a span
    longer than 400 days is cut)."""
    first, last = default_period(viewer.today)
    since = date_param(params.get("since")) or first
    until = date_param(params.get("until")) or last
    if until < since:
        since, until = first, last
    if (until - since).days >= MAX_PERIOD_DAYS:
        since = until - timedelta(days=MAX_PERIOD_DAYS - 1)
    return Period(since, until)


def duration_label(seconds: int | None) -> str:
    if not seconds:
        return "0 分钟"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} 小时 {minutes} 分"
    if minutes:
        return f"{minutes} 分 {secs} 秒"
    return f"{secs} 秒"


def energy_label(wh: float | None) -> str:
    if not wh:
        return "0 kWh"
    return f"{wh / 1000:.2f} kWh"


def _chart_data(stats: ScanStats) -> str:
    """What the ECharts charts draw, as JSON for a data block (escaped for HTML
    by the template)."""
    return json.dumps(
        {
            "areas": {
                "names": [node.name for node, _ in stats.by_area],
                "allowed": [c.allowed for _, c in stats.by_area],
                "blocked": [c.blocked for _, c in stats.by_area],
            },
            "reasons": {
                "names": [reason_label(code) for code, _ in stats.by_reason],
                "counts": [n for _, n in stats.by_reason],
            },
            "days": {
                "names": [d.day.strftime("%m-%d") for d in stats.by_day],
                "allowed": [d.counts.allowed for d in stats.by_day],
                "blocked": [d.counts.blocked for d in stats.by_day],
            },
        },
        ensure_ascii=False,
    ).replace("<", "\\u003c")


def _session_rows(items: Any) -> list[dict[str, Any]]:
    return [
        {
            "row": row,
            "s": row.session,
            "status": SESSION_STATUS_LABELS.get(row.session.status, row.session.status),
            "tone": SESSION_STATUS_TONES.get(row.session.status, "muted"),
            "end_reason": END_REASON_LABELS.get(row.session.end_reason or "", "")
            or (row.session.failure or ""),
            "arc": duration_label(row.session.arc_seconds),
            "energy": energy_label(row.session.energy_wh),
        }
        for row in items
    ]


# --- 扫码记录 ------------------------------------------------------------------------
@router.get("/scans")
def scan_records(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_records(viewer)
    params = request.query_params
    scope = viewer.scope
    node = resolve_area(session, scope, text_param(params.get("area")))
    enterprise = filter_enterprise(session, viewer.scope, params.get("enterprise_id"))
    period = _period(viewer, params)
    since, until = period.bounds
    reason = choice_param(params.get("reason"), REASON_OPTIONS)
    outcome = choice_param(params.get("outcome"), OUTCOME_OPTIONS) or ScanOutcome.BLOCKED.value
    base = ScanFilter(
        area_path=node.path if node else None,
        enterprise_id=enterprise.id if enterprise else None,
        since=since,
        until=until,
    )
    listed = ScanFilter(
        area_path=base.area_path,
        enterprise_id=base.enterprise_id,
        since=since,
        until=until,
        outcome=outcome,
        reason=reason,
    )
    page = RecordRepository(session).scan_page(
        scope, listed, int_param(params.get("page")) or 1, settings_of(request).page_size
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "scans",
        "page": page,
        "rows": page.items,
        "pager": make_pager("/scans", params, page.page, page.pages, page.total),
        "params": params,
        "outcome": outcome,
        "outcome_label": OUTCOME_OPTIONS[outcome],
        "outcome_tones": OUTCOME_TONES,
        "outcomes": OUTCOME_OPTIONS,
        "reasons": REASON_OPTIONS,
    }
    if is_htmx(request):
        return render(request, "unlock/_scan_results.html", context)
    stats = scan_statistics(session, scope, base, period.since, period.until)
    context.update(
        stats=stats,
        chart_data=_chart_data(stats),
        node=node,
        period=period,
        areas=area_options(session, scope),
        selected_area=node.code if node else "",
        filter_enterprise=enterprise,
        reason_label=reason_label,
    )
    return render(request, "unlock/scans.html", context)


# --- 作业记录 ------------------------------------------------------------------------
@router.get("/work-sessions")
def work_sessions(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_records(viewer)
    params = request.query_params
    scope = viewer.scope
    node = resolve_area(session, scope, text_param(params.get("area")))
    enterprise = filter_enterprise(session, viewer.scope, params.get("enterprise_id"))
    period = _period(viewer, params)
    since, until = period.bounds
    f = SessionFilter(
        area_path=node.path if node else None,
        enterprise_id=enterprise.id if enterprise else None,
        machine_id=int_param(params.get("machine_id")),
        welder_id=int_param(params.get("welder_id")),
        status=choice_param(params.get("status"), SESSION_STATUS_LABELS),
        since=since,
        until=until,
    )
    repo = RecordRepository(session)
    page = repo.session_page(
        scope, f, int_param(params.get("page")) or 1, settings_of(request).page_size
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "work_sessions",
        "page": page,
        "rows": _session_rows(page.items),
        "pager": make_pager("/work-sessions", params, page.page, page.pages, page.total),
        "params": params,
        "show_welder": True,
    }
    if is_htmx(request):
        return render(request, "unlock/_session_results.html", context)
    count, arc_seconds, energy_wh = repo.session_totals(scope, f)
    context.update(
        node=node,
        period=period,
        areas=area_options(session, scope),
        selected_area=node.code if node else "",
        filter_enterprise=enterprise,
        statuses=SESSION_STATUS_LABELS,
        totals={
            "count": count,
            "arc": duration_label(arc_seconds),
            "energy": energy_label(energy_wh),
        },
    )
    return render(request, "unlock/sessions.html", context)


# --- 特殊时期 ------------------------------------------------------------------------
@dataclass
class PeriodForm:
    title: str = ""
    kind: str = "ban_hot_work"
    area: str = ""
    sectors: list[str] = field(default_factory=list)
    starts_at: str = ""
    ends_at: str = ""


def _periods_page(
    request: Request,
    viewer: Viewer,
    session: DbSession,
    form: PeriodForm | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
) -> Response:
    params = request.query_params
    state = choice_param(params.get("state"), STATE_LABELS)
    service = SpecialPeriodService(session)
    page = service.list_page(
        viewer.scope,
        viewer.now,
        state,
        int_param(params.get("page")) or 1,
        settings_of(request).page_size,
    )
    rows = []
    for period, node in page.items:
        current = period_state(period, viewer.now)
        rows.append(
            {
                "p": period,
                "node": node,
                "kind": kind_label(period.kind),
                "state": STATE_LABELS[current.value],
                "tone": PERIOD_STATE_TONES[current.value],
                "sectors": "、".join(period.sectors) if period.sectors else "全部行业",
                "may_end": service.may_manage(viewer.scope, period)
                and current.value in ("upcoming", "active"),
            }
        )
    may_declare = viewer.scope.may(Action.DECLARE_SPECIAL_PERIOD)
    if form is None:
        start = viewer.now.replace(second=0, microsecond=0)
        own = None
        if viewer.user.jurisdiction_id is not None:
            own = JurisdictionRepository(session).by_id(viewer.user.jurisdiction_id)
        form = PeriodForm(
            area=own.code if own else "",
            starts_at=datetime_input(start),
            ends_at=datetime_input(start + timedelta(days=1)),
            sectors=sorted(viewer.scope.sectors or ()) if not viewer.scope.everything else [],
        )
    sector_choices = [
        s
        for s in SECTORS
        if viewer.scope.everything or viewer.scope.sectors is None or s in viewer.scope.sectors
    ]
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "special_periods",
        "page": page,
        "rows": rows,
        "pager": make_pager("/special-periods", params, page.page, page.pages, page.total),
        "params": params,
        "states": STATE_LABELS,
        "may_declare": may_declare,
        "form": form,
        "errors": errors or {},
        "message": message,
        "kinds": KIND_LABELS,
        "sector_choices": sector_choices,
        "sector_limited": viewer.scope.sectors is not None and not viewer.scope.everything,
        "areas": area_options(session, viewer.scope) if may_declare else [],
    }
    return render(request, "unlock/special_periods.html", context, status_code=status_code)


@router.get("/special-periods")
def special_periods(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    return _periods_page(request, viewer, session)


@router.post("/special-periods")
def declare_special_period(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    title: Annotated[str, Form(max_length=256)] = "",
    kind: Annotated[str, Form(max_length=32)] = "",
    area: Annotated[str, Form(max_length=16)] = "",
    sectors: Annotated[list[str] | None, Form()] = None,
    starts_at: Annotated[str, Form(max_length=32)] = "",
    ends_at: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    viewer.scope.require(Action.DECLARE_SPECIAL_PERIOD)
    form = PeriodForm(title, kind, area, [s[:16] for s in (sectors or [])][:20], starts_at, ends_at)
    errors: dict[str, str] = {}
    start, end = parse_datetime_input(starts_at), parse_datetime_input(ends_at)
    if starts_at.strip() and start is None:
        errors["starts_at"] = "开始时间格式无效"
    if ends_at.strip() and end is None:
        errors["ends_at"] = "结束时间格式无效"
    try:
        # Every field is checked before anything is written; a malformed time
        # reaches the service as missing, and the format message above wins.
        period = SpecialPeriodService(session).declare(
            viewer.scope,
            SpecialPeriodInput(
                title=title,
                kind=kind,
                area=area,
                sectors=form.sectors,
                starts_at=start,
                ends_at=end,
            ),
            viewer.user.id,
            viewer.now,
        )
    except DomainError as error:
        for detail in error.details:
            if detail.field and detail.field not in errors:
                errors[detail.field] = detail.reason
        if not errors:
            errors["form"] = error.message
        return _periods_page(request, viewer, session, form, errors, status_code=422)
    return RedirectResponse(f"/special-periods?declared={period.id}", status_code=303)


@router.post("/special-periods/{period_id}/end")
def end_special_period(
    request: Request,
    period_id: int,
    viewer: PageViewer,
    session: DbSession,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    SpecialPeriodService(session).end_early(viewer.scope, period_id, viewer.now)
    return RedirectResponse("/special-periods", status_code=303)


# --- the welder's own pages -------------------------------------------------------------
@router.get("/me/certificates")
def my_certificates(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_welder(viewer)
    repo = WelderRepository(session)
    welder = repo.visible(viewer.scope, viewer.scope.welder_id or -1)
    if welder is None:
        raise NotFound("未找到焊工档案")
    return render(
        request,
        "unlock/my_certificates.html",
        {
            "viewer": viewer,
            "active": "my_certificates",
            "welder": welder,
            "certificates": certificate_rows(repo.certificates_of(welder.id), viewer.today),
        },
    )


@router.get("/me/sessions")
def my_sessions(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_welder(viewer)
    params = request.query_params
    page = RecordRepository(session).own_sessions(
        viewer.scope, int_param(params.get("page")) or 1, settings_of(request).page_size
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "my_sessions",
        "page": page,
        "rows": _session_rows(page.items),
        "pager": make_pager("/me/sessions", params, page.page, page.pages, page.total),
        "show_welder": False,
    }
    if is_htmx(request):
        return render(request, "unlock/_session_results.html", context)
    return render(request, "unlock/my_sessions.html", context)


@router.get("/me/blocked")
def my_blocked(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_welder(viewer)
    params = request.query_params
    page = RecordRepository(session).own_scans(
        viewer.scope,
        ScanOutcome.BLOCKED.value,
        int_param(params.get("page")) or 1,
        settings_of(request).page_size,
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "my_blocked",
        "page": page,
        "rows": page.items,
        "pager": make_pager("/me/blocked", params, page.page, page.pages, page.total),
    }
    if is_htmx(request):
        return render(request, "unlock/_my_blocked_results.html", context)
    return render(request, "unlock/my_blocked.html", context)
