"""Spreadsheet exports, scoped to the user's area: the enterprise register (in
the import template's layout, so that it can be edited and imported again) and
the monthly 电气焊作业基础信息表 that districts report before the 25th."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from sqlalchemy.orm import Session

from weldguard.auth.scope import Action, Scope
from weldguard.clock import SHANGHAI
from weldguard.domain.certificates import add_months
from weldguard.enterprise.fields import TEMPLATE_COLUMNS
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseFilter, EnterpriseRepository
from weldguard.jurisdiction.models import Jurisdiction, Level
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.report.imports import bold_row
from weldguard.report.repository import ExportRepository, MonthlyFigures

_REGISTER_WIDTHS = {
    "row_number": 6,
    "name": 36,
    "credit_code": 22,
    "address": 40,
    "crowded_subtype": 14,
    "legal_rep_phone": 16,
    "contact_phone": 16,
    "declared_machine_count": 14,
    "declared_welder_count": 14,
}

MONTHLY_HEADERS: tuple[tuple[str, int], ...] = (
    ("序号", 6),
    ("所属区县", 12),
    ("所属镇街", 14),
    ("企业名称", 36),
    ("统一社会信用代码", 22),
    ("企业类型", 12),
    ("人密场所子类", 14),
    ("焊机登记数", 10),
    ("已加芯焊机数", 10),
    ("加芯率", 9),
    ("本月新增焊机", 10),
    ("焊工人数", 9),
    ("持有效证焊工数", 10),
    ("证书30天内到期数", 11),
    ("联系人电话", 16),
)


class _Places:
    """City, district and street names of a jurisdiction, from the (small) tree."""

    def __init__(self, session: Session) -> None:
        self._nodes = {n.id: n for n in JurisdictionRepository(session).all()}

    def names(self, jurisdiction_id: int) -> dict[str, str]:
        found: dict[str, str] = {}
        node: Jurisdiction | None = self._nodes.get(jurisdiction_id)
        while node is not None:
            found.setdefault(node.level, node.name)
            node = self._nodes.get(node.parent_id) if node.parent_id is not None else None
        return {
            "city": found.get(Level.CITY.value, ""),
            "district": found.get(Level.DISTRICT.value, ""),
            "street": found.get(Level.STREET.value, ""),
        }


def _visible(session: Session, scope: Scope, area_path: str | None) -> list[Enterprise]:
    return EnterpriseRepository(session).all_visible(scope, EnterpriseFilter(area_path=area_path))


def _yes_no(flag: bool) -> str:
    return "是" if flag else "否"


def _save(wb: Workbook) -> bytes:
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# The register
# ---------------------------------------------------------------------------


def export_enterprises(session: Session, scope: Scope, area_path: str | None = None) -> bytes:
    """The enterprises the scope sees (optionally only a subtree), one row each,
    in the import template's columns and order."""
    scope.require(Action.EXPORT)
    places = _Places(session)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("企业底数")
    ws.freeze_panes = "A2"
    for index, (key, header) in enumerate(TEMPLATE_COLUMNS, start=1):
        width = _REGISTER_WIDTHS.get(key, max(10, len(header) * 2))
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.append(bold_row(ws, [header for _, header in TEMPLATE_COLUMNS]))
    for number, enterprise in enumerate(_visible(session, scope, area_path), start=1):
        values = _register_values(enterprise, places) | {"row_number": number}
        ws.append([values[key] for key, _ in TEMPLATE_COLUMNS])
    return _save(wb)


def _register_values(enterprise: Enterprise, places: _Places) -> dict[str, Any]:
    return places.names(enterprise.jurisdiction_id) | {
        "name": enterprise.name,
        "credit_code": enterprise.credit_code,
        "sector": enterprise.sector,
        "address": enterprise.address,
        "crowded_subtype": enterprise.crowded_subtype,
        "legal_rep_name": enterprise.legal_rep_name,
        "legal_rep_phone": enterprise.legal_rep_phone,
        "contact_phone": enterprise.contact_phone,
        "production_status": enterprise.production_status,
        "involves_welding": _yes_no(enterprise.involves_welding),
        "mobile_work": _yes_no(enterprise.mobile_work),
        "declared_machine_count": enterprise.declared_machine_count,
        "declared_welder_count": enterprise.declared_welder_count,
    }


# ---------------------------------------------------------------------------
# The monthly basic-information table
# ---------------------------------------------------------------------------


def export_monthly_basic_info(
    session: Session,
    scope: Scope,
    month: date,
    area_path: str | None = None,
    today: date | None = None,
) -> bytes:
    """电气焊作业基础信息表 for ``month`` (any day of it): one row per enterprise in
    scope, a title row and a totals row.

    Machine and welder counts are those registered when the table is made;
    本月新增焊机 counts machines registered during the month (China time);
    certificate figures are as of ``today`` (default: the month's last day, for
    a table made afterwards)."""
    scope.require(Action.EXPORT)
    first = month.replace(day=1)
    following = add_months(first, 1)
    as_of = today or following - timedelta(days=1)
    figures = ExportRepository(session).monthly_figures(
        scope, area_path, _utc_midnight(first), _utc_midnight(following), as_of
    )
    places = _Places(session)
    rows = [
        _monthly_row(number, enterprise, places, figures.get(enterprise.id, MonthlyFigures()))
        for number, enterprise in enumerate(_visible(session, scope, area_path), start=1)
    ]
    return _monthly_workbook(first, as_of, rows)


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


def _rate(fitted: int, machines: int) -> float | None:
    return fitted / machines if machines else None


def _monthly_row(
    number: int, enterprise: Enterprise, places: _Places, f: MonthlyFigures
) -> list[Any]:
    names = places.names(enterprise.jurisdiction_id)
    return [
        number,
        names["district"],
        names["street"],
        enterprise.name,
        enterprise.credit_code,
        enterprise.sector,
        enterprise.crowded_subtype,
        f.machines,
        f.machines_with_chip,
        _rate(f.machines_with_chip, f.machines),
        f.machines_new_this_month,
        f.welders,
        f.welders_certified,
        f.certificates_expiring,
        enterprise.contact_phone,
    ]


_COUNT_COLUMNS = (7, 8, 10, 11, 12, 13)  # 0-based positions of the summed figures
_RATE_COLUMN = 9


def _totals(rows: Sequence[list[Any]]) -> list[Any]:
    totals: list[Any] = ["合计", *[None] * (len(MONTHLY_HEADERS) - 1)]
    for column in _COUNT_COLUMNS:
        totals[column] = sum(row[column] for row in rows)
    totals[_RATE_COLUMN] = _rate(totals[8], totals[7])
    return totals


def _monthly_workbook(first: date, as_of: date, rows: list[list[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "基础信息表"
    last = get_column_letter(len(MONTHLY_HEADERS))
    ws.append([f"电气焊作业基础信息表（{first.year}年{first.month:02d}月）"])
    ws.merge_cells(f"A1:{last}1")
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append([header for header, _ in MONTHLY_HEADERS])
    for index, (_, width) in enumerate(MONTHLY_HEADERS, start=1):
        cell = ws.cell(row=2, column=index)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = "A3"
    for row in [*rows, _totals(rows)]:
        ws.append(row)
        ws.cell(row=ws.max_row, column=_RATE_COLUMN + 1).number_format = "0.0%"
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    ws.append([])
    ws.append(
        [
            f"说明：焊机数、焊工数为制表时在册数；本月新增焊机按登记时间（北京时间）统计；"
            f"证书状态按 {as_of.isoformat()} 计算；持有效证含 30 天内到期的证书。"
        ]
    )
    return _save(wb)
