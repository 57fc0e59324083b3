"""The holiday calendar's use cases: reading it as a ``WorkCalendar``, keeping it
(one day at a time, a whole year through the API, or a file of the State
Council's notice) and exporting it.

Only the admin changes the calendar (403 for everyone else); every signed-in user
may read it. Every input error is reported at once, naming its field (or the row
and column of the file), and nothing is written unless all are right.

An import is for one year (``--year``, or the year most of its dates fall in) and
replaces that year's days. A notice sometimes lists days of the neighbouring year
(the 2019 notice: 元旦 from 2018-12-30, 2018-12-29 worked): such days, within a
month of the year, are added to the neighbouring year without replacing it, and
one that contradicts a day already entered there is an error."""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl import Workbook
from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.domain.calendar import (
    DAY_KIND_LABELS,
    WEEKDAY_LABELS,
    DayKind,
    WorkCalendar,
    kind_problem,
)
from weldguard.enterprise.fields import cell_text
from weldguard.errors import ErrorDetail, InvalidInput, NotFound, PermissionDenied
from weldguard.permit.calendar_models import CalendarDay
from weldguard.permit.calendar_repository import CalendarRepository
from weldguard.report.imports import Column, bold_row, read_table

__all__ = [
    "API_SOURCE",
    "CALENDAR_COLUMNS",
    "FORM_SOURCE",
    "YEAR_MAX",
    "YEAR_MIN",
    "CalendarImport",
    "CalendarService",
    "DayEntry",
    "parse_day",
    "parse_kind",
]

YEAR_MIN, YEAR_MAX = 2000, 2100
NAME_MAX = 32
# How far into a neighbouring year a notice may reach (元旦 spans the new year).
SPILL_DAYS = 31
FORM_SOURCE = "管理员维护"
API_SOURCE = "接口（API）"
IMPORT_SOURCE = "导入：{filename}"
SOURCE_MAX = 128
ADMIN_ONLY = "只有系统管理员可以维护节假日安排"

CALENDAR_COLUMNS: tuple[Column, ...] = (
    Column("day", "日期", aliases=("date",)),
    Column("kind", "类型", aliases=("安排", "类别", "kind")),
    Column("name", "名称", aliases=("节日", "节日名称", "节假日名称", "name")),
    # Written by the export for reading; ignored on import (the file is the source).
    Column("weekday", "星期", required=False, significant=False),
    Column("source", "来源", required=False, significant=False),
)
HEADER = {c.key: c.header for c in CALENDAR_COLUMNS}
EXPORT_HEADERS = ("日期", "星期", "类型", "名称", "来源")

_KIND_WORDS: dict[str, DayKind] = {
    "节假日": DayKind.HOLIDAY,
    "假日": DayKind.HOLIDAY,
    "放假": DayKind.HOLIDAY,
    "holiday": DayKind.HOLIDAY,
    "调休上班": DayKind.WORKDAY,
    "上班": DayKind.WORKDAY,
    "补班": DayKind.WORKDAY,
    "workday": DayKind.WORKDAY,
}
KIND_CHOICES = "节假日、调休上班"
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")


# --- parsing one day ---------------------------------------------------------------
def parse_kind(text: str) -> DayKind | None:
    return _KIND_WORDS.get(text.strip().lower())


def parse_day(value: Any) -> date:
    """A cell or JSON value as a calendar day; ValueError with the reason."""
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    else:
        text = cell_text({"v": value}, "v")
        # "2026-10-01 00:00:00" as many systems export it: the time is noise.
        head = text.split(" ")[0].split("T")[0]
        for fmt in _DATE_FORMATS:
            try:
                day = datetime.strptime(head, fmt).date()  # noqa: DTZ007  a calendar day
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"日期“{text[:20]}”无法识别，应为 YYYY-MM-DD，如 2026-10-01")
    if not YEAR_MIN <= day.year <= YEAR_MAX:
        raise ValueError(f"年份须在 {YEAR_MIN}–{YEAR_MAX} 之间")
    return day


@dataclass(frozen=True)
class DayEntry:
    day: date
    kind: DayKind
    name: str


