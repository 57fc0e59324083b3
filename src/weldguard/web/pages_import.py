"""The import page (enterprise register and certificate feeds), the empty
template, import results and their report workbooks, and the exports."""

from __future__ import annotations

import io
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from weldguard.auth.scope import Action
from weldguard.clock import parse_month
from weldguard.deps import DbSession, Vault
from weldguard.domain.certificates import CertificateKind
from weldguard.enterprise.fields import NO, PRODUCTION_STATUSES, TEMPLATE_COLUMNS, YES
from weldguard.errors import InvalidInput, NotFound, PermissionDenied, invalid
from weldguard.jurisdiction.service import CROWDED_SUBTYPES, SECTORS
from weldguard.report.imports import KIND_LABELS, ImportReport, report_from_run
from weldguard.report.repository_runs import ImportRunRepository
from weldguard.web.common import render
from weldguard.web.context import PageViewer, Viewer, resolve_area
from weldguard.web.csrf import verify_csrf

router = APIRouter()

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Certificate feeds: the issuing authorities that share their databases.
CERTIFICATE_SOURCES = tuple(dict.fromkeys(k.issuer_label for k in CertificateKind))


def xlsx_response(content: bytes, filename: str) -> Response:
    # RFC 5987 form so that Chinese file names survive every browser.
    return Response(
        content,
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        },
    )


def _require_import(viewer: Viewer) -> None:
    if not viewer.can_import:
        raise PermissionDenied("当前账号无权导入数据")


