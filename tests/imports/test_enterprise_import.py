"""Importing the enterprise register: header handling, every kind of bad input,
all-or-nothing versus partial, updates, scope, and the stored report."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import ADMIN_SCOPE, NOW, World, credit_code
from tests.imports.conftest import (
    FIXTURES,
    HEADERS,
    count,
    record,
    register_rows,
    register_xlsx,
    sheet_rows,
    xlsx,
)
from weldguard.auth.scope import Scope
from weldguard.enterprise.importer import import_enterprises
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.service import OUTSIDE_AREA, OUTSIDE_SECTORS, REGISTERED_ELSEWHERE
from weldguard.errors import InvalidInput, PermissionDenied
from weldguard.report import imports
from weldguard.report.imports import ImportReport
from weldguard.report.models import ImportRun

ScopeOf = Callable[[str], Scope]


def run(
    db: Session, content: bytes, scope: Scope = ADMIN_SCOPE, partial: bool = False, **kw: Any
) -> ImportReport:
    report = import_enterprises(
        db, scope, content, kw.pop("filename", "企业.xlsx"), partial=partial, user_id=None, now=NOW
    )
    db.commit()
    return report


def by_code(db: Session, code: str) -> Enterprise | None:
    return db.scalars(select(Enterprise).where(Enterprise.credit_code == code)).one_or_none()


def only_error(report: ImportReport) -> tuple[int | None, str | None, str]:
    assert len(report.errors) == 1, report.summary_lines()
    e = report.errors[0]
    return e.row, e.column, e.reason


NEW = [
    record(101, "华阳焊接一厂"),
    record(102, "新泾钢构二厂", street="新泾镇", sector="施工工地"),
    record(103, "虹桥医院", street="虹桥街道", sector="人员密集场所", crowded_subtype="医院"),
    record(104, "郑州焊材厂", district="中原区", street="", city="郑州市"),
]


# --- happy paths --------------------------------------------------------------


def test_happy_path_in_shuffled_column_order(db: Session, world: World) -> None:
    headers = [*HEADERS, "备注"]
    random.Random(7).shuffle(headers)
    report = run(db, register_xlsx(NEW, headers))

    assert (report.created, report.updated, report.error_count) == (4, 0, 0)
    assert report.applied and report.status == "applied"
    assert report.warnings == ["已忽略无法识别的列：备注"]
    assert report.summary_lines()[0] == "共 4 行：新增 4，更新 0，错误 0；已全部写入"
    assert count(db, Enterprise) == 8
    hospital = by_code(db, credit_code(103))
    assert hospital is not None
    assert (hospital.sector, hospital.crowded_subtype) == ("人员密集场所", "医院")
    assert hospital.area_path == world.places["310105009"].path
    zhengzhou = by_code(db, credit_code(104))
    assert zhengzhou is not None and zhengzhou.area_path == world.places["410102"].path
    assert zhengzhou.declared_machine_count == 3 and zhengzhou.contact_phone == "021-62512345"


def test_blank_title_and_trailing_rows_are_ignored(db: Session, world: World) -> None:
    rows = register_rows(NEW[:2])
    empty = [None] * len(HEADERS)
    numbered_only = [9, *[None] * (len(HEADERS) - 1)]  # pre-numbered template rows
    content = xlsx(
        [
            ["涉焊企业导入模板"],  # row 1: title
            empty,  # row 2
            rows[0],  # row 3: header
            rows[1],  # row 4
            empty,  # row 5
            ["   ", *[""] * (len(HEADERS) - 1)],  # row 6: only spaces
            rows[2],  # row 7
            numbered_only,  # row 8
            empty,
            empty,
        ]
    )
    report = run(db, content)
    assert [r.row for r in report.rows] == [4, 7]
    assert report.created == 2 and report.error_count == 0


def test_header_matching_ignores_spaces_width_and_required_marks(db: Session, world: World) -> None:
    headers = [h.replace("（", "(").replace("）", ")").replace("：", ":") for h in HEADERS]
    headers[1] = "*企业名称"
    headers[2] = " 统一社会\n信用代码 "
    report = run(db, register_xlsx(NEW[:1], headers))
    assert report.created == 1 and report.error_count == 0


def test_existing_enterprise_is_updated_and_reported(db: Session, world: World) -> None:
    a = world.enterprises["A"]
    changed = record(1, "长宁华阳机电维修有限公司（新名）", address="华阳路 1 号")
    report = run(db, register_xlsx([changed, NEW[0]]))

    assert [(r.key, r.action) for r in report.rows] == [
        (a.credit_code, "updated"),
        (credit_code(101), "created"),
    ]
    assert report.summary_lines()[0] == "共 2 行：新增 1，更新 1，错误 0；已全部写入"
    db.expire_all()
    fresh = by_code(db, a.credit_code)
    assert fresh is not None and fresh.id == a.id
    assert (fresh.name, fresh.address) == ("长宁华阳机电维修有限公司（新名）", "华阳路 1 号")
    assert count(db, Enterprise) == 5


def test_reimporting_unchanged_rows_touches_nothing(db: Session, world: World) -> None:
    a = world.enterprises["A"]
    before = a.updated_at
    report = run(db, register_xlsx([record(1, a.name)]))
    assert report.updated == 1
    db.expire_all()
    fresh = by_code(db, a.credit_code)
    assert fresh is not None and fresh.updated_at == before


def test_half_width_crowded_subtype_is_accepted(db: Session, world: World) -> None:
    rec = record(
        105, "天山商场", street="天山路街道", sector="人员密集场所", crowded_subtype="商场(市场)"
    )
    report = run(db, register_xlsx([rec]))
    assert report.error_count == 0
    stored = by_code(db, credit_code(105))
    assert stored is not None and stored.crowded_subtype == "商场（市场）"


# --- file-level problems ------------------------------------------------------


def expect_file_error(db: Session, content: bytes, fragment: str, filename: str = "x.xlsx") -> None:
    before = count(db, Enterprise)
    with pytest.raises(InvalidInput) as caught:
        run(db, content, filename=filename)
    assert fragment in caught.value.message, caught.value.message
    db.rollback()
    assert count(db, Enterprise) == before
    assert count(db, ImportRun) == 0


def test_text_file_named_xlsx(db: Session, world: World) -> None:
    content = (FIXTURES / "not_a_workbook.xlsx").read_bytes()
    expect_file_error(db, content, "文件不是有效的 xlsx 工作簿")


def test_truncated_workbook(db: Session, world: World) -> None:
    content = (FIXTURES / "truncated.xlsx").read_bytes()
    expect_file_error(db, content, "文件已损坏或不完整")


def test_legacy_xls_file(db: Session, world: World) -> None:
    content = (FIXTURES / "legacy.xls").read_bytes()
    expect_file_error(db, content, "另存为 .xlsx", filename="x.xls")


def test_empty_file(db: Session, world: World) -> None:
    expect_file_error(db, b"", "文件为空")


def test_zip_that_is_not_a_workbook(db: Session, world: World) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    expect_file_error(db, buffer.getvalue(), "缺少工作簿结构")


def _rewrite(content: bytes, part: str, text: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in source.infolist():
            data = text.encode() if info.filename == part else source.read(info)
            archive.writestr(info.filename, data)
    return buffer.getvalue()


def test_workbook_without_worksheets(db: Session, world: World) -> None:
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    content = _rewrite(
        register_xlsx(NEW), "xl/workbook.xml", f'<workbook xmlns="{main}"><sheets/></workbook>'
    )
    expect_file_error(db, content, "工作簿中没有工作表")


def test_corrupt_sheet_xml(db: Session, world: World) -> None:
    content = _rewrite(
        register_xlsx(NEW), "xl/worksheets/sheet1.xml", "<worksheet><sheetData><row>"
    )
    expect_file_error(db, content, "工作表内容无法解析")


def test_missing_header(db: Session, world: World) -> None:
    headers = [h for h in HEADERS if h != "统一社会信用代码"]
    expect_file_error(db, register_xlsx(NEW, headers), "缺少表头：统一社会信用代码")


def test_renamed_header(db: Session, world: World) -> None:
    headers = ["信用代码" if h == "统一社会信用代码" else h for h in HEADERS]
    with pytest.raises(InvalidInput) as caught:
        run(db, register_xlsx(NEW, headers))
    message = caught.value.message
    assert message.startswith("缺少表头：统一社会信用代码")
    assert "无法识别的列：信用代码" in message
    assert caught.value.details[0].row == 1


def test_no_header_at_all(db: Session, world: World) -> None:
    rows = register_rows(NEW)[1:]
    expect_file_error(db, xlsx(rows), "找不到表头")


def test_duplicate_header(db: Session, world: World) -> None:
    headers = [*HEADERS, "企业名称"]
    expect_file_error(db, register_xlsx(NEW, headers), "表头重复：“企业名称”")


def test_header_in_second_sheet_after_instructions(db: Session, world: World) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    notes = wb.active
    assert notes is not None
    notes.title = "填写说明"
    notes.append(["请按模板填写，企业名称必填"])
    data = wb.create_sheet("企业底数")
    for row in register_rows(NEW[:1]):
        data.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    report = run(db, buffer.getvalue())
    assert report.created == 1


def test_file_too_big(db: Session, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    content = register_xlsx(NEW)
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", len(content) - 1)
    expect_file_error(db, content, "文件过大")


def test_too_many_rows(db: Session, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    expect_file_error(db, register_xlsx(NEW), "数据超过 3 行")


# --- bad rows: nothing is written ---------------------------------------------


def expect_row_error(
    db: Session, records: list[dict[str, Any]], row: int, column: str, reason: str
) -> ImportReport:
    before = count(db, Enterprise)
    report = run(db, register_xlsx(records))
    assert not report.applied and report.status == "rejected"
    bad = [e for e in report.errors if e.row == row and e.column == column]
    assert bad, report.summary_lines()
    assert reason in bad[0].reason, bad[0].reason
    assert count(db, Enterprise) == before
    good = [r for r in report.rows if r.action != "error"]
    assert all(r.action == "skipped" for r in good)
    return report


def test_bad_credit_code(db: Session, world: World) -> None:
    bad = record(106, "校验位错误厂")
    code = str(bad["credit_code"])
    bad["credit_code"] = code[:-1] + ("0" if code[-1] != "0" else "1")
    report = expect_row_error(db, [NEW[0], bad], 3, "统一社会信用代码", "校验位错误")
    assert len(report.errors) == 1


def test_credit_code_of_wrong_length(db: Session, world: World) -> None:
    bad = record(106, "短码厂", credit_code="91310105MA1FL")
    expect_row_error(db, [bad], 2, "统一社会信用代码", "应为 18 位")


def test_unknown_district(db: Session, world: World) -> None:
    bad = record(106, "错区厂", district="静安区")
    expect_row_error(db, [NEW[0], bad], 3, "所属区县", "上海市下没有区县“静安区”")


def test_unknown_street(db: Session, world: World) -> None:
    bad = record(106, "错街厂", street="南京西路街道")
    expect_row_error(db, [bad, NEW[0]], 2, "所属镇街", "长宁区下没有镇街“南京西路街道”")


def test_unknown_city(db: Session, world: World) -> None:
    bad = record(106, "错市厂", city="杭州市")
    expect_row_error(db, [bad], 2, "所属地市", "未知的地市“杭州市”")


def test_duplicate_credit_code_in_file(db: Session, world: World) -> None:
    twin = record(101, "同码另一厂", street="江苏路街道")
    report = expect_row_error(db, [NEW[0], NEW[1], twin], 2, "统一社会信用代码", "与第 4 行相同")
    other = [e for e in report.errors if e.row == 4]
    assert other and "与第 2 行相同" in other[0].reason
    assert report.error_count == 2


def test_count_is_not_a_number(db: Session, world: World) -> None:
    bad = record(106, "文字数量厂", declared_machine_count="三台")
    expect_row_error(db, [bad], 2, "电焊设备数量（单位：台）", "不是整数：“三台”")


def test_count_is_a_fraction(db: Session, world: World) -> None:
    bad = record(106, "小数厂", declared_welder_count=2.5)
    expect_row_error(db, [bad], 2, "特种作业人员数量（单位：人）", "不是整数")


def test_yes_no_is_wrong(db: Session, world: World) -> None:
    bad = record(106, "是否厂", mobile_work="有时")
    expect_row_error(db, [bad], 2, "是否流动作业", "应填“是”或“否”")


def test_over_long_text(db: Session, world: World) -> None:
    bad = record(106, "长" * 129)
    expect_row_error(db, [bad], 2, "企业名称", "超过 128 个字符（129）")


def test_unknown_sector(db: Session, world: World) -> None:
    bad = record(106, "未知类型厂", sector="农业")
    expect_row_error(db, [bad], 2, "企业类型", "未知的企业类型“农业”")


def test_missing_required_value(db: Session, world: World) -> None:
    bad = record(106, "")
    expect_row_error(db, [bad], 2, "企业名称", "不能为空")


def test_every_bad_row_is_reported(db: Session, world: World) -> None:
    rows = [
        NEW[0],
        record(106, "错区厂", district="静安区"),
        record(107, "长" * 200, declared_machine_count="x"),
        NEW[1],
    ]
    report = run(db, register_xlsx(rows))
    assert {(e.row, e.column) for e in report.errors} == {
        (3, "所属区县"),
        (4, "企业名称"),
        (4, "电焊设备数量（单位：台）"),
    }
    lines = report.summary_lines()
    assert lines[0] == "共 4 行：新增 2，更新 0，错误 2；未写入任何数据（全部或全不）"
    assert any(line.startswith("第 3 行［所属区县］") for line in lines)
    assert count(db, Enterprise) == 4


# --- partial mode ------------------------------------------------------------


def test_partial_writes_only_good_rows(db: Session, world: World) -> None:
    rows = [NEW[0], record(106, "错区厂", district="静安区"), NEW[1]]
    report = run(db, register_xlsx(rows), partial=True)
    assert report.applied and report.status == "partial"
    assert [r.action for r in report.rows] == ["created", "error", "created"]
    assert (
        report.summary_lines()[0]
        == "共 3 行：新增 2，更新 0，错误 1；已写入正确的行，错误的行未写入"
    )
    assert count(db, Enterprise) == 6
    assert by_code(db, credit_code(106)) is None


def test_partial_leaves_both_duplicates_out(db: Session, world: World) -> None:
    rows = [NEW[0], record(101, "同码另一厂"), NEW[1]]
    report = run(db, register_xlsx(rows), partial=True)
    assert [r.action for r in report.rows] == ["error", "error", "created"]
    assert count(db, Enterprise) == 5


# --- scope ----------------------------------------------------------------------


def test_regulator_cannot_import_outside_their_street(
    db: Session, world: World, scope_of: ScopeOf
) -> None:
    huayang = scope_of("reg_huayang")
    rows = [record(101, "华阳新厂"), record(102, "新泾新厂", street="新泾镇")]
    report = run(db, register_xlsx(rows), scope=huayang)
    assert only_error(report) == (3, "所属镇街", OUTSIDE_AREA)
    assert count(db, Enterprise) == 4

    report = run(db, register_xlsx(rows), scope=huayang, partial=True)
    assert [r.action for r in report.rows] == ["created", "error"]
    assert by_code(db, credit_code(101)) is not None


def test_regulator_cannot_take_over_enterprise_of_another_area(
    db: Session, world: World, scope_of: ScopeOf
) -> None:
    b = world.enterprises["B"]  # 新泾镇
    moved = record(2, "新泾钢结构工程有限公司")  # same credit code, now in 华阳路
    report = run(db, register_xlsx([moved]), scope=scope_of("reg_huayang"))
    assert only_error(report) == (2, "统一社会信用代码", REGISTERED_ELSEWHERE)
    db.expire_all()
    fresh = by_code(db, b.credit_code)
    assert fresh is not None and fresh.area_path == b.area_path


def test_sector_limited_regulator(db: Session, world: World, scope_of: ScopeOf) -> None:
    housing = scope_of("reg_changning_zj")  # 住建: construction sites only
    rows = [record(101, "工地一", street="新泾镇", sector="施工工地"), record(102, "工厂一")]
    report = run(db, register_xlsx(rows), scope=housing)
    assert only_error(report) == (3, "企业类型", OUTSIDE_SECTORS)


@pytest.mark.parametrize("username", ["ent_a", "safety_b", "insp_xinjing", "welder_one"])
def test_non_register_roles_may_not_import(
    db: Session, world: World, scope_of: ScopeOf, username: str
) -> None:
    with pytest.raises(PermissionDenied):
        run(db, register_xlsx(NEW), scope=scope_of(username))


# --- the report -----------------------------------------------------------------


def test_report_workbook_lists_every_error(db: Session, world: World) -> None:
    rows = [NEW[0], record(106, "长" * 129, district="静安区")]
    report = run(db, register_xlsx(rows))
    lines = sheet_rows(report.to_xlsx(), "导入结果")
    assert lines[0] == ("行号", "统一社会信用代码", "企业名称", "结果", "列", "原因")
    assert lines[1][:4] == (2, credit_code(101), "华阳焊接一厂", "未写入")
    errors = [line for line in lines[1:] if line[3] == "错误"]
    assert {(line[0], line[4]) for line in errors} == {(3, "企业名称"), (3, "所属区县")}
    summary = sheet_rows(report.to_xlsx(), "汇总")
    assert summary[1][0] == "共 2 行：新增 1，更新 0，错误 1；未写入任何数据（全部或全不）"


def test_run_is_recorded_even_when_rejected(
    db: Session, world: World, user_id: Callable[[str], int]
) -> None:
    uid = user_id("admin")
    rows = [NEW[0], record(106, "错区厂", district="静安区")]
    report = import_enterprises(
        db, ADMIN_SCOPE, register_xlsx(rows), "底数.xlsx", partial=False, user_id=uid, now=NOW
    )
    db.commit()
    stored = db.get(ImportRun, report.run_id)
    assert stored is not None
    assert (stored.kind, stored.filename, stored.status, stored.user_id) == (
        "enterprises",
        "底数.xlsx",
        "rejected",
        uid,
    )
    assert (stored.created_count, stored.error_count) == (0, 1)
    assert stored.errors == [
        {
            "row": 3,
            "column": "所属区县",
            "reason": "上海市下没有区县“静安区”",
            "key": credit_code(106),
            "name": "错区厂",
        }
    ]
    again = imports.report_from_run(stored)
    assert [line[1:5] for line in sheet_rows(again.to_xlsx())[1:]] == [
        (credit_code(106), "错区厂", "错误", "所属区县")
    ]


def test_date_and_float_cells_are_read_sensibly(db: Session, world: World) -> None:
    rec = record(106, "数字厂", declared_machine_count=4.0, legal_rep_phone=13800138000)
    report = run(db, register_xlsx([rec]))
    assert report.error_count == 0
    stored = by_code(db, credit_code(106))
    assert stored is not None
    assert (stored.declared_machine_count, stored.legal_rep_phone) == (4, "13800138000")