def check_entry(raw: Mapping[str, Any]) -> tuple[DayEntry | None, list[tuple[str, str]]]:
    """One day given as {"day", "kind", "name"}: the entry, or every problem as
    (key, reason)."""
    problems: list[tuple[str, str]] = []
    day: date | None = None
    if not cell_text(raw, "day"):
        problems.append(("day", "请填写日期"))
    else:
        try:
            day = parse_day(raw.get("day"))
        except ValueError as exc:
            problems.append(("day", str(exc)))
    kind: DayKind | None = None
    kind_text = cell_text(raw, "kind")
    if not kind_text:
        problems.append(("kind", f"请填写类型：{KIND_CHOICES}"))
    else:
        kind = parse_kind(kind_text)
        if kind is None:
            problems.append(("kind", f"未知的类型“{kind_text[:16]}”，可选：{KIND_CHOICES}"))
    name = cell_text(raw, "name")
    if not name:
        problems.append(("name", "请填写名称，如 春节、国庆节"))
    elif len(name) > NAME_MAX:
        problems.append(("name", f"名称不能超过 {NAME_MAX} 个字"))
    if day is not None and kind is not None:
        problem = kind_problem(day, kind)
        if problem:
            problems.append(("kind", problem))
    if problems or day is None or kind is None:
        return None, problems
    return DayEntry(day, kind, name), []


def _label(row: CalendarDay) -> str:
    return f"{DAY_KIND_LABELS.get(row.kind, row.kind)}（{row.name}）"


# --- results -----------------------------------------------------------------------
@dataclass
class CalendarImport:
    year: int
    filename: str
    holidays: int = 0
    workdays: int = 0
    replaced: int = 0  # days the year had before
    neighbours: list[date] = field(default_factory=list)  # days added to adjacent years
    warnings: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        lines = [
            f"已导入 {self.year} 年节假日安排：节假日 {self.holidays} 天，调休上班 "
            f"{self.workdays} 天（替换原有 {self.replaced} 天）"
        ]
        if self.neighbours:
            days = "、".join(d.isoformat() for d in self.neighbours)
            lines.append(f"相邻年份的日期已补充到对应年度：{days}")
        lines.extend(self.warnings)
        return lines


def _file_error(row: int, key: str, reason: str) -> ErrorDetail:
    return ErrorDetail(reason=reason, row=row, column=HEADER[key])


def _require_admin(scope: Scope) -> None:
    if scope.role != Role.ADMIN or not scope.everything:
        raise PermissionDenied(ADMIN_ONLY)


def _check_year(year: int, field_name: str = "year") -> None:
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise InvalidInput(
            f"年份须在 {YEAR_MIN}–{YEAR_MAX} 之间",
            [ErrorDetail(f"年份须在 {YEAR_MIN}–{YEAR_MAX} 之间", field=field_name)],
        )


def _near_year(day: date, year: int) -> bool:
    """Whether ``day`` of a neighbouring year lies within a month of ``year``."""
    return (
        date(year, 1, 1) - timedelta(days=SPILL_DAYS)
        <= day
        <= date(year, 12, 31) + timedelta(days=SPILL_DAYS)
    )


