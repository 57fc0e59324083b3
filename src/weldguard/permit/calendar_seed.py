"""The built-in 节假日安排: the State Council's schedule for 2026 (国务院办公厅关于
2026年部分节假日安排的通知), so that a fresh installation and the demo know the
holidays before anyone imports a file.

Typed in by hand and marked as such (``SEED_SOURCE``): an admin who finds a day
wrong corrects it on /admin/calendar or imports the year again; the seed never
overwrites a year that already has days."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from weldguard.domain.calendar import DayKind
from weldguard.permit.calendar_models import CalendarDay
from weldguard.permit.calendar_repository import CalendarRepository

SEED_SOURCE = "国务院办公厅通知（内置，可编辑）"
SEED_BY = "系统"


def _span(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# (name, holiday days, weekend days worked in exchange)
SCHEDULE_2026: tuple[tuple[str, list[date], list[date]], ...] = (
    ("元旦", _span(date(2026, 1, 1), date(2026, 1, 3)), [date(2026, 1, 4)]),
    (
        "春节",
        _span(date(2026, 2, 15), date(2026, 2, 23)),
        [date(2026, 2, 14), date(2026, 2, 28)],
    ),
    ("清明节", _span(date(2026, 4, 4), date(2026, 4, 6)), []),
    ("劳动节", _span(date(2026, 5, 1), date(2026, 5, 5)), [date(2026, 5, 9)]),
    ("端午节", _span(date(2026, 6, 19), date(2026, 6, 21)), []),
    ("中秋节", _span(date(2026, 9, 25), date(2026, 9, 27)), []),
    (
        "国庆节",
        _span(date(2026, 10, 1), date(2026, 10, 7)),
        [date(2026, 9, 20), date(2026, 10, 10)],
    ),
)

BUILT_IN: dict[int, tuple[tuple[str, list[date], list[date]], ...]] = {2026: SCHEDULE_2026}


def built_in_days(year: int) -> list[tuple[date, DayKind, str]]:
    """The built-in days of ``year`` (none for a year we do not ship), by day."""
    days: list[tuple[date, DayKind, str]] = []
    for name, holidays, workdays in BUILT_IN.get(year, ()):
        days.extend((day, DayKind.HOLIDAY, name) for day in holidays)
        days.extend((day, DayKind.WORKDAY, name) for day in workdays)
    return sorted(days)


def seed_calendar(session: Session, now: datetime) -> list[int]:
    """Loads each built-in year that has no days yet; returns the years loaded.
    Idempotent, and an admin's corrections survive a second run. Flushes."""
    repo = CalendarRepository(session)
    loaded = []
    for year in sorted(BUILT_IN):
        if repo.has_year(year):
            continue
        repo.add_all(
            CalendarDay(
                day=day,
                kind=kind.value,
                name=name,
                source=SEED_SOURCE,
                updated_by=SEED_BY,
                updated_at=now,
            )
            for day, kind, name in built_in_days(year)
        )
        loaded.append(year)
    session.flush()
    return loaded
