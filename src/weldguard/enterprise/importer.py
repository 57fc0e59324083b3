"""Importing the enterprise register (企业底数) from the template spreadsheet.

Every row is checked before anything is written: field rules, places, duplicates
within the file, and the importing user's scope. By default one bad row means
nothing is written (全部或全不); ``partial=True`` writes the good rows. Either
way the outcome is recorded as an ImportRun.

Speed matters (10,000 rows well under 5 s): existing enterprises are fetched
in bulk, new ones go in with one multi-row INSERT, changed ones are flushed
together; there is no query per row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from weldguard.auth.scope import Action, Scope
from weldguard.domain.ids import InvalidIdentifier, normalize_credit_code
from weldguard.enterprise.fields import (
    HEADER_OF,
    TEMPLATE_COLUMNS,
    EnterpriseData,
    PlaceResolver,
    apply,
    validate_enterprise,
)
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.enterprise.service import upsert_problem
from weldguard.errors import ErrorDetail
from weldguard.jurisdiction.service import CROWDED_SUBTYPES, SECTORS
from weldguard.report.imports import (
    Column,
    ImportReport,
    RowOutcome,
    Table,
    normalize_header,
    read_table,
    record_run,
    with_row,
)
from weldguard.report.repository import ImportRepository, prefer_custom_plans

# Spellings seen in districts' own copies of the template.
_ALIASES: dict[str, tuple[str, ...]] = {
    "row_number": ("序 号", "编号"),
    "legal_rep_phone": ("法人联系电话", "法人电话"),
    "declared_machine_count": ("电焊设备数量（台）", "电焊设备数量"),
    "declared_welder_count": ("特种作业人员数量（人）", "特种作业人员数量"),
}

ENTERPRISE_COLUMNS: tuple[Column, ...] = tuple(
    Column(
        key,
        header,
        # 序号 is a convenience for people; templates often come pre-numbered.
        required=key != "row_number",
        significant=key != "row_number",
        aliases=_ALIASES.get(key, ()),
    )
    for key, header in TEMPLATE_COLUMNS
)

# 商场(市场) typed with half-width parentheses is still 商场（市场）.
_CHOICES = {normalize_header(c): c for c in (*SECTORS, *CROWDED_SUBTYPES)}


@dataclass
class _Row:
    number: int
    raw: dict[str, Any]
    code: str | None  # normalized credit code, when it is a valid one
    data: EnterpriseData | None = None
    errors: list[ErrorDetail] = field(default_factory=list)
    existing: Enterprise | None = None


def import_enterprises(
    session: Session,
    scope: Scope,
    content: bytes,
    filename: str,
    *,
    partial: bool,
    user_id: int | None,
    now: datetime,
) -> ImportReport:
    """Imports the register; flushes, the caller commits. Raises InvalidInput
    for a file that cannot be read at all, PermissionDenied for a user who may
    not manage the register."""
    scope.require(Action.MANAGE_REGISTER)
    table = read_table(content, filename, ENTERPRISE_COLUMNS)
    rows = _validate(session, table)
    _mark_duplicates(rows)
    _check_register(session, scope, rows)
    write = partial or not any(r.errors for r in rows)
    report = ImportReport(
        kind="enterprises",
        filename=filename,
        partial=partial,
        applied=write,
        warnings=table.warnings,
    )
    if write:
        _write(session, [r for r in rows if not r.errors], now)
    report.rows = [_outcome(r, write) for r in rows]
    record_run(session, report, user_id, now)
    return report


def _validate(session: Session, table: Table) -> list[_Row]:
    places = PlaceResolver(session)
    rows = []
    for number, raw in table.rows:
        for key in ("sector", "crowded_subtype"):
            if isinstance(raw.get(key), str):
                raw[key] = _CHOICES.get(normalize_header(raw[key]), raw[key])
        data, errors = validate_enterprise(raw, places)
        # The code is needed for duplicates even when another field is wrong.
        code = data.credit_code if data is not None else _credit_code(raw.get("credit_code"))
        rows.append(_Row(number, raw, code, data, with_row(errors, number)))
    return rows


def _credit_code(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return normalize_credit_code(str(value))
    except InvalidIdentifier:
        return None


def _mark_duplicates(rows: list[_Row]) -> None:
    """Both (all) rows sharing a credit code are errors: which one is right is
    for the person who made the file to decide."""
    by_code: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.code:
            by_code[row.code].append(row)
    for group in by_code.values():
        if len(group) < 2:
            continue
        for row in group:
            others = "、".join(str(o.number) for o in group if o is not row)
            row.errors.append(
                ErrorDetail(
                    f"统一社会信用代码在文件中重复（与第 {others} 行相同）",
                    field="credit_code",
                    row=row.number,
                    column=HEADER_OF["credit_code"],
                )
            )


def _check_register(session: Session, scope: Scope, rows: list[_Row]) -> None:
    """Matches rows to registered enterprises and applies the scope rule."""
    codes = [r.code for r in rows if r.code and r.data is not None]
    prefer_custom_plans(session)
    existing = EnterpriseRepository(session).by_credit_codes(codes)
    for row in rows:
        if row.data is None or row.errors:
            continue
        row.existing = existing.get(row.data.credit_code)
        problem = upsert_problem(scope, row.data, row.existing)
        if problem is not None:
            row.errors.append(
                ErrorDetail(
                    problem.reason, field=problem.field, row=row.number, column=problem.column
                )
            )


def _write(session: Session, rows: list[_Row], now: datetime) -> None:
    """New enterprises in one executemany INSERT; changed ones in one
    executemany UPDATE per set of changed columns (usually one or two sets),
    carrying only those columns; unchanged rows are not touched at all."""
    new: list[dict[str, Any]] = []
    changed: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        assert row.data is not None
        values: dict[str, Any] = {}
        apply(row.data, _Attrs(values))
        existing = row.existing
        if existing is None:
            new.append(values | {"created_at": now, "updated_at": now})
            continue
        diff = {k: v for k, v in values.items() if getattr(existing, k) != v}
        if not diff:
            continue
        diff["updated_at"] = now
        changed[tuple(diff)].append(diff | {"id": existing.id})
        # The bulk UPDATE bypasses the loaded object: keep it in step without
        # marking it dirty.
        for key, value in diff.items():
            set_committed_value(existing, key, value)
    repo = ImportRepository(session)
    for group in changed.values():
        repo.update_enterprises(group)
    repo.insert_enterprises(new)


class _Attrs:
    """Collects what ``fields.apply`` sets, as a dict for the bulk statements."""

    _values: dict[str, Any]

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", values)

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value


def _outcome(row: _Row, written: bool) -> RowOutcome:
    key = row.code or str(row.raw.get("credit_code") or "")[:32]
    name = str(row.raw.get("name") or "")[:128]
    if row.errors:
        return RowOutcome(row.number, key, name, "error", row.errors)
    action: Literal["created", "updated"] = "updated" if row.existing else "created"
    if written:
        return RowOutcome(row.number, key, name, action)
    return RowOutcome(row.number, key, name, "skipped", planned=action)
