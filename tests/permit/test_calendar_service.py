"""Keeping the calendar one day or one year at a time, reading it as a
WorkCalendar, and the built-in 2026 schedule (its structure, not its dates)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from tests.factories import ADMIN_SCOPE, NOW
from tests.permit.conftest import days_of
from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.domain.calendar import DayKind
from weldguard.errors import InvalidInput, NotFound, PermissionDenied
from weldguard.permit.calendar_seed import SEED_SOURCE, built_in_days, seed_calendar
from weldguard.permit.calendar_service import FORM_SOURCE, CalendarService
from weldguard.seed.reference import load_reference

REGULATOR = Scope(role=Role.REGULATOR, user_id=3, area_path="310000/310100/310105/")


def set_day(db: Session, day: str, kind: str, name: str, scope: Scope = ADMIN_SCOPE) -> None:
    CalendarService(db).set_day(scope, {"day": day, "kind": kind, "name": name}, "admin", NOW)


# --- one day -------------------------------------------------------------------------
def test_add_change_and_delete_a_day(db: Session) -> None:
    set_day(db, "2027-10-01", "holiday", "国庆节")
    set_day(db, "2027-10-09", "调休上班", "国庆节")  # the label is accepted too
    assert days_of(db, 2027) == {
        "2027-10-01": ("holiday", "国庆节"),
        "2027-10-09": ("workday", "国庆节"),
    }
    set_day(db, "2027-10-09", "holiday", "国庆节调整")  # the same date: changed
    assert days_of(db, 2027)["2027-10-09"] == ("holiday", "国庆节调整")
    row = CalendarService(db).year_days(2027)[0]
    assert row.source == FORM_SOURCE and row.updated_by == "admin"
    CalendarService(db).delete_day(ADMIN_SCOPE, date(2027, 10, 9))
    assert list(days_of(db, 2027)) == ["2027-10-01"]
    with pytest.raises(NotFound):
        CalendarService(db).delete_day(ADMIN_SCOPE, date(2027, 10, 9))


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"day": "", "kind": "holiday", "name": "春节"}, {"day"}),
        ({"day": "2027-02-29", "kind": "holiday", "name": "春节"}, {"day"}),
        ({"day": "2027-02-08", "kind": "rest", "name": "春节"}, {"kind"}),
        ({"day": "2027-02-08", "kind": "workday", "name": "春节"}, {"kind"}),  # a Monday
        ({"day": "2027-02-08", "kind": "holiday", "name": " "}, {"name"}),
        ({"day": "x", "kind": "", "name": ""}, {"day", "kind", "name"}),
    ],
)
def test_a_bad_day_names_its_fields_and_writes_nothing(
    db: Session, raw: dict[str, str], fields: set[str]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        CalendarService(db).set_day(ADMIN_SCOPE, raw, "admin", NOW)
    assert {d.field for d in caught.value.details} == fields
    assert days_of(db, 2027) == {}


def test_only_the_admin_changes_the_calendar(db: Session) -> None:
    set_day(db, "2027-10-01", "holiday", "国庆节")
    service = CalendarService(db)
    with pytest.raises(PermissionDenied):
        set_day(db, "2027-10-02", "holiday", "国庆节", scope=REGULATOR)
    with pytest.raises(PermissionDenied):
        service.delete_day(REGULATOR, date(2027, 10, 1))
    with pytest.raises(PermissionDenied):
        service.replace_year(REGULATOR, 2027, [], "x", NOW)
    assert list(days_of(db, 2027)) == ["2027-10-01"]


# --- a year ----------------------------------------------------------------------------
def test_replace_year_and_its_errors(db: Session) -> None:
    set_day(db, "2027-10-01", "holiday", "国庆节")
    set_day(db, "2028-01-01", "holiday", "元旦")
    service = CalendarService(db)
    rows = service.replace_year(
        ADMIN_SCOPE,
        2027,
        [
            {"day": "2027-05-03", "kind": "holiday", "name": "劳动节"},
            {"day": "2027-05-01", "kind": "holiday", "name": "劳动节"},
        ],
        "admin",
        NOW,
    )
    assert [r.day for r in rows] == [date(2027, 5, 1), date(2027, 5, 3)]
    assert list(days_of(db, 2027)) == ["2027-05-01", "2027-05-03"]
    assert list(days_of(db, 2028)) == ["2028-01-01"]
    with pytest.raises(InvalidInput) as caught:
        service.replace_year(
            ADMIN_SCOPE,
            2027,
            [
                {"day": "2027-05-01", "kind": "holiday", "name": "劳动节"},
                {"day": "2027-05-01", "kind": "holiday", "name": "劳动节"},
                {"day": "2026-05-01", "kind": "holiday", "name": "劳动节"},
                {"day": "2027-05-05", "kind": "workday", "name": ""},
            ],
            "admin",
            NOW,
        )
    assert [d.field for d in caught.value.details] == [
        "days[1].date",
        "days[2].date",
        "days[3].name",
        "days[3].kind",
    ]
    assert list(days_of(db, 2027)) == ["2027-05-01", "2027-05-03"]
    assert service.replace_year(ADMIN_SCOPE, 2027, [], "admin", NOW) == []
    assert days_of(db, 2027) == {}


def test_work_calendar_of_a_range(db: Session) -> None:
    set_day(db, "2027-12-31", "holiday", "元旦")
    set_day(db, "2028-01-01", "holiday", "元旦")
    set_day(db, "2028-01-08", "workday", "元旦")
    service = CalendarService(db)
    both = service.work_calendar(2027, 2028)
    assert both.holidays == {date(2027, 12, 31), date(2028, 1, 1)}
    assert both.swapped_workdays == {date(2028, 1, 8)}
    assert not both.is_rest_day(date(2028, 1, 8)) and both.is_rest_day(date(2027, 12, 31))
    assert service.work_calendar(2027).holidays == {date(2027, 12, 31)}
    window = service.work_calendar_between(date(2028, 1, 1), date(2028, 1, 7))
    assert window.holidays == {date(2028, 1, 1)} and window.swapped_workdays == frozenset()
    assert service.known_years() == [2027, 2028]


# --- the built-in schedule ---------------------------------------------------------------
def test_built_in_2026_is_well_formed() -> None:
    days = built_in_days(2026)
    assert days and built_in_days(2025) == []
    assert len({d for d, _, _ in days}) == len(days), "one entry per day"
    assert all(d.year == 2026 for d, _, _ in days)
    assert all(d.weekday() >= 5 for d, k, _ in days if k is DayKind.WORKDAY)
    names = Counter(name for _, k, name in days if k is DayKind.HOLIDAY)
    assert set(names) == {"元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"}
    # Each holiday is one unbroken run of days.
    for name in names:
        run = sorted(d for d, k, n in days if n == name and k is DayKind.HOLIDAY)
        assert run[-1] - run[0] == timedelta(days=len(run) - 1), name


def test_seed_loads_once_and_keeps_corrections(db: Session) -> None:
    assert seed_calendar(db, NOW) == [2026]
    stored = CalendarService(db).year_days(2026)
    assert len(stored) == len(built_in_days(2026))
    assert {r.source for r in stored} == {SEED_SOURCE}
    first = stored[0]
    set_day(db, first.day.isoformat(), "holiday", "更正后的名称")
    assert seed_calendar(db, NOW) == []
    assert days_of(db, 2026)[first.day.isoformat()] == ("holiday", "更正后的名称")
    assert len(days_of(db, 2026)) == len(built_in_days(2026))


def test_reference_data_includes_the_calendar(db: Session) -> None:
    load_reference(db, NOW)
    assert len(days_of(db, 2026)) == len(built_in_days(2026))
    load_reference(db)  # a second run adds nothing
    assert len(days_of(db, 2026)) == len(built_in_days(2026))
