"""/api/v1/stats, /api/v1/imports and /api/v1/exports"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from weldguard.clock import local_today, parse_month
from weldguard.deps import CurrentScope, CurrentUser, DbSession, Now, Vault
from weldguard.enterprise.endpoints import area_path_of
from weldguard.errors import NotFound, invalid
from weldguard.report.imports import ImportReport
from weldguard.report.repository_runs import ImportRunRepository
from weldguard.report.stats import area_counts

router = APIRouter(tags=["reports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def xlsx_response(content: bytes, filename: str) -> Response:
    # RFC 5987 form so that Chinese file names survive every browser.
    from urllib.parse import quote

    return Response(
        content,
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@router.get("/stats/area")
def stats_for_area(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    area: Annotated[str | None, Query(description="Division code inside your area")] = None,
) -> dict[str, Any]:
    """The home-page counts of the caller's area (or a subtree of it)."""
    counts = area_counts(session, scope, local_today(now), area_path_of(session, area))
    return asdict(counts)


async def read_upload(upload: UploadFile) -> bytes:
    content = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        raise invalid("file", "文件超过 20 MB")
    if not content:
        raise invalid("file", "文件为空")
    return content


def report_out(report: ImportReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "kind": report.kind,
        "filename": report.filename,
        "partial": report.partial,
        "applied": report.applied,
        "created": report.created,
        "updated": report.updated,
        "error_count": report.error_count,
        "summary": report.summary_lines(),
        "errors": [e.as_dict() for e in report.errors],
    }


@router.post("/imports/enterprises")
async def import_enterprises_endpoint(
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
    file: Annotated[UploadFile, File(description="The enterprise register template (xlsx)")],
    partial: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """All or nothing unless partial; the response lists every bad row."""
    from weldguard.enterprise.importer import import_enterprises

    content = await read_upload(file)
    report = import_enterprises(
        session,
        scope,
        content,
        file.filename or "upload.xlsx",
        partial=partial,
        user_id=user.id,
        now=now,
    )
    return report_out(report)


@router.post("/imports/certificates")
async def import_certificates_endpoint(
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
    vault: Vault,
    file: Annotated[UploadFile, File(description="An authority's certificate list (CSV or xlsx)")],
    source: Annotated[str, Form(description="The issuing authority feed, e.g. 应急管理部门")],
    partial: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    from weldguard.welder.cert_import import import_certificates

    content = await read_upload(file)
    report = import_certificates(
        session,
        scope,
        vault,
        content,
        file.filename or "upload.csv",
        source=source,
        partial=partial,
        user_id=user.id,
        now=now,
        today=local_today(now),
    )
    return report_out(report)


@router.get("/imports/{run_id}")
def get_import_run(run_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    run = ImportRunRepository(session).visible(run_id, user)
    if run is None:
        raise NotFound("导入记录不存在")
    return {
        "run_id": run.id,
        "kind": run.kind,
        "filename": run.filename,
        "status": run.status,
        "created": run.created_count,
        "updated": run.updated_count,
        "error_count": run.error_count,
        "errors": run.errors,
        "created_at": run.created_at.isoformat(),
    }


@router.get("/exports/enterprises.xlsx", response_class=Response)
def export_enterprises_endpoint(
    session: DbSession, scope: CurrentScope, area: str | None = None
) -> Response:
    from weldguard.report.exports import export_enterprises

    content = export_enterprises(session, scope, area_path_of(session, area))
    return xlsx_response(content, "企业底数.xlsx")


@router.get("/exports/monthly.xlsx", response_class=Response)
def export_monthly_endpoint(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")] = None,
    area: str | None = None,
) -> Response:
    from weldguard.report.exports import export_monthly_basic_info

    today = local_today(now)
    try:
        first = parse_month(month) if month else today.replace(day=1)
    except ValueError as exc:
        raise invalid("month", str(exc)) from None
    content = export_monthly_basic_info(session, scope, first, area_path_of(session, area), today)
    return xlsx_response(content, f"电气焊作业基础信息表-{first:%Y-%m}.xlsx")
