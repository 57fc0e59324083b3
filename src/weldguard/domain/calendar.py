"""The mainland-China working calendar (节假日安排): which days are rest days.

Rest days are Saturdays and Sundays, except the weekend days the State Council
swaps into workdays (调休上班), plus the statutory holidays it announces each year
(国务院办公厅关于节假日安排的通知). A holiday span includes the weekend days inside
it, so ``is_holiday`` is true for them too.

Pure: the announced days are passed in (``permit.calendar_service`` loads them);
a year nobody has entered falls back to plain weekends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

__all__ = [
    "DAY_KIND_LABELS",
    "WEEKDAY_LABELS",
    "DayKind",
    "WorkCalendar",
    "is_weekend",
    "kind_problem",
]


class DayKind(StrEnum):
    HOLIDAY = "holiday"  # 节假日: a day off, weekday or weekend
    WORKDAY = "workday"  # 调休上班: a Saturday or Sunday worked in exchange


DAY_KIND_LABELS: dict[str, str] = {
    DayKind.HOLIDAY.value: "节假日",
    DayKind.WORKDAY.value: "调休上班",
}
WEEKDAY_LABELS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


def is_weekend(day: date) -> bool:
    return day.weekday() >= 5


def kind_problem(day: date, kind: DayKind) -> str | None:
    """Why ``day`` cannot be of ``kind``: only a weekend day can be swapped into a
    workday (every other day is a workday already)."""
    if kind is DayKind.WORKDAY and not is_weekend(day):
        return (
            f"{day.isoformat()} 是{WEEKDAY_LABELS[day.weekday()]}，调休上班日只能是星期六或星期日"
        )
    return None


@dataclass(frozen=True)
class WorkCalendar:
    """The announced days of some years. A day in both sets is a holiday (the
    storage keeps one kind per day, so this only arises when built by hand)."""

    holidays: frozenset[date] = frozenset()
    swapped_workdays: frozenset[date] = frozenset()

    def is_holiday(self, day: date) -> bool:
        """A statutory holiday (法定节假日及其放假调休日)."""
        return day in self.holidays

    def is_rest_day(self, day: date) -> bool:
        """No work by the calendar: a holiday, or a weekend day not swapped into a
        workday."""
        if day in self.holidays:
            return True
        if day in self.swapped_workdays:
            return False
        return is_weekend(day)
