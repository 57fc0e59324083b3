"""Importing certificate feeds (CSV or xlsx) from the issuing authorities."""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import NOW, TODAY, World, id_number
from tests.imports.conftest import FIXTURES, count, counts, sheet_rows, xlsx
from weldguard.auth.scope import Scope
from weldguard.errors import InvalidInput, PermissionDenied
from weldguard.report.imports import ImportReport
from weldguard.welder.cert_import import import_certificates
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Certificate, Welder

ScopeOf = Callable[[str], Scope]
HEADER = [
    "姓名",
    "身份证号",
    "证书类型",
    "证书编号",
    "操作项目",
    "发证日期",
    "有效期至",
    "发证机关",
    "状态",
]
ID1, ID2, ID3 = id_number(31), id_number(32, "19900101"), id_number(33, "19781120")


def row(
    name: str,
    idn: str,
    *,
    kind: str = "特种作业操作证",
    number: str | None = None,
    item: str = "熔化焊接与热切割作业",
    issued: Any = "2024-03-15",
    expiry: Any = "",
    authority: str = "上海市应急管理局",
    status: str = "",
) -> list[Any]:
    return [
        name,
        idn,
        kind,
        number if number is not None else "T" + idn,
        item,
        issued,
        expiry,
        authority,
        status,
    ]


