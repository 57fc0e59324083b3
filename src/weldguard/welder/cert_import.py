"""Importing certificate feeds from the issuing authorities (应急管理部门,
市场监管部门, 住建部门…): CSV or xlsx, one certificate per row.

Each row names a person (name, ID number) and a certificate. The person is
created when new; the certificate is created or updated (same kind and
number) and remembers the feed it came from. Every row is checked before
anything is written; by default one bad row means nothing is written.

ID numbers are personal data: no message, report or log line carries one.
Rows are named by their row number and the masked certificate number, and
every reason passes through ``_redact`` in case a cell held an ID number where
something else was expected.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from weldguard.auth.scope import Action, Scope
from weldguard.domain.certificates import CertificateKind, kind_from_label, validate_item
from weldguard.domain.ids import mask_id_number
from weldguard.enterprise.fields import cell_text
from weldguard.errors import ErrorDetail, InvalidInput
from weldguard.report.imports import Column, ImportReport, RowOutcome, read_table, record_run
from weldguard.report.repository import ImportRepository, prefer_custom_plans
from weldguard.welder.identity import IdentityVault, mask_certificate_number
from weldguard.welder.models import Welder
from weldguard.welder.repository import WelderRepository
from weldguard.welder.service import (
    CertificateInput,
    WelderInput,
    WelderService,
    validate_certificate,
    validate_welder,
)

CERTIFICATE_COLUMNS: tuple[Column, ...] = (
    Column("name", "姓名", aliases=("持证人姓名",)),
    Column("id_number", "身份证号", aliases=("身份证号码", "公民身份号码", "证件号码")),
    Column("kind", "证书类型", aliases=("证书种类", "证书名称")),
    Column("number", "证书编号", aliases=("证书号", "证号")),
    Column("item", "操作项目", aliases=("准操项目", "作业项目")),
    Column("issue_date", "发证日期", aliases=("初领日期", "取证日期")),
    Column("expiry_date", "有效期至", required=False, aliases=("有效期止", "有效期截止日期")),
    Column("review_due_date", "复审日期", required=False, aliases=("应复审日期",)),
    Column("issuing_authority", "发证机关", aliases=("发证单位",)),
    Column("status", "状态", required=False, aliases=("证书状态",)),
    Column("phone", "手机号", required=False, aliases=("手机号码",)),
)
# welder.service names fields as we name columns' keys: one map serves both.
HEADER = {c.key: c.header for c in CERTIFICATE_COLUMNS}

MAX_SOURCE = 64
MAX_AUTHORITY = 128  # Certificate.issuing_authority
MAX_NAME_SHOWN = 64

# (revoked, verified) by 状态; blank means a valid, verified certificate.
_STATUS: dict[str, tuple[bool, bool]] = {
    "有效": (False, True),
    "正常": (False, True),
    "吊销": (True, True),
    "已吊销": (True, True),
    "撤销": (True, True),
    "已撤销": (True, True),
    "注销": (True, True),
    "已注销": (True, True),
    "待核验": (False, False),
    "未核验": (False, False),
}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日")
_ID_LIKE = re.compile(r"\d{17}[\dXx]|\d{15}")


def _redact(text: str) -> str:
    return _ID_LIKE.sub(lambda m: mask_id_number(m.group(0)), text)


@dataclass
class _Row:
    number: int
    name: str
    masked_number: str
    errors: list[ErrorDetail] = field(default_factory=list)
    welder: WelderInput | None = None
    certificate: CertificateInput | None = None
    id_hash: str = ""
    number_hash: str = ""
    exists: bool = False  # the certificate is already registered

    def error(self, key: str, reason: str) -> None:
        self.errors.append(
            ErrorDetail(_redact(reason), field=key, row=self.number, column=HEADER.get(key))
        )


def import_certificates(
    session: Session,
    scope: Scope,
    vault: IdentityVault,
    content: bytes,
    filename: str,
    *,
    source: str,
    partial: bool,
    user_id: int | None,
    now: datetime,
    today: date,
) -> ImportReport:
    """Imports one authority's certificate file; flushes, the caller commits."""
    scope.require(Action.IMPORT_CERTIFICATES)
    source = _check_source(source)
    table = read_table(content, filename, CERTIFICATE_COLUMNS, allow_csv=True)
    rows = [_check_row(n, raw, source, today, vault) for n, raw in table.rows]
    _mark_duplicates(rows)
    _check_registry(session, rows)
    write = partial or not any(r.errors for r in rows)
    report = ImportReport(
        kind="certificates",
        filename=filename,
        partial=partial,
        applied=write,
        warnings=table.warnings,
    )
    if write:
        _write(session, vault, [r for r in rows if not r.errors], today)
    report.rows = [_outcome(r, write) for r in rows]
    record_run(session, report, user_id, now)
    return report


def _check_source(source: str) -> str:
    source = source.strip()
    if not source:
        raise InvalidInput("请填写证书来源（发证部门），例如：应急管理部门")
    if len(source) > MAX_SOURCE:
        raise InvalidInput(f"证书来源不能超过 {MAX_SOURCE} 个字符")
    return source


