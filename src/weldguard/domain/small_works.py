"""Small works below the permit threshold (限额以下小型工程备案): the pure rules.

Works too small for a construction permit that involve hot work are filed with
the street (街道/乡镇) where they happen (DOMAIN.md "Crowded places"); the
street's regulators check them (核查). Status::

    filed ──check 合格──────────────────────────► checked ──close──► closed
      └──check 需整改──► rectification_required ──check 合格──┘  │
                           ▲  (需整改 again: stays)                │
                           └──────────── check 需整改 ─────────────┘

A filing that needs rectification is checked again before it can be closed: the
point of the check is that the hot work was found in order. A later visit may
find a checked filing out of order again; a closed one is not checked (the works
are over).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

__all__ = [
    "CHECK_RESULT_LABELS",
    "MAX_WORKS_DAYS",
    "STATUS_LABELS",
    "CheckResult",
    "FilingStatus",
    "after_check",
    "may_close",
    "period_problems",
]

# Small works run for days or weeks; a filing for longer is a project that
# needs a permit, or a mistake in the dates.
MAX_WORKS_DAYS = 180


class FilingStatus(StrEnum):
    FILED = "filed"
    CHECKED = "checked"
    RECTIFICATION_REQUIRED = "rectification_required"
    CLOSED = "closed"


class CheckResult(StrEnum):
    PASSED = "合格"
    RECTIFY = "需整改"


STATUS_LABELS: dict[str, str] = {
    FilingStatus.FILED.value: "已备案",
    FilingStatus.CHECKED.value: "已核查",
    FilingStatus.RECTIFICATION_REQUIRED.value: "需整改",
    FilingStatus.CLOSED.value: "已办结",
}
CHECK_RESULT_LABELS = {r.value: r.value for r in CheckResult}


def after_check(status: str, result: CheckResult) -> FilingStatus | None:
    """The status a check leaves, or None when the filing cannot be checked
    (closed: the works are over)."""
    if status not in (
        FilingStatus.FILED,
        FilingStatus.RECTIFICATION_REQUIRED,
        FilingStatus.CHECKED,
    ):
        return None
    return (
        FilingStatus.CHECKED
        if result is CheckResult.PASSED
        else FilingStatus.RECTIFICATION_REQUIRED
    )


def may_close(status: str) -> bool:
    return status == FilingStatus.CHECKED


def period_problems(
    expected_start: date | None, expected_end: date | None, today: date
) -> list[tuple[str, str]]:
    """(field, reason) for every problem of the expected dates (empty: valid).
    Filing comes before the works: a start before today is refused (China
    calendar day, passed in)."""
    problems: list[tuple[str, str]] = []
    if expected_start is None:
        problems.append(("expected_start", "请填写预计开工日期"))
    if expected_end is None:
        problems.append(("expected_end", "请填写预计完工日期"))
    if expected_start is None or expected_end is None:
        return problems
    if expected_start < today:
        problems.append(("expected_start", "预计开工日期已过，须在开工前备案"))
    if expected_end < expected_start:
        problems.append(("expected_end", "预计完工日期不能早于开工日期"))
    elif expected_end - expected_start > timedelta(days=MAX_WORKS_DAYS):
        problems.append(
            ("expected_end", f"小型工程工期最长 {MAX_WORKS_DAYS} 天，超过的请按规定办理施工许可")
        )
    return problems
