"""Importing a year's 节假日安排 from CSV or xlsx: a good file replaces the year,
every bad row is named by row and column, and a bad file writes nothing."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy.orm import Session

from tests.factories import ADMIN_SCOPE, NOW
from tests.permit.conftest import (
    HOLIDAYS_2027,
    ROWS_2027,
    WORKDAYS_2027,
    csv_file,
    days_of,
    xlsx_file,
)
from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.errors import ErrorDetail, InvalidInput, PermissionDenied
from weldguard.permit.calendar_seed import SEED_SOURCE, seed_calendar
from weldguard.permit.calendar_service import CalendarImport, CalendarService


@pytest.fixture
def seeded(db: Session) -> int:
    """The built-in 2026 schedule, as a fresh installation has it."""
    seed_calendar(db, NOW)
    db.commit()
    return len(days_of(db, 2026))


def run(
    db: Session, content: bytes, filename: str = "2027.csv", year: int | None = None
) -> CalendarImport:
    return CalendarService(db).import_file(ADMIN_SCOPE, content, filename, "admin", NOW, year=year)


def rejected(db: Session, content: bytes) -> list[ErrorDetail]:
    before = {year: days_of(db, year) for year in (2026, 2027)}
    with pytest.raises(InvalidInput) as caught:
        run(db, content)
    db.rollback()
    assert {year: days_of(db, year) for year in (2026, 2027)} == before, "nothing is written"
    return caught.value.details


def test_the_made_up_schedule_is_well_formed() -> None:
    for day, kind, _ in ROWS_2027:
        if kind == "调休上班":
            assert date.fromisoformat(day).weekday() >= 5, day


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (csv_file(ROWS_2027), "2027.csv"),
        (b"\xef\xbb\xbf" + csv_file(ROWS_2027), "2027.csv"),  # UTF-8 with BOM (Excel)
        (csv_file(ROWS_2027, "gb18030"), "2027年节假日.csv"),  # Excel on Chinese Windows
        (xlsx_file(ROWS_2027), "2027.xlsx"),
    ],
    ids=["utf8", "utf8-bom", "gb18030", "xlsx"],
)
def test_good_file_is_imported(db: Session, seeded: int, content: bytes, filename: str) -> None:
    result = run(db, content, filename)
    db.commit()
    assert (result.year, result.holidays, result.workdays) == (2027, HOLIDAYS_2027, WORKDAYS_2027)
    assert result.replaced == 0 and result.neighbours == []
    stored = days_of(db, 2027)
    assert len(stored) == len(ROWS_2027)
    assert stored["2027-02-06"] == ("holiday", "春节")
    assert stored["2027-09-26"] == ("workday", "国庆节")
    assert len(days_of(db, 2026)) == seeded, "other years are untouched"
    row = CalendarService(db).year_days(2027)[0]
    assert row.source == f"导入：{filename}" and row.updated_by == "admin"
    assert row.updated_at == NOW
    calendar = CalendarService(db).work_calendar(2027)
    assert calendar.is_holiday(date(2027, 10, 4)) and calendar.is_rest_day(date(2027, 2, 6))
    assert not calendar.is_rest_day(date(2027, 10, 9))  # a Saturday worked
    assert calendar.is_rest_day(date(2027, 3, 6))  # a plain Saturday
    assert "已导入 2027 年节假日安排" in result.summary_lines()[0]


def test_xlsx_date_cells_and_other_spellings(db: Session) -> None:
    rows: list[list[object]] = [
        [datetime(2027, 1, 1), "节假日", "元旦"],
        ["2027/1/2", "放假", "元旦"],
        ["2027年1月3日", "holiday", "元旦"],
        [20270109, "补班", "元旦"],
    ]
    result = run(db, xlsx_file(rows), "2027.xlsx")
    assert (result.holidays, result.workdays) == (3, 1)
    assert days_of(db, 2027)["2027-01-09"] == ("workday", "元旦")


def test_import_replaces_the_year(db: Session, seeded: int) -> None:
    assert seeded > 0
    run(db, csv_file(ROWS_2027))
    result = run(db, csv_file([["2026-10-01", "节假日", "国庆节"]]), "fix.csv")
    db.commit()
    assert result.year == 2026 and result.replaced == seeded
    assert days_of(db, 2026) == {"2026-10-01": ("holiday", "国庆节")}
    assert len(days_of(db, 2027)) == len(ROWS_2027), "only the file's year is replaced"
    # Importing the same year again replaces it again, not adds to it.
    again = run(db, csv_file(ROWS_2027[:5]))
    assert again.replaced == len(ROWS_2027) and len(days_of(db, 2027)) == 5


def test_days_of_the_neighbouring_year_are_added_not_replaced(db: Session, seeded: int) -> None:
    rows = [
        ["2026-12-31", "节假日", "元旦"],  # a notice for 2027 reaching back into 2026
        ["2026-12-26", "调休上班", "元旦"],
        *ROWS_2027,
    ]
    result = run(db, csv_file(rows))
    db.commit()
    assert result.year == 2027
    assert result.neighbours == [date(2026, 12, 26), date(2026, 12, 31)]
    stored = days_of(db, 2026)
    assert len(stored) == seeded + 2
    assert stored["2026-12-31"] == ("holiday", "元旦")
    assert "相邻年份" in result.summary_lines()[1]
    # The same day of the same kind again: updated, no conflict.
    run(db, csv_file([["2026-12-31", "节假日", "元旦节"], *ROWS_2027]))
    assert days_of(db, 2026)["2026-12-31"] == ("holiday", "元旦节")


# --- bad rows ---------------------------------------------------------------------------
GOOD = ["2027-01-01", "节假日", "元旦"]


@pytest.mark.parametrize(
    ("bad_rows", "row", "column", "words"),
    [
        ([["2027-02-30", "节假日", "春节"]], 3, "日期", "无法识别"),
        ([["明年元旦", "节假日", "元旦"]], 3, "日期", "应为 YYYY-MM-DD"),
        ([["", "节假日", "元旦"]], 3, "日期", "请填写日期"),
        ([["2027-01-02", "休息", "元旦"]], 3, "类型", "未知的类型“休息”"),
        ([["2027-01-02", "", "元旦"]], 3, "类型", "请填写类型"),
        ([["2027-01-02", "节假日", ""]], 3, "名称", "请填写名称"),
        ([["2027-01-02", "节假日", "长" * 33]], 3, "名称", "不能超过 32"),
        ([["2027-01-01", "节假日", "元旦节"]], 3, "日期", "与第 2 行重复"),
        ([["2027-02-03", "调休上班", "春节"]], 3, "类型", "星期三，调休上班日只能是星期六或星期日"),
        (
            [["2027-01-02", "节假日", "元旦"], ["2029-05-01", "节假日", "劳动节"]],
            4,
            "日期",
            "不属于 2027 年",
        ),
        ([["2027-01-02", "节假日", "元旦"], ["1999-01-01", "节假日", "元旦"]], 4, "日期", "年份"),
    ],
    ids=[
        "bad-date",
        "not-a-date",
        "no-date",
        "unknown-kind",
        "no-kind",
        "no-name",
        "long-name",
        "duplicate-date",
        "workday-not-weekend",
        "far-year",
        "year-range",
    ],
)
def test_each_bad_row_is_named_and_nothing_is_written(
    db: Session, seeded: int, bad_rows: list[list[str]], row: int, column: str, words: str
) -> None:
    run(db, csv_file(ROWS_2027[:3]))  # 2027 has days that a bad import must not touch
    db.commit()
    details = rejected(db, csv_file([GOOD, *bad_rows]))
    assert [(d.row, d.column) for d in details] == [(row, column)], details
    assert words in details[0].reason


def test_conflict_with_a_day_entered_in_the_neighbouring_year(db: Session, seeded: int) -> None:
    CalendarService(db).set_day(
        ADMIN_SCOPE, {"day": "2026-12-26", "kind": "workday", "name": "元旦"}, "admin", NOW
    )
    db.commit()
    details = rejected(db, csv_file([["2026-12-26", "节假日", "元旦"], *ROWS_2027]))
    assert [(d.row, d.column) for d in details] == [(2, "类型")]
    assert "已登记为调休上班（元旦），与本行冲突" in details[0].reason
    assert days_of(db, 2026)["2026-12-26"] == ("workday", "元旦")


def test_every_bad_row_is_reported_at_once(db: Session, seeded: int) -> None:
    rows = [
        ["2027-13-01", "节假日", ""],
        ["2027-02-03", "调休上班", "春节"],
        ["2027-01-01", "节假日", "元旦"],
        ["2027-01-01", "节假日", "元旦"],
    ]
    with pytest.raises(InvalidInput) as caught:
        run(db, csv_file(rows))
    where = [(d.row, d.column) for d in caught.value.details]
    assert where == [(2, "日期"), (2, "名称"), (3, "类型"), (5, "日期")]
    assert caught.value.message == "节假日安排文件有 3 行错误，未写入任何数据"
    assert "第 2 行 [日期]" in str(caught.value)


def test_file_level_problems(db: Session, seeded: int) -> None:
    missing = rejected(db, "日期,名称\r\n2027-01-01,元旦\r\n".encode())
    assert [d.column for d in missing] == ["类型"]
    with pytest.raises(InvalidInput, match="没有数据行"):
        run(db, "日期,类型,名称\r\n".encode())
    with pytest.raises(InvalidInput, match="文件为空"):
        run(db, b"")
    with pytest.raises(InvalidInput, match="文件中没有 2028 年的日期"):
        run(db, csv_file(ROWS_2027), year=2028)
    with pytest.raises(InvalidInput, match="2027 年和 2029 年的日期一样多，请指定年度"):
        run(db, csv_file([ROWS_2027[0], ["2029-05-01", "节假日", "劳动节"]]))
    with pytest.raises(InvalidInput, match="年份须在"):
        run(db, csv_file(ROWS_2027), year=1900)
    assert days_of(db, 2027) == {}


def test_explicit_year_wins_over_the_majority(db: Session, seeded: int) -> None:
    rows = [["2026-12-31", "节假日", "元旦"], ["2027-01-01", "节假日", "元旦"]]
    result = run(db, csv_file(rows), year=2026)
    assert result.year == 2026 and result.neighbours == [date(2027, 1, 1)]
    assert days_of(db, 2026) == {"2026-12-31": ("holiday", "元旦")}


@pytest.mark.parametrize("role", [Role.REGULATOR, Role.INSPECTOR, Role.ENTERPRISE_ADMIN])
def test_only_the_admin_imports(db: Session, seeded: int, role: Role) -> None:
    scope = Scope(role=role, user_id=7, area_path="310000/")
    with pytest.raises(PermissionDenied):
        CalendarService(db).import_file(scope, csv_file(ROWS_2027), "x.csv", "x", NOW)
    assert days_of(db, 2027) == {}


@pytest.mark.parametrize("suffix", ["xlsx", "csv"])
def test_export_imports_again_unchanged(db: Session, seeded: int, suffix: str) -> None:
    run(db, csv_file(ROWS_2027))
    service = CalendarService(db)
    content = service.export(2027, f"out.{suffix}")
    before = days_of(db, 2027)
    result = run(db, content, f"out.{suffix}")
    assert result.warnings == [] and result.replaced == len(before)
    assert days_of(db, 2027) == before
    everything = service.export(None, f"all.{suffix}")
    assert len(everything) > len(content)
    if suffix == "csv":
        text = content.decode("utf-8-sig").splitlines()
        assert text[0] == "日期,星期,类型,名称,来源"
        assert text[1] == "2027-01-01,星期五,节假日,元旦,导入：2027.csv"
    else:
        assert service.export(2026, "x.xlsx") != content
    seeded_rows = service.year_days(2026)
    assert all(r.source == SEED_SOURCE for r in seeded_rows)
