"""Machine labels on the web: a single label as SVG or PNG, an enterprise's A4
label sheets as PDF (all within the viewer's scope, like the machine pages), and
the entry point of a scanned label, /s/{code}.{sig}, open to anyone."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from weldguard.auth.models import User
from weldguard.deps import DbSession, Now, optional_user
from weldguard.unlock.label_render import (
    DEFAULT_SHEET,
    SHEET_LAYOUTS,
    label_png,
    label_sheet_pdf,
    label_svg,
)
from weldguard.unlock.label_service import LabelService
from weldguard.unlock.labels import REJECTED_SCANS, LabelRejected, signer_for
from weldguard.web.common import bool_param, choice_param, render, settings_of
from weldguard.web.context import PageViewer

router = APIRouter()


def _service(request: Request, session: DbSession) -> LabelService:
    return LabelService(session, signer_for(settings_of(request)))


def _file(content: bytes | str, media_type: str, filename: str, download: bool | None) -> Response:
    disposition = "attachment" if download else "inline"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        # An SVG opened on its own is a document: it may run nothing.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }
    return Response(content, media_type=media_type, headers=headers)


@router.get("/machines/{machine_id}/label.svg")
def machine_label_svg(
    request: Request, machine_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    info = _service(request, session).machine_label(viewer.scope, machine_id)
    download = bool_param(request.query_params.get("download"))
    return _file(label_svg(info), "image/svg+xml", f"label-{info.code}.svg", download)


@router.get("/machines/{machine_id}/label.png")
def machine_label_png(
    request: Request, machine_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    info = _service(request, session).machine_label(viewer.scope, machine_id)
    download = bool_param(request.query_params.get("download"))
    return _file(label_png(info), "image/png", f"label-{info.code}.png", download)


@router.get("/enterprises/{enterprise_id}/labels.pdf")
def enterprise_labels_pdf(
    request: Request, enterprise_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    service = _service(request, session)
    enterprise = service.enterprise(viewer.scope, enterprise_id)
    batch = service.enterprise_labels(viewer.scope, enterprise)
    layout = choice_param(request.query_params.get("layout"), tuple(SHEET_LAYOUTS))
    sheet = SHEET_LAYOUTS[layout] if layout else DEFAULT_SHEET
    pdf = label_sheet_pdf(batch.labels, sheet, batch.title)
    download = bool_param(request.query_params.get("download"))
    return _file(pdf, "application/pdf", f"labels-{enterprise.credit_code}.pdf", download)


@router.get("/s/{token}")
def scanned_label(
    request: Request,
    token: str,
    session: DbSession,
    now: Now,
    user: Annotated[User | None, Depends(optional_user)],
) -> Response:
    """What a phone opens when it scans a label: on to the scan page when the label
    is ours, otherwise a clear warning; the attempt is logged, counted and kept as a
    scan record for the regulators' statistics."""
    try:
        machine = _service(request, session).scanned_machine(token)
    except LabelRejected as rejected:
        from weldguard.unlock.service import ScanService

        REJECTED_SCANS.record(rejected, request.client.host if request.client else None)
        ScanService(session, settings_of(request)).record_invalid_label(
            rejected, rejected.code or "", user, now
        )
        return render(request, "labels/invalid.html", {}, status_code=404)
    sig = token.rsplit(".", 1)[1]
    response = RedirectResponse(f"/scan/{machine.code}?{urlencode({'sig': sig})}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