def csv_bytes(
    rows: Sequence[Sequence[Any]], header: Sequence[str] = HEADER, bom: bool = True
) -> bytes:
    lines = [",".join(header)] + [",".join(str(v) for v in r) for r in rows]
    text = "\r\n".join(lines) + "\r\n"
    return (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")


def run(
    db: Session,
    vault: IdentityVault,
    content: bytes,
    *,
    scope: Scope,
    filename: str = "证书.csv",
    source: str = "应急管理部门",
    partial: bool = False,
) -> ImportReport:
    report = import_certificates(
        db,
        scope,
        vault,
        content,
        filename,
        source=source,
        partial=partial,
        user_id=None,
        now=NOW,
        today=TODAY,
    )
    db.commit()
    return report


@pytest.fixture
def admin(scope_of: ScopeOf) -> Scope:
    return scope_of("admin")


def certificate_of(db: Session, vault: IdentityVault, kind: str, number: str) -> Certificate | None:
    number_hash = vault.lookup_hash(f"{kind}:{number}")
    return db.scalars(
        select(Certificate).where(Certificate.kind == kind, Certificate.number_hash == number_hash)
    ).one_or_none()


def assert_no_id_numbers(report: ImportReport, *numbers: str) -> None:
    text = "\n".join(report.summary_lines()) + repr(report.rows)
    workbook = "\n".join(str(line) for line in sheet_rows(report.to_xlsx()))
    for number in numbers:
        assert number not in text and number not in workbook
        assert number[6:14] not in workbook  # nor the birth date


# --- happy paths -----------------------------------------------------------------


def test_csv_with_bom_creates_welders_and_certificates(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    before = counts(db)
    content = csv_bytes(
        [
            row("王建国", ID1),
            row(
                "李秀英",
                ID2,
                kind="特种设备作业人员证",
                number="TS-2023-0001",
                item="金属焊接操作",
                issued="2023/06/01",
                expiry="2027/06/01",
                authority="上海市市场监督管理局",
            ),
        ]
    )
    report = run(db, vault, content, scope=admin, source="市场监管部门")
    assert (report.created, report.updated, report.error_count) == (2, 0, 0)
    assert counts(db) == (before[0], before[1] + 2, before[2] + 2)
    special = certificate_of(db, vault, "special_operation", "T" + ID1)
    assert special is not None
    assert (special.source, special.item, special.issue_date) == (
        "市场监管部门",
        "熔化焊接与热切割作业",
        date(2024, 3, 15),
    )
    assert special.expiry_date == date(2030, 3, 15)  # derived: 6 years
    assert special.review_due_date == date(2027, 3, 15)
    equipment = certificate_of(db, vault, "special_equipment", "TS-2023-0001")
    assert equipment is not None and equipment.expiry_date == date(2027, 6, 1)
    assert report.rows[0].key == ("T" + ID1)[:4] + "*" * 11 + ID1[-4:]
    assert_no_id_numbers(report, ID1, ID2)


def test_xlsx_with_date_cells_in_any_column_order(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    header = [
        "证书编号",
        "发证机关",
        "姓名",
        "操作项目",
        "发证日期",
        "身份证号",
        "证书类型",
        "手机号",
        "复审日期",
    ]
    content = xlsx(
        [
            header,
            [
                "T" + ID3,
                "郑州市应急管理局",
                "赵六",
                "钎焊作业",
                datetime(2022, 1, 10),
                ID3,
                "特种作业证",
                "13912345678",
                datetime(2025, 1, 10),
            ],
        ]
    )
    report = run(db, vault, content, scope=admin, filename="证书.xlsx")
    assert report.created == 1, report.summary_lines()
    cert = certificate_of(db, vault, "special_operation", "T" + ID3)
    assert cert is not None
    assert (cert.issue_date, cert.review_due_date) == (date(2022, 1, 10), date(2025, 1, 10))
    welder = db.get(Welder, cert.welder_id)
    assert welder is not None and (welder.name, welder.phone) == ("赵六", "13912345678")


def test_gb18030_csv_from_excel(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    content = (FIXTURES / "certificates_gb18030.csv").read_bytes()
    report = run(db, vault, content, scope=admin)
    assert (report.created, report.error_count) == (2, 0), report.summary_lines()
    assert [r.name for r in report.rows] == ["王建国", "李秀英"]
    cert = certificate_of(db, vault, "special_operation", "T" + id_number(22, "19900101"))
    assert cert is not None and cert.item == "钎焊作业" and cert.expiry_date == date(2029, 6, 1)


def test_existing_certificate_is_updated(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    holder = id_number(1)  # welder A of the world
    content = csv_bytes([row("焊工A", holder, issued="2025-10-18", authority="长宁区应急管理局")])
    before = counts(db)
    report = run(db, vault, content, scope=admin)
    assert [r.action for r in report.rows] == ["updated"]
    assert counts(db) == before
    cert = certificate_of(db, vault, "special_operation", "T" + holder)
    assert cert is not None and cert.issuing_authority == "长宁区应急管理局"
    assert cert.welder_id == world.welders["A"].id


def test_revoked_and_pending_status(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    content = csv_bytes([row("王建国", ID1, status="吊销"), row("李秀英", ID2, status="待核验")])
    report = run(db, vault, content, scope=admin)
    assert report.created == 2
    revoked = certificate_of(db, vault, "special_operation", "T" + ID1)
    pending = certificate_of(db, vault, "special_operation", "T" + ID2)
    assert revoked is not None and (revoked.revoked, revoked.verified) == (True, True)
    assert pending is not None and (pending.revoked, pending.verified) == (False, False)


# --- bad rows: nothing is written -----------------------------------------------------


def expect_error(
    db: Session,
    vault: IdentityVault,
    admin: Scope,
    rows: list[list[Any]],
    at: int,
    column: str,
    reason: str,
) -> ImportReport:
    before = counts(db)
    report = run(db, vault, csv_bytes(rows), scope=admin)
    assert not report.applied
    found = [e for e in report.errors if e.row == at and e.column == column]
    assert found, report.summary_lines()
    assert reason in found[0].reason, found[0].reason
    assert counts(db) == before
    return report


def test_bad_id_number(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    bad = ID2[:-1] + ("0" if ID2[-1] != "0" else "1")
    report = expect_error(
        db,
        vault,
        admin,
        [row("王建国", ID1), row("李秀英", bad, number="T" + ID2)],
        3,
        "身份证号",
        "校验",
    )
    assert_no_id_numbers(report, ID1, ID2, bad)


def test_person_is_not_the_holder(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    report = expect_error(
        db, vault, admin, [row("王建国", ID1, number="T" + ID2)], 2, "证书编号", "人证不符"
    )
    assert_no_id_numbers(report, ID1, ID2)


def test_number_registered_to_someone_else(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    someone = id_number(2)  # welder B holds "T" + this number
    content = [
        row("王建国", ID1, kind="建筑施工特种作业操作资格证", number="JZ-1", item="建筑焊工"),
        row("冒名者", ID2, kind="特种作业操作证", number="T" + someone),
    ]
    expect_error(db, vault, admin, content, 3, "证书编号", "人证不符")


def test_unknown_certificate_kind(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    expect_error(
        db,
        vault,
        admin,
        [row("王建国", ID1, kind="电工证")],
        2,
        "证书类型",
        "无法识别的证书类型“电工证”",
    )


def test_item_of_another_kind(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    expect_error(
        db,
        vault,
        admin,
        [row("王建国", ID1, item="金属焊接操作")],
        2,
        "操作项目",
        "不是特种作业操作证的准操项目",
    )


def test_duplicate_certificate_in_file(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    report = expect_error(
        db,
        vault,
        admin,
        [row("王建国", ID1), row("李秀英", ID2), row("王建国", ID1)],
        2,
        "证书编号",
        "与第 4 行相同",
    )
    assert {e.row for e in report.errors} == {2, 4}


def test_same_person_under_two_names(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    rows = [
        row("王建国", ID1),
        row("王建华", ID1, kind="建筑施工特种作业操作资格证", number="JZ-2", item="建筑焊工"),
    ]
    expect_error(db, vault, admin, rows, 3, "姓名", "第 2 行的姓名为“王建国”")


def test_unreadable_date(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    expect_error(
        db, vault, admin, [row("王建国", ID1, issued="去年三月")], 2, "发证日期", "日期无法识别"
    )


def test_expiry_before_issue(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    expect_error(
        db, vault, admin, [row("王建国", ID1, expiry="2020-01-01")], 2, "有效期至", "早于发证日期"
    )


def test_unknown_status(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    expect_error(
        db, vault, admin, [row("王建国", ID1, status="挂失")], 2, "状态", "未知的状态“挂失”"
    )


def test_over_long_authority(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    expect_error(
        db,
        vault,
        admin,
        [row("王建国", ID1, authority="局" * 129)],
        2,
        "发证机关",
        "超过 128 个字符",
    )


def test_id_number_stored_as_a_number_in_xlsx(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    digits = id_number(34)
    assert digits.isdigit()
    values = row("钱七", digits)
    values[1] = int(digits)
    content = xlsx([HEADER, values])
    before = counts(db)
    report = run(db, vault, content, scope=admin, filename="证书.xlsx")
    assert report.errors[0].column == "身份证号" and "存成了数字" in report.errors[0].reason
    assert counts(db) == before


def test_id_number_in_the_wrong_column_is_masked(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    report = run(db, vault, csv_bytes([row("王建国", ID1, kind=ID2)]), scope=admin)
    assert report.error_count == 1
    assert_no_id_numbers(report, ID2)


def test_partial_writes_good_rows(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    rows = [row("王建国", ID1), row("李秀英", ID2, kind="电工证"), row("赵六", ID3)]
    report = run(db, vault, csv_bytes(rows), scope=admin, partial=True)
    assert [r.action for r in report.rows] == ["created", "error", "created"]
    assert count(db, Certificate) == 4 + 2


# --- file and caller ----------------------------------------------------------------


def test_utf16_text_export(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    lines = ["\t".join(HEADER), "\t".join(str(v) for v in row("王建国", ID1))]
    content = ("\r\n".join(lines) + "\r\n").encode("utf-16")
    report = run(db, vault, content, scope=admin, filename="证书.txt")
    assert report.created == 1, report.summary_lines()


def test_missing_header(db: Session, world: World, vault: IdentityVault, admin: Scope) -> None:
    header = [h for h in HEADER if h != "身份证号"]
    with pytest.raises(InvalidInput, match="缺少表头：身份证号"):
        run(db, vault, csv_bytes([], header=header), scope=admin)


def test_not_a_csv_or_workbook(
    db: Session, world: World, vault: IdentityVault, admin: Scope
) -> None:
    with pytest.raises(InvalidInput, match="不是 CSV 文本文件"):
        run(db, vault, bytes(range(256)) * 4, scope=admin, filename="x.csv")
    with pytest.raises(InvalidInput, match="找不到表头"):
        run(db, vault, "随便写的一段话\n没有表头".encode(), scope=admin, filename="x.csv")
    with pytest.raises(InvalidInput, match="文件不是有效的 xlsx 工作簿"):
        run(
            db,
            vault,
            (FIXTURES / "not_a_workbook.xlsx").read_bytes(),
            scope=admin,
            filename="x.xlsx",
        )


@pytest.mark.parametrize("source", ["", "   ", "部" * 65])
def test_source_is_required_and_short(
    db: Session, world: World, vault: IdentityVault, admin: Scope, source: str
) -> None:
    with pytest.raises(InvalidInput, match="证书来源"):
        run(db, vault, csv_bytes([row("王建国", ID1)]), scope=admin, source=source)


@pytest.mark.parametrize("username", ["reg_changning", "ent_a", "insp_xinjing"])
def test_only_admins_import_certificates(
    db: Session, world: World, vault: IdentityVault, scope_of: ScopeOf, username: str
) -> None:
    with pytest.raises(PermissionDenied):
        run(db, vault, csv_bytes([row("王建国", ID1)]), scope=scope_of(username))


def test_nothing_personal_is_logged(
    db: Session, world: World, vault: IdentityVault, admin: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run(
        db,
        vault,
        csv_bytes([row("王建国", ID1), row("李秀英", ID2, number="T" + ID1)]),
        scope=admin,
    )
    assert ID1 not in caplog.text and ID2 not in caplog.text
