"""domain/mobile_jobs.py: windows, overlap, states, ending and coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from weldguard.domain.mobile_jobs import (
    JobState,
    JobStatus,
    MobileJobPolicy,
    covers,
    end_transition,
    is_live,
    job_state,
    may_edit,
    overlaps,
    window_problems,
)

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
H = timedelta(hours=1)


def fields(starts: datetime | None, ends: datetime | None, **policy: timedelta) -> list[str]:
    return [p.field for p in window_problems(starts, ends, NOW, MobileJobPolicy(**policy))]


# --- windows ---------------------------------------------------------------------
def test_a_window_starting_soon_and_lasting_a_day_is_valid() -> None:
    assert window_problems(NOW + H, NOW + 25 * H, NOW) == []


def test_missing_times_are_named_each() -> None:
    assert fields(None, None) == ["starts_at", "ends_at"]
    assert fields(NOW + H, None) == ["ends_at"]
    assert fields(None, NOW + H) == ["starts_at"]


def test_naive_times_are_refused() -> None:
    naive = datetime(2026, 11, 22, 13, 0)
    assert fields(naive, NOW + 2 * H) == ["starts_at"]
    assert fields(NOW + H, naive) == ["ends_at"]


def test_other_offsets_are_the_same_instant() -> None:
    cst = timezone(timedelta(hours=8))
    assert fields((NOW + H).astimezone(cst), (NOW + 2 * H).astimezone(cst)) == []


def test_end_must_follow_start() -> None:
    assert fields(NOW + 2 * H, NOW + 2 * H) == ["ends_at"]
    assert fields(NOW + 2 * H, NOW + H) == ["ends_at"]


def test_max_length_is_inclusive_and_configurable() -> None:
    assert fields(NOW, NOW + 72 * H) == []
    assert fields(NOW, NOW + 72 * H + timedelta(seconds=1)) == ["ends_at"]
    assert fields(NOW, NOW + 9 * H, max_length=8 * H) == ["ends_at"]
    message = window_problems(NOW, NOW + 9 * H, NOW, MobileJobPolicy(max_length=8 * H))[0].reason
    assert "8 小时" in message


def test_a_start_in_the_past_is_refused_beyond_the_grace() -> None:
    assert fields(NOW - timedelta(minutes=10), NOW + H) == []
    assert fields(NOW - timedelta(minutes=11), NOW + H) == ["starts_at"]
    assert fields(NOW - timedelta(minutes=1), NOW + H, backdate_grace=timedelta(0)) == ["starts_at"]


def test_a_start_too_far_ahead_is_refused() -> None:
    assert fields(NOW + timedelta(days=30), NOW + timedelta(days=30) + H) == []
    assert fields(NOW + timedelta(days=31), NOW + timedelta(days=31) + H) == ["starts_at"]


def test_both_ends_can_be_wrong_at_once() -> None:
    assert fields(NOW - 5 * H, NOW - 6 * H) == ["starts_at", "ends_at"]


# --- overlap ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("b_start", "b_end", "expected"),
    [
        (0, 2, True),  # same
        (1, 3, True),  # partial, later
        (-1, 1, True),  # partial, earlier
        (-1, 3, True),  # contains
        (0.5, 1.5, True),  # inside
        (2, 3, False),  # touches the end: half-open
        (-1, 0, False),  # touches the start
        (3, 4, False),  # after
        (-3, -2, False),  # before
    ],
)
def test_overlap_is_half_open(b_start: float, b_end: float, expected: bool) -> None:
    a = (NOW, NOW + 2 * H)
    b = (NOW + b_start * H, NOW + b_end * H)
    assert overlaps(*a, *b) is expected
    assert overlaps(*b, *a) is expected


# --- states -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "now_offset", "expected"),
    [
        (JobStatus.DECLARED, -1, JobState.UPCOMING),
        (JobStatus.DECLARED, 0, JobState.ACTIVE),  # start inclusive
        (JobStatus.DECLARED, 1, JobState.ACTIVE),
        (JobStatus.DECLARED, 2, JobState.ENDED),  # end exclusive
        (JobStatus.CANCELLED, -1, JobState.CANCELLED),
        (JobStatus.CANCELLED, 3, JobState.CANCELLED),
        (JobStatus.ENDED, 1, JobState.ENDED),
    ],
)
def test_job_state(status: JobStatus, now_offset: int, expected: JobState) -> None:
    assert job_state(status, NOW, NOW + 2 * H, NOW + now_offset * H) is expected


def test_live_and_editable() -> None:
    assert is_live(JobStatus.DECLARED, NOW + H, NOW)
    assert not is_live(JobStatus.DECLARED, NOW, NOW)
    assert not is_live(JobStatus.CANCELLED, NOW + H, NOW)
    assert may_edit(JobStatus.DECLARED, NOW + H, NOW)
    assert not may_edit(JobStatus.DECLARED, NOW, NOW)  # the window has started
    assert not may_edit(JobStatus.ENDED, NOW + H, NOW)


def test_ending_before_the_start_cancels_and_keeps_the_window() -> None:
    assert end_transition(JobStatus.DECLARED, NOW + H, NOW + 2 * H, NOW) == (
        JobStatus.CANCELLED,
        NOW + 2 * H,
    )


def test_ending_during_the_window_ends_it_now() -> None:
    assert end_transition(JobStatus.DECLARED, NOW - H, NOW + H, NOW) == (JobStatus.ENDED, NOW)
    assert end_transition(JobStatus.DECLARED, NOW, NOW + H, NOW) == (JobStatus.ENDED, NOW)


def test_a_job_over_or_withdrawn_cannot_end_again() -> None:
    assert end_transition(JobStatus.DECLARED, NOW - 2 * H, NOW, NOW) is None
    assert end_transition(JobStatus.CANCELLED, NOW + H, NOW + 2 * H, NOW) is None
    assert end_transition(JobStatus.ENDED, NOW - H, NOW + H, NOW) is None


# --- coverage -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "welder", "machine", "at", "expected"),
    [
        (JobStatus.DECLARED, 1, 10, 0, True),
        (JobStatus.DECLARED, 1, 10, 1.99, True),
        (JobStatus.DECLARED, 1, 10, -0.01, False),  # before
        (JobStatus.DECLARED, 1, 10, 2, False),  # end exclusive
        (JobStatus.DECLARED, 2, 10, 1, False),  # welder not named
        (JobStatus.DECLARED, 1, 11, 1, False),  # machine not named
        (JobStatus.CANCELLED, 1, 10, 1, False),
        (JobStatus.ENDED, 1, 10, 1, False),
    ],
)
def test_covers(status: JobStatus, welder: int, machine: int, at: float, expected: bool) -> None:
    assert (
        covers(status, NOW, NOW + 2 * H, {1, 3}, {10, 12}, welder, machine, NOW + at * H)
        is expected
    )
