"""Crowded places (人员密集场所): no hot work in opening hours, unless the exception
path is taken (hospitals, care homes, schools: a full risk assessment, fire
separation with non-combustible material, approval at the higher level); the
public notice at the main entrance and at the site, photographed, before work.

Opening hours are the :class:`~weldguard.domain.authorization.OpeningWindow` s the
unlock decision reads, with the same reading: ``[open, close)``, unknown hours
count as open (configurable), the same margin and exception sub-types.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from weldguard.domain.authorization import CROWDED_PLACE_SECTOR, PlaceFacts, open_window_at
from weldguard.domain.permits.levels import first_overlap
from weldguard.domain.permits.model import NoticeConfirmation, NoticeLocation, PermitContent
from weldguard.domain.permits.policy import DEFAULT_PERMIT_POLICY, PermitPolicy
from weldguard.domain.permits.reasons import PermitReason, PermitReasonCode, local_text

__all__ = [
    "check_crowded_window",
    "check_notices",
    "crowded_place_allows",
    "exception_allowed",
]

R = PermitReasonCode


def _kind(place: PlaceFacts) -> str:
    return place.crowded_subtype or CROWDED_PLACE_SECTOR


def exception_allowed(place: PlaceFacts, policy: PermitPolicy = DEFAULT_PERMIT_POLICY) -> bool:
    """Whether the place's sub-type may take the exception path at all."""
    return place.crowded_subtype in policy.exception_subtypes


def _exception_problems(content: PermitContent, policy: PermitPolicy) -> list[PermitReason]:
    exception = content.crowded_exception
    if exception is None:
        return []
    reasons = []
    if not exception_allowed(content.place, policy):
        allowed = "、".join(sorted(policy.exception_subtypes)) or "无"
        reasons.append(
            PermitReason(
                R.CROWDED_EXCEPTION_NOT_ALLOWED,
                f"{_kind(content.place)}营业时间内不得动火；确需营业时间动火的例外仅适用于"
                f"{allowed}",
            )
        )
    missing = []
    if exception.risk_assessment is None:
        missing.append("全面风险评估")
    if exception.fire_separation is None:
        missing.append("采用不燃材料进行防火分隔")
    if missing:
        reasons.append(
            PermitReason(
                R.CROWDED_EXCEPTION_INCOMPLETE,
                "营业时间动火须完成" + "、".join(missing) + "，并经提级审批",
            )
        )
    return reasons


def _exception_valid(content: PermitContent, policy: PermitPolicy) -> bool:
    exception = content.crowded_exception
    return exception is not None and exception.complete and exception_allowed(content.place, policy)


def check_crowded_window(
    content: PermitContent, policy: PermitPolicy = DEFAULT_PERMIT_POLICY
) -> tuple[PermitReason, ...]:
    """At submission and approval: the window stays out of the opening hours, or
    the exception path is requested, allowed here and complete."""
    if not content.crowded:
        return ()
    tz = policy.timezone
    place = content.place
    reasons = _exception_problems(content, policy)
    if _exception_valid(content, policy):
        return tuple(reasons)
    if place.opening_hours is None:
        if policy.crowded_hours_unknown_denies:
            reasons.append(
                PermitReason(
                    R.CROWDED_HOURS_UNKNOWN,
                    f"该{_kind(place)}未登记营业时间，无法确认作业时间避开营业时间，"
                    "请先登记营业时间",
                )
            )
        return tuple(reasons)
    hit = first_overlap(
        place.opening_hours, content.starts_at, content.ends_at, tz, policy.opening_hours_margin
    )
    if hit is not None:
        window, opens, closes = hit
        reasons.append(
            PermitReason(
                R.CROWDED_OPENING_HOURS,
                f"{_kind(place)}营业时间内禁止动火：作业时间 "
                f"{local_text(content.starts_at, tz)} 至 "
                f"{local_text(content.ends_at, tz)} 与营业时间 {window.label}（"
                f"{local_text(opens, tz)} 至 {local_text(closes, tz)}）重叠",
            )
        )
    return tuple(reasons)


def crowded_place_allows(
    content: PermitContent,
    now: datetime,
    exception_taken: bool,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """At ``now`` (starting or resuming): the place is closed, or the approved
    exception path covers the work (``exception_taken``, in an allowed sub-type)."""
    if not content.crowded:
        return ()
    place = content.place
    if exception_taken and exception_allowed(place, policy):
        return ()
    tz = policy.timezone
    if place.opening_hours is None:
        if not policy.crowded_hours_unknown_denies:
            return ()
        return (
            PermitReason(
                R.CROWDED_HOURS_UNKNOWN,
                f"该{_kind(place)}未登记营业时间，无法确认当前不在营业时间内",
            ),
        )
    hit = open_window_at(place.opening_hours, now, tz, policy.opening_hours_margin)
    if hit is None:
        return ()
    window, opens, closes = hit
    return (
        PermitReason(
            R.CROWDED_OPENING_HOURS,
            f"{_kind(place)}营业时间内禁止动火：营业时间 {window.label}，本次 "
            f"{local_text(opens, tz)} 至 {local_text(closes, tz)}，当前 {local_text(now, tz)}",
        ),
    )


def check_notices(
    notices: Iterable[NoticeConfirmation],
    now: datetime,
) -> tuple[PermitReason, ...]:
    """The public notice is posted and photographed at the main entrance and at the
    site, before ``now``."""
    posted = {n.location for n in notices if n.photos and n.at <= now}
    missing = [location for location in NoticeLocation if location not in posted]
    if not missing:
        return ()
    return (
        PermitReason(
            R.NOTICE_MISSING,
            "人员密集场所动火前须在"
            + "和".join(location.label for location in missing)
            + "张贴动火作业公告并拍照确认",
        ),
    )