def _read_upload(upload: UploadFile) -> tuple[bytes, str]:
    content = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        raise invalid("file", f"文件超过 {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
    if not content:
        raise invalid("file", "请选择要上传的文件（文件为空）")
    return content, (upload.filename or "upload.xlsx")[:256]


def _page(
    request: Request,
    viewer: Viewer,
    *,
    report: ImportReport | None = None,
    error: InvalidInput | None = None,
    form: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "imports/index.html",
        {
            "viewer": viewer,
            "active": "imports",
            "may_register": viewer.scope.may(Action.MANAGE_REGISTER),
            "may_certificates": viewer.scope.may(Action.IMPORT_CERTIFICATES),
            "sources": CERTIFICATE_SOURCES,
            "report": report,
            "kind_label": KIND_LABELS.get(report.kind, "") if report else "",
            "error": error,
            "form": form,
        },
        status_code=status,
    )


@router.get("/imports")
def import_page(request: Request, viewer: PageViewer) -> Response:
    _require_import(viewer)
    return _page(request, viewer)


@router.post("/imports/enterprises")
def import_enterprises_page(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    file: Annotated[UploadFile, File()],
    partial: Annotated[bool, Form()] = False,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    viewer.scope.require(Action.MANAGE_REGISTER)
    from weldguard.enterprise.importer import import_enterprises

    try:
        content, filename = _read_upload(file)
        report = import_enterprises(
            session,
            viewer.scope,
            content,
            filename,
            partial=partial,
            user_id=viewer.user.id,
            now=viewer.now,
        )
    except InvalidInput as exc:
        return _page(request, viewer, error=exc, form="enterprises", status=422)
    return _page(request, viewer, report=report, form="enterprises")


@router.post("/imports/certificates")
def import_certificates_page(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    vault: Vault,
    file: Annotated[UploadFile, File()],
    source: Annotated[str, Form(max_length=64)] = "",
    partial: Annotated[bool, Form()] = False,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    viewer.scope.require(Action.IMPORT_CERTIFICATES)
    from weldguard.welder.cert_import import import_certificates

    try:
        if source not in CERTIFICATE_SOURCES:
            raise invalid("source", "请选择证书数据来源（发证部门）")
        content, filename = _read_upload(file)
        report = import_certificates(
            session,
            viewer.scope,
            vault,
            content,
            filename,
            source=source,
            partial=partial,
            user_id=viewer.user.id,
            now=viewer.now,
            today=viewer.today,
        )
    except InvalidInput as exc:
        return _page(request, viewer, error=exc, form="certificates", status=422)
    return _page(request, viewer, report=report, form="certificates")


@router.get("/imports/template.xlsx")
def import_template(viewer: PageViewer) -> Response:
    _require_import(viewer)
    return xlsx_response(enterprise_template(), "涉焊企业导入模板.xlsx")


@router.get("/imports/{run_id}")
def import_run_page(
    request: Request, run_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    run = ImportRunRepository(session).visible(run_id, viewer.user)
    if run is None:
        raise NotFound("导入记录不存在")
    return render(
        request,
        "imports/run.html",
        {
            "viewer": viewer,
            "active": "imports",
            "run": run,
            "kind_label": KIND_LABELS.get(run.kind, run.kind),
        },
    )


@router.get("/imports/{run_id}/report.xlsx")
def import_report(run_id: int, viewer: PageViewer, session: DbSession) -> Response:
    run = ImportRunRepository(session).visible(run_id, viewer.user)
    if run is None:
        raise NotFound("导入记录不存在")
    return xlsx_response(report_from_run(run).to_xlsx(), f"导入结果-{run.id}.xlsx")


# --- exports ----------------------------------------------------------------------
@router.get("/exports/enterprises.xlsx")
def export_enterprises_page(
    viewer: PageViewer, session: DbSession, area: str | None = None
) -> Response:
    viewer.scope.require(Action.EXPORT)
    from weldguard.report.exports import export_enterprises

    node = resolve_area(session, viewer.scope, area)
    content = export_enterprises(session, viewer.scope, node.path if node else None)
    return xlsx_response(content, f"企业底数-{viewer.today:%Y%m%d}.xlsx")


@router.get("/exports/monthly.xlsx")
def export_monthly_page(
    viewer: PageViewer, session: DbSession, month: str | None = None, area: str | None = None
) -> Response:
    viewer.scope.require(Action.EXPORT)
    from weldguard.report.exports import export_monthly_basic_info

    try:
        first = parse_month(month) if month else viewer.today.replace(day=1)
    except ValueError as exc:
        raise invalid("month", str(exc)) from None
    node = resolve_area(session, viewer.scope, area)
    content = export_monthly_basic_info(
        session, viewer.scope, first, node.path if node else None, viewer.today
    )
    return xlsx_response(content, f"电气焊作业基础信息表-{first:%Y-%m}.xlsx")


# --- the empty template -----------------------------------------------------------
CHOICES: dict[str, tuple[str, ...]] = {
    "sector": SECTORS,
    "crowded_subtype": CROWDED_SUBTYPES,
    "production_status": PRODUCTION_STATUSES,
    "involves_welding": ("是", "否"),
    "mobile_work": ("是", "否"),
}
TEMPLATE_ROWS = 1000


def enterprise_template() -> bytes:
    """The 涉焊企业导入模板: the header row in the template's order, drop-down
    lists where the values are fixed, and a sheet of filling instructions."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "涉焊企业"
    header_fill = PatternFill("solid", fgColor="DCE6F1")
    for index, (key, header) in enumerate(TEMPLATE_COLUMNS, start=1):
        cell = ws.cell(row=1, column=index, value=header)
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(index)].width = max(12, len(header) * 2 + 2)
        if key in ("credit_code", "legal_rep_phone", "contact_phone"):
            # Text, so that Excel keeps leading zeros and long digit strings.
            for row in range(2, TEMPLATE_ROWS + 2):
                ws.cell(row=row, column=index).number_format = "@"
        choices = CHOICES.get(key)
        if choices:
            letter = get_column_letter(index)
            validation = DataValidation(
                type="list",
                formula1='"' + ",".join(choices) + '"',
                allow_blank=True,
                showErrorMessage=False,
            )
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
            ws.add_data_validation(validation)
    ws.row_dimensions[1].height = 36
    ws.freeze_panes = "B2"

    notes = wb.create_sheet("填写说明")
    notes.column_dimensions["A"].width = 28
    notes.column_dimensions["B"].width = 90
    lines = [
        ("列", "说明"),
        ("统一社会信用代码", "18 位，含校验位（GB 32100-2015），重复导入时按此代码更新企业"),
        ("企业类型", "、".join(SECTORS)),
        ("人密场所子类", "企业类型为“人员密集场所”时必填：" + "、".join(CROWDED_SUBTYPES)),
        ("所属地市 / 区县 / 镇街", "填写行政区划全称，如 上海市 / 长宁区 / 华阳路街道；镇街可空"),
        ("生产状态", "、".join(PRODUCTION_STATUSES) + "；空白视为在产"),
        ("是否涉焊单位 / 是否流动作业", f"填“是”或“否”（也接受 {YES[1]}/{NO[1]}、1/0）"),
        ("电焊设备数量 / 特种作业人员数量", "0 或正整数"),
        ("导入规则", "默认全部或全不：任一行有误则不写入任何数据；可勾选“部分导入”只写入正确的行"),
    ]
    for line in lines:
        notes.append(line)
    for cell in notes[1]:
        cell.font = Font(bold=True)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
