"""Queries of the holiday calendar. Unscoped: the calendar is the same for every
user; who may change it is decided by the service."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from weldguard.permit.calendar_models import CalendarDay


def year_bounds(first_year: int, last_year: int) -> tuple[date, date]:
    return date(first_year, 1, 1), date(last_year, 12, 31)


class CalendarRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def between(self, first: date, last: date) -> list[CalendarDay]:
        """The announced days from ``first`` to ``last`` inclusive, by day."""
        return list(
            self.session.scalars(
                select(CalendarDay)
                .where(CalendarDay.day >= first, CalendarDay.day <= last)
                .order_by(CalendarDay.day)
            )
        )

    def years(self, first_year: int, last_year: int) -> list[CalendarDay]:
        return self.between(*year_bounds(first_year, last_year))

    def all(self) -> list[CalendarDay]:
        return list(self.session.scalars(select(CalendarDay).order_by(CalendarDay.day)))

    def by_day(self, day: date) -> CalendarDay | None:
        return self.session.scalars(select(CalendarDay).where(CalendarDay.day == day)).one_or_none()

    def by_days(self, days: Iterable[date]) -> dict[date, CalendarDay]:
        wanted = sorted(set(days))
        if not wanted:
            return {}
        rows = self.session.scalars(select(CalendarDay).where(CalendarDay.day.in_(wanted)))
        return {row.day: row for row in rows}

    def known_years(self) -> list[int]:
        """The years that have at least one announced day (a few hundred rows in
        all, so reading the days beats a dialect-specific year expression)."""
        days = self.session.scalars(select(CalendarDay.day).order_by(CalendarDay.day))
        return sorted({day.year for day in days})

    def has_year(self, year: int) -> bool:
        first, last = year_bounds(year, year)
        found = self.session.scalar(
            select(CalendarDay.id).where(CalendarDay.day >= first, CalendarDay.day <= last).limit(1)
        )
        return found is not None

    def delete_year(self, year: int) -> int:
        first, last = year_bounds(year, year)
        result = self.session.execute(
            delete(CalendarDay)
            .where(CalendarDay.day >= first, CalendarDay.day <= last)
            .execution_options(synchronize_session="fetch")
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def add_all(self, days: Iterable[CalendarDay]) -> None:
        self.session.add_all(list(days))

    def remove(self, day: CalendarDay) -> None:
        self.session.delete(day)
