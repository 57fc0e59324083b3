"""Helpers for the holiday calendar tests: a made-up 2027 schedule (shaped like a
State Council notice, not the official one) as CSV or xlsx, and day counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy.orm import Session

from tests.imports.conftest import xlsx
from weldguard.permit.calendar_repository import CalendarRepository

HEADER = ["日期", "类型", "名称"]


def _span(first: date, days: int, kind: str, name: str) -> list[list[str]]:
    return [[(first + timedelta(days=n)).isoformat(), kind, name] for n in range(days)]


# 33 holidays and 4 swapped workdays (all Saturdays or Sundays).
ROWS_2027: list[list[str]] = [
    *_span(date(2027, 1, 1), 3, "节假日", "元旦"),
    *_span(date(2027, 2, 6), 9, "节假日", "春节"),
    ["2027-02-20", "调休上班", "春节"],
    *_span(date(2027, 4, 3), 3, "节假日", "清明节"),
    *_span(date(2027, 5, 1), 5, "节假日", "劳动节"),
    *_span(date(2027, 6, 12), 3, "节假日", "端午节"),
    *_span(date(2027, 9, 18), 3, "节假日", "中秋节"),
    *_span(date(2027, 10, 1), 7, "节假日", "国庆节"),
    ["2027-09-26", "调休上班", "国庆节"],
    ["2027-10-09", "调休上班", "国庆节"],
    ["2027-05-08", "调休上班", "劳动节"],
]
HOLIDAYS_2027 = sum(1 for r in ROWS_2027 if r[1] == "节假日")
WORKDAYS_2027 = len(ROWS_2027) - HOLIDAYS_2027


def csv_file(rows: Sequence[Sequence[str]], encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(",".join(r) for r in [HEADER, *rows]) + "\r\n").encode(encoding)


def xlsx_file(rows: Sequence[Sequence[object]]) -> bytes:
    return xlsx([HEADER, *rows])


def days_of(db: Session, year: int) -> dict[str, tuple[str, str]]:
    """{iso day: (kind, name)} of a year, as stored."""
    return {r.day.isoformat(): (r.kind, r.name) for r in CalendarRepository(db).years(year, year)}
