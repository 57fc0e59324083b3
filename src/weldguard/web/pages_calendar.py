"""/admin/calendar: the admin keeps the 节假日安排 (holidays and swapped workdays)
that raise a hot-work permit's level. One year per page; one day is added,
changed or deleted with a form, a whole year is imported from the State
Council's notice typed into a CSV or xlsx file, and exported again.

Admin only (403 for everyone else); every form carries the CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from weldguard.auth.models import Role
from weldguard.deps import DbSession
from weldguard.domain.calendar import DAY_KIND_LABELS, WEEKDAY_LABELS, DayKind
from weldguard.errors import DomainError, InvalidInput, PermissionDenied, invalid
from weldguard.permit.calendar_service import (
    ADMIN_ONLY,
    YEAR_MAX,
    YEAR_MIN,
    CalendarImport,
    CalendarService,
)
from weldguard.web.common import date_param, int_param, render
from weldguard.web.context import PageViewer, Viewer
from weldguard.web.csrf import verify_csrf
from weldguard.web.pages_import import _read_upload, xlsx_response

router = APIRouter()

KIND_TONES = {DayKind.HOLIDAY.value: "ok", DayKind.WORKDAY.value: "warn"}


def _require_admin(viewer: Viewer) -> None:
    if viewer.role != Role.ADMIN:
        raise PermissionDenied(ADMIN_ONLY)


def _year(viewer: Viewer, raw: str | None) -> int:
    if raw is None or not raw.strip():
        return viewer.today.year
    year = int_param(raw)
    if year is None or not YEAR_MIN <= year <= YEAR_MAX:
        raise invalid("year", f"年份须在 {YEAR_MIN}–{YEAR_MAX} 之间")
    return year


@dataclass
class DayForm:
    day: str = ""
    kind: str = DayKind.HOLIDAY.value
    name: str = ""


def _page(
    request: Request,
    viewer: Viewer,
    session: DbSession,
    year: int,
    *,
    form: DayForm | None = None,
    errors: dict[str, str] | None = None,
    imported: CalendarImport | None = None,
    import_error: InvalidInput | None = None,
    message: str = "",
    status_code: int = 200,
) -> Response:
    service = CalendarService(session)
    rows = service.year_days(year)
    years = sorted({*service.known_years(), viewer.today.year, year})
    holidays = sum(1 for r in rows if r.kind == DayKind.HOLIDAY)
    return render(
        request,
        "admin/calendar.html",
        {
            "viewer": viewer,
            "active": "calendar",
            "year": year,
            "years": years,
            "rows": [
                {
                    "r": r,
                    "weekday": WEEKDAY_LABELS[r.day.weekday()],
                    "kind": DAY_KIND_LABELS.get(r.kind, r.kind),
                    "tone": KIND_TONES.get(r.kind, "muted"),
                }
                for r in rows
            ],
            "holiday_count": holidays,
            "workday_count": len(rows) - holidays,
            "kinds": DAY_KIND_LABELS,
            "form": form or DayForm(),
            "errors": errors or {},
            "imported": imported,
            "import_error": import_error,
            "message": message,
            "year_min": YEAR_MIN,
            "year_max": YEAR_MAX,
        },
        status_code=status_code,
    )


@router.get("/admin/calendar")
def calendar_page(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    year: str | None = None,
    saved: str | None = None,
    deleted: str | None = None,
) -> Response:
    _require_admin(viewer)
    message = ""
    if (day := date_param(saved)) is not None:
        message = f"已保存 {day.isoformat()}。"
    elif (day := date_param(deleted)) is not None:
        message = f"已删除 {day.isoformat()}，该日按周末规则计算。"
    return _page(request, viewer, session, _year(viewer, year), message=message)


@router.post("/admin/calendar/days")
def save_calendar_day(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    day: Annotated[str, Form(max_length=32)] = "",
    kind: Annotated[str, Form(max_length=16)] = "",
    name: Annotated[str, Form(max_length=64)] = "",
    year: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    _require_admin(viewer)
    form = DayForm(day, kind, name)
    try:
        row = CalendarService(session).set_day(
            viewer.scope, {"day": day, "kind": kind, "name": name}, viewer.user.username, viewer.now
        )
    except DomainError as error:
        errors = {d.field or "form": d.reason for d in reversed(error.details)}
        if not errors:
            errors["form"] = error.message
        return _page(
            request, viewer, session, _year(viewer, year), form=form, errors=errors, status_code=422
        )
    return RedirectResponse(
        f"/admin/calendar?year={row.day.year}&saved={row.day.isoformat()}", status_code=303
    )


@router.post("/admin/calendar/days/{day}/delete")
def delete_calendar_day(
    request: Request,
    day: date,
    viewer: PageViewer,
    session: DbSession,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    _require_admin(viewer)
    CalendarService(session).delete_day(viewer.scope, day)
    return RedirectResponse(
        f"/admin/calendar?year={day.year}&deleted={day.isoformat()}", status_code=303
    )


@router.post("/admin/calendar/import")
def import_calendar(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    file: Annotated[UploadFile, File()],
    year: Annotated[str, Form(max_length=8)] = "",
    page_year: Annotated[str, Form(max_length=8)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    _require_admin(viewer)
    shown = _year(viewer, page_year)
    try:
        wanted = _year(viewer, year) if year.strip() else None
        content, filename = _read_upload(file)
        result = CalendarService(session).import_file(
            viewer.scope, content, filename, viewer.user.username, viewer.now, year=wanted
        )
    except InvalidInput as exc:
        return _page(request, viewer, session, shown, import_error=exc, status_code=422)
    return _page(request, viewer, session, result.year, imported=result)


def _export(viewer: Viewer, session: DbSession, year: str | None, suffix: str) -> Response:
    _require_admin(viewer)
    wanted = _year(viewer, year)
    filename = f"节假日安排-{wanted}.{suffix}"
    content = CalendarService(session).export(wanted, filename)
    if suffix == "xlsx":
        return xlsx_response(content, filename)
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        },
    )


@router.get("/admin/calendar/export.xlsx")
def export_calendar_xlsx(
    viewer: PageViewer, session: DbSession, year: str | None = None
) -> Response:
    return _export(viewer, session, year, "xlsx")


@router.get("/admin/calendar/export.csv")
def export_calendar_csv(
    viewer: PageViewer, session: DbSession, year: str | None = None
) -> Response:
    return _export(viewer, session, year, "csv")
