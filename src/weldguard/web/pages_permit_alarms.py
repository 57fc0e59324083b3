"""The permit alarm list (作业票报警): the alarms the permit supervisor raised on
the permits in the viewer's scope, newest first, filtered by kind, state, area and
enterprise. Each row links to its permit."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from weldguard.deps import DbSession
from weldguard.errors import NotFound, PermissionDenied
from weldguard.permit.alarm_models import PermitAlarmKind
from weldguard.permit.alarm_repository import PermitAlarmFilter, PermitAlarmRepository
from weldguard.permit.service import PermitService
from weldguard.web.common import (
    choice_param,
    filter_enterprise,
    int_param,
    is_htmx,
    make_pager,
    render,
    settings_of,
    text_param,
)
from weldguard.web.context import OVERSIGHT_ROLES, PageViewer, area_options, resolve_area

router = APIRouter()

ALARM_ROLES = OVERSIGHT_ROLES
KIND_OPTIONS = {k.value: k.label for k in PermitAlarmKind}
STATE_OPTIONS = {"open": "未消除", "cleared": "已消除"}


@router.get("/permit-alarms")
def permit_alarm_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    if viewer.role not in ALARM_ROLES:
        raise PermissionDenied("当前账号无权查看作业票报警")
    params = request.query_params
    node = resolve_area(session, viewer.scope, text_param(params.get("area")))
    enterprise = filter_enterprise(session, viewer.scope, params.get("enterprise_id"))
    state = choice_param(params.get("state"), STATE_OPTIONS)
    raw_permit = params.get("permit_id")
    permit_id = int_param(raw_permit)
    if raw_permit and permit_id is None:
        raise NotFound("作业票不存在")
    # Named in the link of a permit's page: it must be one the viewer may see.
    permit = PermitService(session).get(viewer.scope, permit_id) if permit_id else None
    f = PermitAlarmFilter(
        permit_id=permit.id if permit else None,
        state="open" if state == "open" else "cleared" if state == "cleared" else None,
        kind=choice_param(params.get("kind"), KIND_OPTIONS),
        enterprise_id=enterprise.id if enterprise else None,
        area_path=node.path if node else None,
    )
    page = PermitAlarmRepository(session).page(
        viewer.scope, f, int_param(params.get("page")) or 1, settings_of(request).page_size
    )
    rows = [{"row": r, "kind": KIND_OPTIONS.get(r.alarm.kind, r.alarm.kind)} for r in page.items]
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "permit_alarms",
        "page": page,
        "rows": rows,
        "pager": make_pager("/permit-alarms", params, page.page, page.pages, page.total),
        "params": params,
        "kinds": KIND_OPTIONS,
        "states": STATE_OPTIONS,
        "areas": area_options(session, viewer.scope),
        "selected_area": node.code if node else "",
        "filter_enterprise": enterprise,
        "filter_permit": permit,
    }
    template = "permit_alarms/_results.html" if is_htmx(request) else "permit_alarms/list.html"
    return render(request, template, context)
