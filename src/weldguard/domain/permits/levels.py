"""Levels, validity and approval authority (GB 30871-2022).

* A permit's level rises by one (二级 → 一级 → 特级; 特级 stays) when its window
  touches a rest day (a statutory holiday, or a weekend day not swapped into a
  workday: :class:`~weldguard.domain.calendar.WorkCalendar`) or the night
  (default 22:00-06:00 local). Rest day and night together still raise it by one:
  the standard says "raise by one", not once per cause.
* Validity: 特级 and 一级 at most 8 h, 二级 at most 72 h, of the level the permit
  is managed at (so a 二级 permit raised by the night may last 8 h only).
* Approval: 特级 by the enterprise's leader in charge, 一级 by the safety
  department, 二级 by the unit; the crowded-place exception asks for the next
  higher authority (the leader stays the top).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from weldguard.domain.authorization import OpeningWindow
from weldguard.domain.calendar import WorkCalendar
from weldguard.domain.permits.model import ApproverRole, PermitLevel
from weldguard.domain.permits.policy import DEFAULT_PERMIT_POLICY, PermitPolicy
from weldguard.domain.permits.reasons import (
    PermitReason,
    PermitReasonCode,
    duration_text,
    local_text,
)

__all__ = [
    "LevelAssessment",
    "assess_level",
    "check_approver",
    "check_window",
    "effective_level",
    "first_overlap",
    "local_days",
    "may_approve",
    "required_role",
    "rest_day_label",
    "validity_limit",
]

R = PermitReasonCode


def local_days(starts_at: datetime, ends_at: datetime, tz: tzinfo) -> tuple[date, ...]:
    """The local calendar days the window ``[starts_at, ends_at)`` touches."""
    if ends_at <= starts_at:
        return ()
    first = starts_at.astimezone(tz).date()
    # The end is exclusive: a window ending at midnight does not touch the next day.
    last = (ends_at - timedelta(microseconds=1)).astimezone(tz).date()
    return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))


def first_overlap(
    windows: Iterable[OpeningWindow],
    starts_at: datetime,
    ends_at: datetime,
    tz: tzinfo,
    margin: timedelta = timedelta(0),
) -> tuple[OpeningWindow, datetime, datetime] | None:
    """The earliest span of ``windows`` (widened by ``margin`` on both sides) that
    overlaps ``[starts_at, ends_at)``, with its local start and end; ``None`` when
    none does. Touching ends do not overlap: a night starting at 22:00 does not
    overlap work ending at 22:00."""
    if ends_at <= starts_at:
        return None
    first = starts_at.astimezone(tz).date() - timedelta(days=margin.days + 2)
    last = ends_at.astimezone(tz).date() + timedelta(days=margin.days + 1)
    best: tuple[OpeningWindow, datetime, datetime] | None = None
    for window in windows:
        day = first
        while day <= last:
            span = window.spans(day, tz)
            if (
                span is not None
                and span[0] - margin < ends_at
                and starts_at < span[1] + margin
                and (best is None or span[0] < best[1])
            ):
                best = (window, span[0], span[1])
            day += timedelta(days=1)
    return best


def rest_day_label(day: date, calendar: WorkCalendar) -> str | None:
    """``节假日`` or ``公休日`` when ``day`` is a rest day, else ``None``."""
    if calendar.is_holiday(day):
        return "节假日"
    if calendar.is_rest_day(day):
        return "公休日"
    return None


@dataclass(frozen=True)
class LevelAssessment:
    """The level a window calls for, and why it was raised (Chinese, one per cause)."""

    base: PermitLevel
    level: PermitLevel
    because: tuple[str, ...] = ()

    @property
    def raised(self) -> bool:
        return bool(self.because)


def assess_level(
    base: PermitLevel,
    starts_at: datetime,
    ends_at: datetime,
    calendar: WorkCalendar,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> LevelAssessment:
    """The level a permit of ``base`` level over ``[starts_at, ends_at)`` is managed at."""
    tz = policy.timezone
    because: list[str] = []
    for day in local_days(starts_at, ends_at, tz):
        kind = rest_day_label(day, calendar)
        if kind is not None:
            because.append(f"{day.isoformat()} 为{kind}")
    night = first_overlap((policy.night,), starts_at, ends_at, tz)
    if night is not None:
        because.append(f"作业时间含夜间（{policy.night.label}，北京时间）")
    level = base.raised() if because else base
    return LevelAssessment(base, level, tuple(because))


def effective_level(
    base: PermitLevel,
    starts_at: datetime,
    ends_at: datetime,
    calendar: WorkCalendar,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> PermitLevel:
    """:func:`assess_level`'s level."""
    return assess_level(base, starts_at, ends_at, calendar, policy).level


def validity_limit(level: PermitLevel, policy: PermitPolicy = DEFAULT_PERMIT_POLICY) -> timedelta:
    """The longest window of a permit managed at ``level`` (8 h, 8 h, 72 h)."""
    return policy.validity(level)


def check_window(
    starts_at: datetime,
    ends_at: datetime,
    level: PermitLevel,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """The window is not empty and not longer than the level allows (exactly the
    limit is allowed)."""
    tz = policy.timezone
    if ends_at <= starts_at:
        return (
            PermitReason(
                R.WINDOW_INVALID,
                f"作业结束时间（{local_text(ends_at, tz)}）须晚于开始时间"
                f"（{local_text(starts_at, tz)}）",
            ),
        )
    limit = validity_limit(level, policy)
    length = ends_at - starts_at
    if length > limit:
        return (
            PermitReason(
                R.VALIDITY_EXCEEDED,
                f"{level.label}动火作业票有效期最长 {duration_text(limit)}，申请的作业时间为 "
                f"{duration_text(length)}（{local_text(starts_at, tz)} 至 "
                f"{local_text(ends_at, tz)}），请缩短或分开办理",
            ),
        )
    return ()


_REQUIRED_ROLE: dict[PermitLevel, ApproverRole] = {
    PermitLevel.SPECIAL: ApproverRole.ENTERPRISE_LEADER,
    PermitLevel.FIRST: ApproverRole.SAFETY_DEPARTMENT,
    PermitLevel.SECOND: ApproverRole.UNIT,
}
_BY_RANK: dict[int, ApproverRole] = {role.rank: role for role in ApproverRole}


def required_role(level: PermitLevel, crowded_exception: bool = False) -> ApproverRole:
    """The authority that approves a permit managed at ``level``; one higher for the
    crowded-place exception (the leader stays the top)."""
    role = _REQUIRED_ROLE[level]
    if crowded_exception:
        return _BY_RANK[min(role.rank + 1, ApproverRole.ENTERPRISE_LEADER.rank)]
    return role


def may_approve(
    level: PermitLevel,
    role: ApproverRole,
    crowded_exception: bool = False,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> bool:
    """Whether an approver signing as ``role`` may approve."""
    needed = required_role(level, crowded_exception)
    if policy.higher_authority_may_approve:
        return role.rank >= needed.rank
    return role is needed


def check_approver(
    level: PermitLevel,
    role: ApproverRole,
    crowded_exception: bool = False,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """:func:`may_approve` with the reason when it may not."""
    if may_approve(level, role, crowded_exception, policy):
        return ()
    needed = required_role(level, crowded_exception)
    why = "（人员密集场所营业时间动火须提级审批）" if crowded_exception else ""
    return (
        PermitReason(
            R.APPROVER_NOT_AUTHORISED,
            f"{level.label}动火作业须由{needed.label}审批{why}，审批人身份为{role.label}",
        ),
    )