class CalendarService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.repo = CalendarRepository(session)

    # --- reads ---------------------------------------------------------------------
    def work_calendar(self, first_year: int, last_year: int | None = None) -> WorkCalendar:
        """The calendar of the years ``first_year`` to ``last_year`` (inclusive)."""
        return self._calendar(self.repo.years(first_year, last_year or first_year))

    def work_calendar_between(self, first: date, last: date) -> WorkCalendar:
        """The calendar of the days ``first`` to ``last`` (inclusive), e.g. a
        permit's validity."""
        return self._calendar(self.repo.between(first, last))

    @staticmethod
    def _calendar(rows: Sequence[CalendarDay]) -> WorkCalendar:
        return WorkCalendar(
            holidays=frozenset(r.day for r in rows if r.kind == DayKind.HOLIDAY),
            swapped_workdays=frozenset(r.day for r in rows if r.kind == DayKind.WORKDAY),
        )

    def year_days(self, year: int) -> list[CalendarDay]:
        _check_year(year)
        return self.repo.years(year, year)

    def known_years(self) -> list[int]:
        return self.repo.known_years()

    # --- one day ---------------------------------------------------------------------
    def set_day(
        self,
        scope: Scope,
        raw: Mapping[str, Any],
        updated_by: str,
        now: datetime,
        source: str = FORM_SOURCE,
    ) -> CalendarDay:
        """Adds the day ({"day", "kind", "name"}) or changes the one entered."""
        _require_admin(scope)
        entry, problems = check_entry(raw)
        if entry is None:
            raise InvalidInput(
                "节假日信息有误：" + "；".join(reason for _, reason in problems),
                [ErrorDetail(reason, field=key) for key, reason in problems],
            )
        row = self.repo.by_day(entry.day)
        if row is None:
            row = CalendarDay(day=entry.day)
            self.repo.add_all([row])
        self._fill(row, entry, source, updated_by, now)
        self.session.flush()
        return row

    def delete_day(self, scope: Scope, day: date) -> CalendarDay:
        _require_admin(scope)
        row = self.repo.by_day(day)
        if row is None:
            raise NotFound(f"{day.isoformat()} 不在节假日安排中")
        self.repo.remove(row)
        self.session.flush()
        return row

    @staticmethod
    def _fill(row: CalendarDay, entry: DayEntry, source: str, by: str, now: datetime) -> None:
        row.kind = entry.kind.value
        row.name = entry.name
        row.source = source[:SOURCE_MAX]
        row.updated_by = by[:64]
        row.updated_at = now

    # --- a whole year (API) ----------------------------------------------------------
    def replace_year(
        self,
        scope: Scope,
        year: int,
        days: Sequence[Mapping[str, Any]],
        updated_by: str,
        now: datetime,
        source: str = API_SOURCE,
    ) -> list[CalendarDay]:
        """Replaces the year's days with ``days`` (each {"day", "kind", "name"}),
        all of which must lie in the year. Errors name ``days[i].date`` etc."""
        _require_admin(scope)
        _check_year(year)
        api_field = {"day": "date", "kind": "kind", "name": "name"}
        errors: list[ErrorDetail] = []
        entries: list[DayEntry] = []
        first_seen: dict[date, int] = {}
        for index, raw in enumerate(days):
            entry, problems = check_entry(raw)
            errors.extend(
                ErrorDetail(reason, field=f"days[{index}].{api_field[key]}")
                for key, reason in problems
            )
            if entry is None:
                continue
            where = f"days[{index}].date"
            if entry.day.year != year:
                errors.append(ErrorDetail(f"{entry.day.isoformat()} 不在 {year} 年内", where))
            elif entry.day in first_seen:
                errors.append(
                    ErrorDetail(f"日期与 days[{first_seen[entry.day]}] 重复", field=where)
                )
            else:
                first_seen[entry.day] = index
                entries.append(entry)
        if errors:
            raise InvalidInput(f"{year} 年节假日安排有误，未写入任何数据", errors)
        self.repo.delete_year(year)
        rows = [self._new(entry, source, updated_by, now) for entry in entries]
        self.repo.add_all(rows)
        self.session.flush()
        return sorted(rows, key=lambda r: r.day)

    def _new(self, entry: DayEntry, source: str, by: str, now: datetime) -> CalendarDay:
        row = CalendarDay(day=entry.day)
        self._fill(row, entry, source, by, now)
        return row

    # --- a file ----------------------------------------------------------------------
    def import_file(
        self,
        scope: Scope,
        content: bytes,
        filename: str,
        updated_by: str,
        now: datetime,
        year: int | None = None,
    ) -> CalendarImport:
        """Imports one year's notice (CSV or xlsx with 日期, 类型, 名称) and
        replaces that year; all or nothing. Flushes; the caller commits."""
        _require_admin(scope)
        if year is not None:
            _check_year(year)
        table = read_table(content, filename, CALENDAR_COLUMNS, allow_csv=True)
        if not table.rows:
            raise InvalidInput("文件中没有数据行：请在表头下逐行填写 日期、类型、名称")
        errors: list[ErrorDetail] = []
        entries: list[tuple[int, DayEntry]] = []
        first_seen: dict[date, int] = {}
        for number, raw in table.rows:
            entry, problems = check_entry(raw)
            errors.extend(_file_error(number, key, reason) for key, reason in problems)
            if entry is None:
                continue
            if entry.day in first_seen:
                errors.append(
                    _file_error(
                        number,
                        "day",
                        f"日期 {entry.day.isoformat()} 与第 {first_seen[entry.day]} 行重复",
                    )
                )
                continue
            first_seen[entry.day] = number
            entries.append((number, entry))

        target = year if year is not None else _main_year([e for _, e in entries])
        if target is None:  # no good row at all: the row errors say why
            raise InvalidInput(_rejected(errors), errors)
        if year is not None and not any(e.day.year == year for _, e in entries) and not errors:
            raise InvalidInput(f"文件中没有 {year} 年的日期，请检查年份或文件")
        own = [(n, e) for n, e in entries if e.day.year == target]
        others = [(n, e) for n, e in entries if e.day.year != target]
        for number, entry in others:
            if not _near_year(entry.day, target):
                errors.append(
                    _file_error(
                        number,
                        "day",
                        f"{entry.day.isoformat()} 不属于 {target} 年：一个文件只导入一个年度的"
                        f"安排（相邻年份只接受 {target} 年前后 {SPILL_DAYS} 天内的日期），"
                        "请按年度分别导入",
                    )
                )
        existing = self.repo.by_days(e.day for _, e in others)
        for number, entry in others:
            row = existing.get(entry.day)
            if row is not None and row.kind != entry.kind:
                errors.append(
                    _file_error(
                        number,
                        "kind",
                        f"{entry.day.isoformat()} 已登记为{_label(row)}，与本行冲突；"
                        f"请先在 {entry.day.year} 年的安排中修改或删除该日",
                    )
                )
        if errors:
            errors.sort(key=lambda e: (e.row or 0, list(HEADER.values()).index(e.column or "日期")))
            raise InvalidInput(_rejected(errors), errors)

        source = IMPORT_SOURCE.format(filename=filename)
        result = CalendarImport(year=target, filename=filename, warnings=table.warnings)
        result.replaced = self.repo.delete_year(target)
        self.repo.add_all(self._new(e, source, updated_by, now) for _, e in own)
        result.holidays = sum(1 for _, e in own if e.kind is DayKind.HOLIDAY)
        result.workdays = len(own) - result.holidays
        for _, entry in others:
            row = existing.get(entry.day)
            if row is None:
                self.repo.add_all([self._new(entry, source, updated_by, now)])
            else:
                self._fill(row, entry, source, updated_by, now)
            result.neighbours.append(entry.day)
        result.neighbours.sort()
        self.session.flush()
        return result

    # --- export ------------------------------------------------------------------------
    def export(self, year: int | None, filename: str) -> bytes:
        """The year's days (every year's without one) as xlsx, or as CSV (UTF-8
        with a BOM, which Excel opens correctly) when ``filename`` ends in .csv;
        both import again unchanged."""
        if year is not None:
            _check_year(year)
        rows = self.repo.years(year, year) if year is not None else self.repo.all()
        lines = [
            (
                r.day.isoformat(),
                WEEKDAY_LABELS[r.day.weekday()],
                DAY_KIND_LABELS.get(r.kind, r.kind),
                r.name,
                r.source,
            )
            for r in rows
        ]
        if filename.lower().endswith(".csv"):
            buffer = io.StringIO(newline="")
            writer = csv.writer(buffer)
            writer.writerow(EXPORT_HEADERS)
            writer.writerows(lines)
            return codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8")
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("节假日安排")
        for letter, width in zip("ABCDE", (14, 8, 12, 16, 36), strict=True):
            ws.column_dimensions[letter].width = width
        ws.append(bold_row(ws, EXPORT_HEADERS))
        for line in lines:
            ws.append(list(line))
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()


def _main_year(entries: Sequence[DayEntry]) -> int | None:
    """The year most dates fall in; a tie is not guessed at."""
    ranked = Counter(e.day.year for e in entries).most_common()
    if not ranked:
        return None
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        first, second = sorted((ranked[0][0], ranked[1][0]))
        raise InvalidInput(
            f"无法确定导入年度：文件中 {first} 年和 {second} 年的日期一样多，请指定年度",
            [ErrorDetail("请指定年度", field="year")],
        )
    return ranked[0][0]


def _rejected(errors: Sequence[ErrorDetail]) -> str:
    rows = len({e.row for e in errors})
    return f"节假日安排文件有 {rows} 行错误，未写入任何数据"
