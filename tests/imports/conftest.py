"""Helpers for import and export tests: workbooks built in memory, scopes of
the personas, row counts."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import enterprise_row
from weldguard.auth.repository import UserRepository
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.enterprise.fields import TEMPLATE_COLUMNS
from weldguard.enterprise.models import Enterprise
from weldguard.report.imports import normalize_header
from weldguard.welder.models import Certificate, Welder

FIXTURES = Path(__file__).parent.parent / "fixtures" / "imports"
HEADERS = [header for _, header in TEMPLATE_COLUMNS]
KEYS = [key for key, _ in TEMPLATE_COLUMNS]


def xlsx(rows: Sequence[Sequence[Any]], title: str = "Sheet1") -> bytes:
    """A workbook whose first sheet holds ``rows`` from A1 (None: empty cell)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    for row in rows:
        ws.append(list(row))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def record(
    n: int, name: str, district: str = "长宁区", street: str = "华阳路街道", **extra: Any
) -> dict[str, Any]:
    """A valid register record {field: value}; n makes the credit code unique."""
    return enterprise_row(n, name, district, street, **extra)


def register_rows(
    records: Sequence[dict[str, Any]], headers: Sequence[str] | None = None
) -> list[list[Any]]:
    """Header plus one row per record, in the given header order (default: the
    template's); 序号 is numbered."""
    headers = list(headers or HEADERS)
    by_header = {normalize_header(h): k for h, k in zip(HEADERS, KEYS, strict=True)}
    keys = [by_header.get(normalize_header(h), "") for h in headers]
    rows: list[list[Any]] = [headers]
    for index, rec in enumerate(records, start=1):
        values = rec | {"row_number": index}
        rows.append([values.get(k) for k in keys])
    return rows


def register_xlsx(records: Sequence[dict[str, Any]], headers: Sequence[str] | None = None) -> bytes:
    return xlsx(register_rows(records, headers))


def sheet_rows(content: bytes, sheet: str | None = None) -> list[tuple[Any, ...]]:
    wb = load_workbook(io.BytesIO(content))
    ws = wb[sheet] if sheet else wb.worksheets[0]
    return [tuple(row) for row in ws.iter_rows(values_only=True)]


def count(db: Session, model: type[Any]) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def counts(db: Session) -> tuple[int, int, int]:
    return count(db, Enterprise), count(db, Welder), count(db, Certificate)


@pytest.fixture
def scope_of(db: Session, settings: Settings) -> Callable[[str], Scope]:
    def scope(username: str) -> Scope:
        user = UserRepository(db).by_username(username)
        assert user is not None, username
        return AuthService(db, settings).scope_for(user)

    return scope


@pytest.fixture
def user_id(db: Session) -> Callable[[str], int]:
    def find(username: str) -> int:
        user = UserRepository(db).by_username(username)
        assert user is not None, username
        return user.id

    return find
