"""The printed hot-work permit and the live view its QR code opens.

GET /permits/{id}/permit.pdf — the whole permit on A4 (``permit/document.py``), for
anyone whose scope covers it.

GET /permits/{id}/live?sig=… — what an inspector sees on site after scanning the
printed permit, phone first: whether the paper is genuine (the signature), the
status now, whether the permit allows hot work at this moment, who may weld,
the machines, the fire watch's last check-in, the last gas sample, the steps.

The signature only tells a genuine paper from a forged or altered one; it opens
nothing. Signed in is required (the usual redirect to the login page), and a
permit outside the viewer's scope is a 404 whatever the signature: a permit
names people and places. A missing or wrong signature is shown as a warning
above the permit, since the inspector is exactly who must see a forgery.

Every judgement (expired, suspended, check-in overdue, gas still valid) is the
domain's (``weldguard.domain.permits``), asked with the viewer's ``now``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from weldguard.deps import DbSession
from weldguard.domain.permits import (
    DEFAULT_PERMIT_POLICY,
    GasSample,
    Permit,
    PermitReason,
    PermitStatus,
    Suspend,
    check_gas,
    last_check_in,
    latest_per_gas,
    missed_check_in,
    next_check_in_due,
    supervise,
    within_limit,
)
from weldguard.domain.permits.reasons import duration_text
from weldguard.permit.document import PermitSheet, link_signer_for, load_sheet, permit_pdf
from weldguard.web.common import render, settings_of
from weldguard.web.context import PageViewer

log = logging.getLogger(__name__)

router = APIRouter()

#: The colour of a status: ok (work allowed), info (on its way), warn (standing
#: still or watching), bad (stopped by a rule or over), muted (finished).
STATUS_TONES: dict[PermitStatus, str] = {
    PermitStatus.DRAFT: "muted",
    PermitStatus.SUBMITTED: "info",
    PermitStatus.APPROVED: "info",
    PermitStatus.CLEARED: "info",
    PermitStatus.IN_PROGRESS: "ok",
    PermitStatus.PAUSED: "warn",
    PermitStatus.SUSPENDED: "bad",
    PermitStatus.WATCHING: "warn",
    PermitStatus.DISPOSED: "muted",
    PermitStatus.CLOSED: "muted",
    PermitStatus.CANCELLED: "muted",
    PermitStatus.EXPIRED: "bad",
}

#: Statuses in which the fire watch must keep checking in (the rule of
#: ``supervise``): while the work runs and during the post-work watch.
WATCHED = (PermitStatus.IN_PROGRESS, PermitStatus.WATCHING)


@dataclass(frozen=True)
class Validity:
    """Whether the permit allows hot work now, in one line, with the reasons."""

    allowed: bool
    headline: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckInView:
    applies: bool  # the watch must be checking in now
    last_at: datetime | None
    last_by: str
    due: datetime | None
    overdue: bool
    overdue_by: str


@dataclass(frozen=True)
class GasView:
    required: bool
    latest: tuple[GasSample, ...]
    passed: dict[str, bool]
    valid: bool
    reasons: tuple[str, ...]


def validity(permit: Permit, now: datetime) -> Validity:
    content, status = permit.content, permit.status
    tz = DEFAULT_PERMIT_POLICY.timezone
    ends = content.ends_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    starts = content.starts_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if status is PermitStatus.CANCELLED:
        return Validity(False, "作业票已取消，不得动火")
    if status in (PermitStatus.WATCHING, PermitStatus.DISPOSED, PermitStatus.CLOSED):
        return Validity(False, "动火作业已结束，不得再动火")
    if status is PermitStatus.EXPIRED or now >= content.ends_at:
        return Validity(False, f"已过期：作业票已于 {ends} 到期，不得动火")
    if status is PermitStatus.SUSPENDED:
        suspension = permit.current_suspension
        cause = suspension.cause.label if suspension is not None else ""
        note = (suspension.note,) if suspension is not None and suspension.note else ()
        return Validity(False, f"已暂停：{cause}，不得动火", note)
    if status is PermitStatus.PAUSED:
        return Validity(False, "作业中断，恢复作业前不得动火")
    if now < content.starts_at:
        return Validity(False, f"未到生效时间：{starts} 起生效")
    if status in (PermitStatus.DRAFT, PermitStatus.SUBMITTED):
        return Validity(False, "尚未审批，不得动火")
    if status.before_work:
        return Validity(False, "已审批，尚未开始动火")
    found = supervise(permit, now)
    if isinstance(found.event, Suspend):
        return Validity(False, "应立即停止动火", tuple(r.message for r in found.reasons))
    return Validity(True, f"有效：可以动火（至 {ends}）")


def check_in_view(permit: Permit, now: datetime) -> CheckInView:
    content = permit.content
    watch, interval = content.fire_watch.person, content.check_in_interval
    last = last_check_in(permit.check_ins, watch, now)
    due = next_check_in_due(permit.check_ins, watch, interval, now)
    applies = permit.status in WATCHED
    overdue = applies and missed_check_in(permit.check_ins, watch, interval, now)
    overdue_by = duration_text(now - due) if overdue and due is not None else ""
    return CheckInView(
        applies=applies,
        last_at=last.at if last else None,
        last_by=last.by.name if last else "",
        due=due,
        overdue=overdue,
        overdue_by=overdue_by,
    )


def gas_view(permit: Permit, now: datetime) -> GasView:
    content, status = permit.content, permit.status
    latest = latest_per_gas(permit.gas_samples, now)
    reasons: tuple[PermitReason, ...] = ()
    if content.gas_required or latest:
        reasons = check_gas(
            permit.gas_samples,
            content.level,
            now,
            # Before the work the sample must be fresh enough to start with; after
            # an interruption, fresh enough to resume.
            starting=status.before_work,
            interrupted_since=permit.stopped_since if status.interrupted else None,
        )
    return GasView(
        required=content.gas_required,
        latest=latest,
        passed={s.gas: within_limit(s) for s in latest},
        valid=bool(latest) and not reasons,
        reasons=tuple(r.message for r in reasons),
    )


def _sheet(session: DbSession, viewer: PageViewer, permit_id: int) -> PermitSheet:
    return load_sheet(session, viewer.scope, permit_id, viewer.now)


@router.get("/permits/{permit_id}/permit.pdf")
def permit_document(
    request: Request, permit_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    sheet = _sheet(session, viewer, permit_id)
    signer = link_signer_for(settings_of(request))
    pdf = permit_pdf(sheet, signer.live_url(sheet.row.id, sheet.number))
    filename = f"动火作业票-{sheet.number}.pdf"
    headers = {
        "Content-Disposition": (
            f"inline; filename=\"permit-{sheet.number}.pdf\"; filename*=UTF-8''{quote(filename)}"
        ),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(pdf, media_type="application/pdf", headers=headers)


@router.get("/permits/{permit_id}/live", response_class=HTMLResponse)
def permit_live(
    request: Request, permit_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    sheet = _sheet(session, viewer, permit_id)
    sig = request.query_params.get("sig")
    genuine = link_signer_for(settings_of(request)).verify(sheet.row.id, sheet.number, sig)
    if not genuine:
        # Never the signature itself: who looked at which permit, and whether one came.
        log.warning(
            "permit live view with %s signature: permit=%s user=%s",
            "no" if not sig else "an invalid",
            sheet.row.id,
            viewer.user.id,
        )
    permit, now = sheet.permit, viewer.now
    allowed = validity(permit, now)
    tone = STATUS_TONES[permit.status]
    if permit.status is PermitStatus.IN_PROGRESS and not allowed.allowed:
        # Recorded as running, yet the rules stop it now (the platform's supervision
        # has not caught up): the colour says stop, the label says what is recorded.
        tone = "bad"
    return render(
        request,
        "permit_docs/live.html",
        {
            "viewer": viewer,
            "user": viewer.user,
            "sheet": sheet,
            "permit": permit,
            "content": permit.content,
            "genuine": genuine,
            "signed": bool(sig),
            "tone": tone,
            "validity": allowed,
            "check_in": check_in_view(permit, now),
            "gas": gas_view(permit, now),
            "now": now,
        },
    )
