"""Mobile jobs (流动作业报备): the pure rules.

A contractor (or a mobile welder) declares each job at a customer's premises
before a machine may be unlocked there (DOMAIN.md "Mobile welding"). Windows are
half-open ``[starts_at, ends_at)`` and timezone-aware; the clock is passed in.

- A window must end after it starts, last at most ``max_length`` (72 h by
  default: a longer job is declared again, so that the declaration stays a fact
  about the days the fire watch is actually there), not end in the past, and
  not start more than ``backdate_grace`` before now (a declaration comes before
  the work, a few minutes of clock skew aside).
- A job is not edited once its window has started: it is cancelled (before its
  start) or ended (after it) and declared again, so that what a scan relied on
  is never rewritten.
- One machine is at one place at a time: the windows of two live jobs naming
  the same machine must not overlap.
- A job covers a scan when it is live (declared), names both the welder and the
  machine, and ``now`` lies in its window.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "DEFAULT_MOBILE_JOB_POLICY",
    "STATE_LABELS",
    "JobState",
    "JobStatus",
    "MobileJobPolicy",
    "WindowProblem",
    "covers",
    "end_transition",
    "is_live",
    "job_state",
    "may_edit",
    "overlaps",
    "window_problems",
]


class JobStatus(StrEnum):
    """The stored status."""

    DECLARED = "declared"
    CANCELLED = "cancelled"  # withdrawn before its window started
    ENDED = "ended"  # ended early, after its window started


class JobState(StrEnum):
    """What a reader sees: the stored status combined with the clock."""

    UPCOMING = "upcoming"
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"


STATE_LABELS: dict[str, str] = {
    JobState.UPCOMING.value: "未开始",
    JobState.ACTIVE.value: "作业中",
    JobState.ENDED.value: "已结束",
    JobState.CANCELLED.value: "已取消",
}


@dataclass(frozen=True)
class MobileJobPolicy:
    max_length: timedelta = timedelta(hours=72)
    backdate_grace: timedelta = timedelta(minutes=10)
    # How far ahead a job may be declared: the crew and machines named must still
    # be the ones that go.
    max_lead: timedelta = timedelta(days=30)


DEFAULT_MOBILE_JOB_POLICY = MobileJobPolicy()


@dataclass(frozen=True)
class WindowProblem:
    field: str  # starts_at | ends_at
    reason: str  # shown to users


def _hours(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours:g} 小时"


def window_problems(
    starts_at: datetime | None,
    ends_at: datetime | None,
    now: datetime,
    policy: MobileJobPolicy = DEFAULT_MOBILE_JOB_POLICY,
) -> list[WindowProblem]:
    """Every problem of a declared window (empty: valid)."""
    problems: list[WindowProblem] = []
    for name, value, label in (
        ("starts_at", starts_at, "开始时间"),
        ("ends_at", ends_at, "结束时间"),
    ):
        if value is None:
            problems.append(WindowProblem(name, f"请填写{label}"))
        elif value.tzinfo is None or value.utcoffset() is None:
            problems.append(WindowProblem(name, f"{label}须带时区"))
    if problems:
        return problems
    assert starts_at is not None and ends_at is not None
    if starts_at < now - policy.backdate_grace:
        problems.append(WindowProblem("starts_at", "开始时间已过，流动作业须在作业开始前报备"))
    elif starts_at > now + policy.max_lead:
        problems.append(
            WindowProblem("starts_at", f"最多提前 {policy.max_lead.days} 天报备流动作业")
        )
    if ends_at <= starts_at:
        problems.append(WindowProblem("ends_at", "结束时间须晚于开始时间"))
    elif ends_at - starts_at > policy.max_length:
        problems.append(
            WindowProblem(
                "ends_at", f"单次流动作业最长 {_hours(policy.max_length)}，更长的作业请分次报备"
            )
        )
    return problems


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open windows overlap: touching ends (one ends when the next starts) do not."""
    return a_start < b_end and b_start < a_end


def job_state(status: str, starts_at: datetime, ends_at: datetime, now: datetime) -> JobState:
    if status == JobStatus.CANCELLED:
        return JobState.CANCELLED
    if status == JobStatus.ENDED or now >= ends_at:
        return JobState.ENDED
    if now < starts_at:
        return JobState.UPCOMING
    return JobState.ACTIVE


def is_live(status: str, ends_at: datetime, now: datetime) -> bool:
    """Declared and not over: it holds its machines' time."""
    return status == JobStatus.DECLARED and now < ends_at


def may_edit(status: str, starts_at: datetime, now: datetime) -> bool:
    """Only a declared job whose window has not started may change."""
    return status == JobStatus.DECLARED and now < starts_at


def end_transition(
    status: str, starts_at: datetime, ends_at: datetime, now: datetime
) -> tuple[JobStatus, datetime] | None:
    """What ending the job now makes of it: (new status, new end), or None when it
    is over already. Before its start it is cancelled (its window kept, for the
    record); after, it ends now, so no later scan finds it."""
    if status != JobStatus.DECLARED or now >= ends_at:
        return None
    if now < starts_at:
        return JobStatus.CANCELLED, ends_at
    return JobStatus.ENDED, now


def covers(
    status: str,
    starts_at: datetime,
    ends_at: datetime,
    welder_ids: Collection[int],
    machine_ids: Collection[int],
    welder_id: int,
    machine_id: int,
    now: datetime,
) -> bool:
    """The job lets ``welder_id`` use ``machine_id`` at ``now``."""
    return (
        status == JobStatus.DECLARED
        and starts_at <= now < ends_at
        and welder_id in welder_ids
        and machine_id in machine_ids
    )