def _check_row(
    number: int, raw: dict[str, Any], source: str, today: date, vault: IdentityVault
) -> _Row:
    cert_number = "".join(unicodedata.normalize("NFKC", cell_text(raw, "number")).split()).upper()
    row = _Row(
        number=number,
        name=_redact(cell_text(raw, "name"))[:MAX_NAME_SHOWN],
        masked_number=mask_certificate_number(cert_number) if cert_number else "",
    )
    id_number = _check_person(row, raw, today)
    kind = _check_kind(row, raw)
    issue = _date(row, raw, "issue_date", required=True)
    expiry = _date(row, raw, "expiry_date")
    review = _date(row, raw, "review_due_date")
    if issue is not None and issue > today:
        row.error("issue_date", "发证日期晚于今天")
    if issue is not None and review is not None and review < issue:
        row.error("review_due_date", "复审日期早于发证日期")
    revoked, verified = _status(row, raw)
    authority = cell_text(raw, "issuing_authority")
    if len(authority) > MAX_AUTHORITY:
        row.error("issuing_authority", f"超过 {MAX_AUTHORITY} 个字符（{len(authority)}）")
    if kind is None or issue is None:
        return row
    item = cell_text(raw, "item")
    with contextlib.suppress(ValueError):  # validate_certificate names the problem
        item = validate_item(kind, item)
    certificate = CertificateInput(
        kind=kind.value,
        number=cert_number,
        item=item,
        issue_date=issue,
        expiry_date=expiry,
        issuing_authority=authority,
        source=source,
        review_due_date=review,
        revoked=revoked,
        verified=verified,
    )
    _, problems = validate_certificate(certificate, id_number or None)
    for problem in problems:
        row.error(problem.field or "number", problem.reason)
    if not row.errors:
        row.certificate = certificate
        row.number_hash = vault.lookup_hash(f"{kind.value}:{cert_number}")
        row.id_hash = vault.lookup_hash(id_number)
    return row


def _check_person(row: _Row, raw: dict[str, Any], today: date) -> str:
    """Validates name, ID number and phone; returns the normalized ID number
    (empty when invalid). The ID number itself never reaches a message."""
    if isinstance(raw.get("id_number"), int | float):
        row.error("id_number", "身份证号被存成了数字，末几位可能已丢失；请将该列设为文本后重新填写")
        return ""
    person = WelderInput(
        name=cell_text(raw, "name"),
        id_number=cell_text(raw, "id_number"),
        phone=cell_text(raw, "phone") or None,
    )
    welder, problems = validate_welder(person, today)
    for problem in problems:
        row.error(problem.field or "id_number", problem.reason)
    if any(p.field == "id_number" for p in problems):
        return ""
    row.welder = welder
    return welder.id_number


def _check_kind(row: _Row, raw: dict[str, Any]) -> CertificateKind | None:
    try:
        return kind_from_label(cell_text(raw, "kind"))
    except ValueError as exc:
        row.error("kind", str(exc))
        return None


def _date(row: _Row, raw: dict[str, Any], key: str, required: bool = False) -> date | None:
    value = raw.get(key)
    if value is None:
        if required:
            row.error(key, "不能为空")
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    # "2024-03-01 00:00:00" as exported by many systems: the time is noise.
    text = text.split(" ")[0].split("T")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007  calendar date, no zone
        except ValueError:
            continue
    row.error(key, "日期无法识别，应为 YYYY-MM-DD、YYYY/MM/DD 或 YYYYMMDD")
    return None


def _status(row: _Row, raw: dict[str, Any]) -> tuple[bool, bool]:
    text = cell_text(raw, "status")
    if not text:
        return False, True
    flags = _STATUS.get(text)
    if flags is None:
        row.error("status", f"未知的状态“{text}”，可选：有效、吊销、待核验")
        return False, True
    return flags


def _mark_duplicates(rows: list[_Row]) -> None:
    """The same certificate twice in the file: every copy is an error. The same
    ID number under two names: the later rows are errors."""
    by_number: dict[str, list[_Row]] = defaultdict(list)
    by_person: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.number_hash:
            by_number[row.number_hash].append(row)
            by_person[row.id_hash].append(row)
    for group in by_number.values():
        for row in group if len(group) > 1 else ():
            others = "、".join(str(o.number) for o in group if o is not row)
            row.error("number", f"证书在文件中重复（与第 {others} 行相同）")
    for group in by_person.values():
        first = group[0]
        assert first.welder is not None
        for row in group[1:]:
            assert row.welder is not None
            if row.welder.name != first.welder.name:
                row.error(
                    "name",
                    f"同一身份证号在第 {first.number} 行的姓名为“{first.welder.name}”，"
                    "与本行不一致",
                )


def _check_registry(session: Session, rows: list[_Row]) -> None:
    """A registered certificate number held by someone else is 人证不符."""
    candidates = [r for r in rows if r.number_hash and not r.errors]
    prefer_custom_plans(session)
    owners = ImportRepository(session).certificate_owners([r.number_hash for r in candidates])
    welders = WelderRepository(session).by_id_hashes(sorted({r.id_hash for r in candidates}))
    for row in candidates:
        assert row.certificate is not None
        owner = owners.get((row.certificate.kind, row.number_hash))
        if owner is None:
            continue
        row.exists = True
        holder: Welder | None = welders.get(row.id_hash)
        if holder is None or holder.id != owner:
            row.error("number", "该证书编号已登记在另一人名下（人证不符）")


def _write(session: Session, vault: IdentityVault, rows: list[_Row], today: date) -> None:
    service = WelderService(session, vault)
    for row in rows:
        assert row.welder is not None and row.certificate is not None
        welder = service.register(row.welder, today)
        service.upsert_certificate(welder, row.certificate, row.welder.id_number)


def _outcome(row: _Row, written: bool) -> RowOutcome:
    if row.errors:
        return RowOutcome(row.number, row.masked_number, row.name, "error", row.errors)
    action: Literal["created", "updated"] = "updated" if row.exists else "created"
    if written:
        return RowOutcome(row.number, row.masked_number, row.name, action)
    return RowOutcome(row.number, row.masked_number, row.name, "skipped", planned=action)
