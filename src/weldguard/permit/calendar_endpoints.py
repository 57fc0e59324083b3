"""/api/v1/calendar/{year}: the 节假日安排 of a year.

Any signed-in user reads it (the calendar is the same for everyone); only the
admin replaces it (403 for the rest). A PUT replaces the whole year: 422 names
every wrong entry as ``days[i].date`` / ``.kind`` / ``.name``, and nothing is
written."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from weldguard.deps import CurrentScope, CurrentUser, DbSession, Now
from weldguard.domain.calendar import DAY_KIND_LABELS, WEEKDAY_LABELS, DayKind
from weldguard.permit.calendar_models import CalendarDay
from weldguard.permit.calendar_service import API_SOURCE, YEAR_MAX, YEAR_MIN, CalendarService

router = APIRouter(tags=["holiday calendar"])

Year = Annotated[int, PathParam(ge=YEAR_MIN, le=YEAR_MAX, description="e.g. 2026")]


class CalendarDayIn(BaseModel):
    date: str = Field(default="", max_length=32, description="YYYY-MM-DD, inside the year")
    kind: str = Field(
        default="", max_length=16, description="holiday 节假日 | workday 调休上班 (a weekend day)"
    )
    name: str = Field(default="", max_length=64, description="e.g. 春节, 国庆节")


class CalendarYearIn(BaseModel):
    days: list[CalendarDayIn] = Field(default_factory=list, max_length=366)


class CalendarDayOut(BaseModel):
    date: date
    weekday: str
    kind: str
    kind_label: str
    name: str
    source: str
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, row: CalendarDay) -> CalendarDayOut:
        return cls(
            date=row.day,
            weekday=WEEKDAY_LABELS[row.day.weekday()],
            kind=row.kind,
            kind_label=DAY_KIND_LABELS.get(row.kind, row.kind),
            name=row.name,
            source=row.source,
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )


class CalendarYearOut(BaseModel):
    year: int
    holiday_count: int
    workday_count: int
    days: list[CalendarDayOut]

    @classmethod
    def of(cls, year: int, rows: list[CalendarDay]) -> CalendarYearOut:
        holidays = sum(1 for r in rows if r.kind == DayKind.HOLIDAY)
        return cls(
            year=year,
            holiday_count=holidays,
            workday_count=len(rows) - holidays,
            days=[CalendarDayOut.of(r) for r in rows],
        )


@router.get("/calendar/{year}", response_model=CalendarYearOut)
def get_calendar_year(year: Year, session: DbSession, _user: CurrentUser) -> CalendarYearOut:
    """The year's holidays and swapped workdays, by day. Days not listed follow the
    weekend rule; a year nobody entered has none."""
    return CalendarYearOut.of(year, CalendarService(session).year_days(year))


@router.put("/calendar/{year}", response_model=CalendarYearOut)
def put_calendar_year(
    year: Year,
    body: CalendarYearIn,
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
) -> CalendarYearOut:
    """Replaces the year's days (admin only); an empty list clears the year."""
    rows = CalendarService(session).replace_year(
        scope,
        year,
        [{"day": d.date, "kind": d.kind, "name": d.name} for d in body.days],
        user.username,
        now,
        API_SOURCE,
    )
    return CalendarYearOut.of(year, rows)
