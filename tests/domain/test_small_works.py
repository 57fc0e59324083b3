"""domain/small_works.py: the status a check leaves, closing, the expected dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from weldguard.domain.small_works import (
    MAX_WORKS_DAYS,
    CheckResult,
    FilingStatus,
    after_check,
    may_close,
    period_problems,
)

TODAY = date(2026, 11, 22)


@pytest.mark.parametrize(
    ("status", "result", "expected"),
    [
        (FilingStatus.FILED, CheckResult.PASSED, FilingStatus.CHECKED),
        (FilingStatus.FILED, CheckResult.RECTIFY, FilingStatus.RECTIFICATION_REQUIRED),
        (FilingStatus.RECTIFICATION_REQUIRED, CheckResult.PASSED, FilingStatus.CHECKED),
        (
            FilingStatus.RECTIFICATION_REQUIRED,
            CheckResult.RECTIFY,
            FilingStatus.RECTIFICATION_REQUIRED,
        ),
        (FilingStatus.CHECKED, CheckResult.RECTIFY, FilingStatus.RECTIFICATION_REQUIRED),
        (FilingStatus.CHECKED, CheckResult.PASSED, FilingStatus.CHECKED),
        (FilingStatus.CLOSED, CheckResult.PASSED, None),
        (FilingStatus.CLOSED, CheckResult.RECTIFY, None),
        ("unknown", CheckResult.PASSED, None),
    ],
)
def test_after_check(status: str, result: CheckResult, expected: FilingStatus | None) -> None:
    assert after_check(status, result) == expected


def test_only_a_checked_filing_closes() -> None:
    assert may_close(FilingStatus.CHECKED)
    for status in (
        FilingStatus.FILED,
        FilingStatus.RECTIFICATION_REQUIRED,
        FilingStatus.CLOSED,
    ):
        assert not may_close(status)


def fields(start: date | None, end: date | None) -> list[str]:
    return [name for name, _ in period_problems(start, end, TODAY)]


def test_expected_dates() -> None:
    assert fields(TODAY, TODAY) == []
    assert fields(TODAY, TODAY + timedelta(days=MAX_WORKS_DAYS)) == []
    assert fields(None, None) == ["expected_start", "expected_end"]
    assert fields(TODAY - timedelta(days=1), TODAY) == ["expected_start"]
    assert fields(TODAY + timedelta(days=2), TODAY + timedelta(days=1)) == ["expected_end"]
    assert fields(TODAY, TODAY + timedelta(days=MAX_WORKS_DAYS + 1)) == ["expected_end"]
