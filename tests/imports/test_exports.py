"""Exports: the register in the template layout (and back in again) and the
monthly basic-information table, each limited to the user's area."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from tests.factories import NOW, TODAY, World
from tests.imports.conftest import HEADERS, count, sheet_rows
from weldguard.auth.scope import Scope
from weldguard.enterprise.importer import import_enterprises
from weldguard.enterprise.models import Enterprise
from weldguard.errors import PermissionDenied
from weldguard.report.exports import MONTHLY_HEADERS, export_enterprises, export_monthly_basic_info

ScopeOf = Callable[[str], Scope]


def names(world: World, *keys: str) -> set[str]:
    return {world.enterprises[k].name for k in keys}


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("admin", "ABCZ"),
        ("reg_changning", "ABC"),
        ("reg_changning_zj", "B"),  # 住建 sees construction sites only
        ("reg_huayang", "A"),
        ("reg_zhengzhou", "Z"),
        ("insp_xinjing", "B"),
        ("ent_a", "A"),
        ("safety_b", "B"),
    ],
)
def test_register_export_is_scoped(
    db: Session, world: World, scope_of: ScopeOf, username: str, expected: str
) -> None:
    rows = sheet_rows(export_enterprises(db, scope_of(username)))
    assert list(rows[0]) == HEADERS
    assert {r[1] for r in rows[1:]} == names(world, *expected)
    assert [r[0] for r in rows[1:]] == list(range(1, len(expected) + 1))


def test_register_export_layout(db: Session, world: World, scope_of: ScopeOf) -> None:
    content = export_enterprises(db, scope_of("admin"))
    ws = load_workbook(io.BytesIO(content)).worksheets[0]
    assert ws.title == "企业底数"
    assert ws.freeze_panes == "A2"
    assert ws["A1"].font.bold
    assert ws.column_dimensions["B"].width >= 30
    rows = sheet_rows(content)
    c = next(r for r in rows if r[1] == world.enterprises["C"].name)
    assert c[2:9] == (
        world.enterprises["C"].credit_code,
        "人员密集场所",
        "上海市",
        "长宁区",
        "虹桥街道",
        "长宁区虹桥街道测试路3号",
        "商场（市场）",
    )
    assert c[12:] == ("在产", "是", "否", 3, 2)
    z = next(r for r in rows if r[1] == world.enterprises["Z"].name)
    assert z[4:7] == ("郑州市", "中原区", None)


def test_register_export_of_a_subtree(db: Session, world: World, scope_of: ScopeOf) -> None:
    xinjing = world.places["310105102"].path
    rows = sheet_rows(export_enterprises(db, scope_of("reg_changning"), xinjing))
    assert {r[1] for r in rows[1:]} == names(world, "B")
    # A subtree outside the scope gives nothing, not the subtree.
    zhengzhou = world.places["410100"].path
    assert sheet_rows(export_enterprises(db, scope_of("reg_changning"), zhengzhou))[1:] == []


def test_welders_may_not_export(db: Session, world: World, scope_of: ScopeOf) -> None:
    with pytest.raises(PermissionDenied):
        export_enterprises(db, scope_of("welder_one"))
    with pytest.raises(PermissionDenied):
        export_monthly_basic_info(db, scope_of("welder_one"), TODAY, None, TODAY)


@pytest.mark.parametrize("username", ["admin", "reg_huayang"])
def test_export_reimports_unchanged(
    db: Session, world: World, scope_of: ScopeOf, username: str
) -> None:
    scope = scope_of(username)
    first = export_enterprises(db, scope)
    report = import_enterprises(db, scope, first, "导出.xlsx", partial=False, user_id=None, now=NOW)
    db.commit()
    assert report.error_count == 0, report.summary_lines()
    assert report.updated == len(sheet_rows(first)) - 1 and report.created == 0
    assert count(db, Enterprise) == 4
    db.expire_all()
    assert sheet_rows(export_enterprises(db, scope)) == sheet_rows(first)


def test_edited_export_updates_the_register(db: Session, world: World, scope_of: ScopeOf) -> None:
    scope = scope_of("reg_changning")
    wb = load_workbook(io.BytesIO(export_enterprises(db, scope)))
    ws = wb.worksheets[0]
    for row in ws.iter_rows(min_row=2):
        row[15].value = 9  # 电焊设备数量
    buffer = io.BytesIO()
    wb.save(buffer)
    report = import_enterprises(
        db, scope, buffer.getvalue(), "改.xlsx", partial=False, user_id=None, now=NOW
    )
    db.commit()
    assert report.updated == 3 and report.error_count == 0
    db.expire_all()
    assert {e.declared_machine_count for e in db.query(Enterprise)} == {9, 3}


# --- monthly basic information ------------------------------------------------------


def test_monthly_table(db: Session, world: World, scope_of: ScopeOf) -> None:
    content = export_monthly_basic_info(
        db, scope_of("reg_changning"), date(2026, 11, 5), None, TODAY
    )
    ws = load_workbook(io.BytesIO(content)).worksheets[0]
    assert ws["A1"].value == "电气焊作业基础信息表（2026年11月）"
    assert "A1:O1" in {str(r) for r in ws.merged_cells.ranges}
    assert ws.freeze_panes == "A3"
    rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
    assert list(rows[1]) == [h for h, _ in MONTHLY_HEADERS]
    data = {r[3]: r for r in rows[2:5]}
    assert set(data) == names(world, "A", "B", "C")
    a = data[world.enterprises["A"].name]
    assert a[:7] == (
        1,
        "长宁区",
        "华阳路街道",
        world.enterprises["A"].name,
        world.enterprises["A"].credit_code,
        "工贸",
        None,
    )
    # 1 machine, fitted, registered this month; 1 welder with a valid certificate.
    assert a[7:] == (1, 1, 1.0, 1, 1, 1, 0, "021-62512345")
    b = data[world.enterprises["B"].name]
    assert b[7:14] == (1, 0, 0.0, 1, 1, 1, 0)
    totals = rows[5]
    assert totals[0] == "合计"
    assert totals[7:9] == (3, 1)
    assert totals[9] == pytest.approx(1 / 3)
    assert totals[10:14] == (3, 3, 3, 0)
    assert ws.cell(row=6, column=10).number_format == "0.0%"


def test_monthly_table_for_an_earlier_month_and_a_street(
    db: Session, world: World, scope_of: ScopeOf
) -> None:
    content = export_monthly_basic_info(db, scope_of("reg_huayang"), date(2026, 10, 1), None, TODAY)
    rows = sheet_rows(content)
    assert rows[0][0] == "电气焊作业基础信息表（2026年10月）"
    assert [r[3] for r in rows[2:3]] == [world.enterprises["A"].name]
    assert rows[2][10] == 0  # nothing registered in October
    assert rows[3][0] == "合计"


def test_monthly_counts_expiring_certificates(db: Session, world: World, scope_of: ScopeOf) -> None:
    # Welder A's certificate was issued 400 days before TODAY: review due after
    # 3 years. Seen from 20 days before the review date it is expiring.
    from weldguard.welder.repository import WelderRepository

    cert = WelderRepository(db).certificates_of(world.welders["A"].id)[0]
    assert cert.review_due_date is not None
    seen = cert.review_due_date.replace(day=1)
    content = export_monthly_basic_info(
        db, scope_of("reg_huayang"), seen, None, cert.review_due_date
    )
    a = sheet_rows(content)[2]
    assert a[12:14] == (1, 1)
