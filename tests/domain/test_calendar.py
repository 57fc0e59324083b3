"""The working calendar: weekends, announced holidays and swapped workdays."""

from __future__ import annotations

from datetime import date, timedelta

from weldguard.domain.calendar import DayKind, WorkCalendar, is_weekend, kind_problem

# A made-up week-long holiday around a weekend, with a Saturday worked after it.
MONDAY = date(2027, 10, 4)
SATURDAY, SUNDAY = date(2027, 10, 2), date(2027, 10, 3)
SWAPPED = date(2027, 10, 9)
CALENDAR = WorkCalendar(
    holidays=frozenset(date(2027, 10, 1) + timedelta(days=n) for n in range(7)),
    swapped_workdays=frozenset({SWAPPED}),
)


def test_days_are_what_they_seem() -> None:
    assert MONDAY.weekday() == 0 and SATURDAY.weekday() == 5 and SWAPPED.weekday() == 5


def test_plain_weekends_and_weekdays_without_announcements() -> None:
    empty = WorkCalendar()
    week = [date(2027, 3, 1) + timedelta(days=n) for n in range(7)]  # Monday to Sunday
    assert [empty.is_rest_day(d) for d in week] == [False] * 5 + [True] * 2
    assert not any(empty.is_holiday(d) for d in week)
    assert [is_weekend(d) for d in week] == [False] * 5 + [True] * 2


def test_holidays_are_rest_days_on_weekdays_and_weekends() -> None:
    assert CALENDAR.is_holiday(MONDAY) and CALENDAR.is_rest_day(MONDAY)
    # The weekend inside the span is part of the holiday, not only a weekend.
    assert CALENDAR.is_holiday(SATURDAY) and CALENDAR.is_rest_day(SUNDAY)
    assert not CALENDAR.is_holiday(date(2027, 10, 8))
    assert not CALENDAR.is_rest_day(date(2027, 10, 8))  # the Friday after: a workday


def test_swapped_workdays_are_not_rest_days() -> None:
    assert not CALENDAR.is_rest_day(SWAPPED)
    assert not CALENDAR.is_holiday(SWAPPED)
    assert CALENDAR.is_rest_day(SWAPPED + timedelta(days=1))  # its Sunday still rests


def test_a_day_in_both_sets_is_a_holiday() -> None:
    both = WorkCalendar(holidays=frozenset({SWAPPED}), swapped_workdays=frozenset({SWAPPED}))
    assert both.is_holiday(SWAPPED) and both.is_rest_day(SWAPPED)


def test_only_weekend_days_can_be_swapped_into_workdays() -> None:
    assert kind_problem(SWAPPED, DayKind.WORKDAY) is None
    problem = kind_problem(MONDAY, DayKind.WORKDAY)
    assert problem is not None and "星期一" in problem and "星期六或星期日" in problem
    assert kind_problem(MONDAY, DayKind.HOLIDAY) is None
    assert kind_problem(SATURDAY, DayKind.HOLIDAY) is None
