"""The fire watch (监护人): check-ins, absence, and the watch after the work.

The watch checks in when the work starts (or resumes) and then at least every
``check_in_interval`` the permit sets. A check-in is due at the previous one plus
the interval; at that instant it is not missed yet, one second later it is, and
the permit is suspended (the platform locks the machines and raises 监护人员离岗).

After the work the watch stays at least 30 min, present throughout: the check-ins
(and the final ember check itself) must follow each other within the interval.
An absence restarts the 30 min from the watch's return.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from weldguard.domain.permits.model import FireWatchCheckIn, HotSpot, Person, Step
from weldguard.domain.permits.policy import DEFAULT_PERMIT_POLICY, PermitPolicy
from weldguard.domain.permits.reasons import (
    PermitReason,
    PermitReasonCode,
    duration_text,
    local_text,
)

__all__ = [
    "check_check_in",
    "check_watch_after_work",
    "check_watch_present",
    "continuous_presence_since",
    "last_check_in",
    "missed_check_in",
    "next_check_in_due",
    "watch_check_ins",
]

R = PermitReasonCode


def watch_check_ins(
    check_ins: Iterable[FireWatchCheckIn], watch: Person, now: datetime
) -> tuple[FireWatchCheckIn, ...]:
    """The named watch's check-ins up to ``now``, oldest first (anybody else's do
    not count: the watch is a named person)."""
    return tuple(
        sorted((c for c in check_ins if c.by.same_as(watch) and c.at <= now), key=lambda c: c.at)
    )


def last_check_in(
    check_ins: Iterable[FireWatchCheckIn], watch: Person, now: datetime
) -> FireWatchCheckIn | None:
    own = watch_check_ins(check_ins, watch, now)
    return own[-1] if own else None


def next_check_in_due(
    check_ins: Iterable[FireWatchCheckIn], watch: Person, interval: timedelta, now: datetime
) -> datetime | None:
    """When the next check-in is due (the last one plus the interval); ``None`` when
    the watch never checked in."""
    last = last_check_in(check_ins, watch, now)
    return None if last is None else last.at + interval


def missed_check_in(
    check_ins: Iterable[FireWatchCheckIn], watch: Person, interval: timedelta, now: datetime
) -> bool:
    """Whether the watch is overdue at ``now`` (strictly past the due time), or
    never checked in."""
    due = next_check_in_due(check_ins, watch, interval, now)
    return due is None or now > due


def check_watch_present(
    check_ins: Sequence[FireWatchCheckIn],
    watch: Person,
    interval: timedelta,
    now: datetime,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """The watch has checked in within the interval (to start or resume the work)."""
    tz = policy.timezone
    last = last_check_in(check_ins, watch, now)
    if last is None:
        return (
            PermitReason(
                R.FIRE_WATCH_NOT_CHECKED_IN,
                f"监护人{watch.name}尚未到岗签到，动火前监护人须在现场签到",
            ),
        )
    if now > last.at + interval:
        return (
            PermitReason(
                R.FIRE_WATCH_NOT_CHECKED_IN,
                f"监护人{watch.name}最近一次签到于 {local_text(last.at, tz)}，已超过签到间隔 "
                f"{duration_text(interval)}，请重新签到",
            ),
        )
    return ()


def check_check_in(
    check_in: FireWatchCheckIn,
    watch: Person,
    hot_spot: HotSpot,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """A check-in may be recorded: by the named watch, near the hot spot when it has
    a position, with a photo where the policy asks for one."""
    reasons = []
    if not check_in.by.same_as(watch):
        reasons.append(
            PermitReason(
                R.WRONG_PERSON,
                f"只有作业票指定的监护人{watch.name}可以签到，签到人为{check_in.by.name}",
            )
        )
    if check_in.position is not None:
        distance = hot_spot.distance_m(check_in.position)
        if distance > policy.check_in_max_distance_m:
            reasons.append(
                PermitReason(
                    R.FIRE_WATCH_TOO_FAR,
                    f"签到位置距动火点约 {distance:.0f} 米，超过 "
                    f"{policy.check_in_max_distance_m:g} 米，监护人须在动火现场",
                )
            )
    if Step.CHECK_IN in policy.photos_required_for and not check_in.photos:
        reasons.append(PermitReason(R.PHOTO_MISSING, "监护签到须拍摄现场照片"))
    return tuple(reasons)


def continuous_presence_since(
    check_ins: Iterable[FireWatchCheckIn],
    watch: Person,
    interval: timedelta,
    now: datetime,
) -> datetime | None:
    """Since when the watch has been present without a break up to ``now``: the
    start of the latest run of check-ins, each within ``interval`` of the next and
    the last within ``interval`` of ``now``; ``None`` when the watch is absent now."""
    own = watch_check_ins(check_ins, watch, now)
    since: datetime | None = None
    later = now
    for check_in in reversed(own):
        if later - check_in.at > interval:
            break
        since = check_in.at
        later = check_in.at
    return since


def check_watch_after_work(
    check_ins: Sequence[FireWatchCheckIn],
    watch: Person,
    interval: timedelta,
    work_ended_at: datetime,
    now: datetime,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """The watch stayed ``policy.watch_after_work`` (30 min) after the work ended,
    present throughout, before the ember check at ``now`` (which counts as a
    presence of the watch at ``now``)."""
    tz = policy.timezone
    needed = policy.watch_after_work
    present = (*check_ins, FireWatchCheckIn(at=now, by=watch))
    since = continuous_presence_since(present, watch, interval, now)
    assert since is not None  # the ember check itself is a presence at now
    watched_from = max(since, work_ended_at)
    watched = now - watched_from
    if watched >= needed:
        return ()
    if since > work_ended_at:
        return (
            PermitReason(
                R.WATCH_AFTER_WORK_TOO_SHORT,
                f"作业结束（{local_text(work_ended_at, tz)}）后监护人{watch.name}曾离岗，"
                f"自 {local_text(since, tz)} 返回后须持续监护满 {duration_text(needed)}，"
                f"现为 {duration_text(watched)}",
            ),
        )
    return (
        PermitReason(
            R.WATCH_AFTER_WORK_TOO_SHORT,
            f"作业结束后监护人须在现场监护至少 {duration_text(needed)}（作业结束于 "
            f"{local_text(work_ended_at, tz)}，可于 {local_text(work_ended_at + needed, tz)} "
            f"后检查余火），现为 {duration_text(watched)}",
        ),
    )
