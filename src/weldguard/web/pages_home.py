"""The home page: area counts for regulators, the enterprise's own counts, or a
welder's certificates and employment."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from weldguard.deps import DbSession
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import NotFound
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.report.stats import area_counts, counts_by_child_area, enterprise_counts
from weldguard.unlock.records import RecordRepository, ScanFilter, default_period, local_day_bounds
from weldguard.web.common import render
from weldguard.web.context import PageViewer, area_options, resolve_area
from weldguard.web.views import certificate_rows, employment_rows
from weldguard.welder.repository import WelderRepository

router = APIRouter()


@router.get("/")
def home(
    request: Request, viewer: PageViewer, session: DbSession, area: str | None = None
) -> Response:
    scope = viewer.scope
    context: dict[str, object] = {"viewer": viewer, "active": "home"}

    if viewer.is_welder:
        repo = WelderRepository(session)
        welder = repo.visible(scope, scope.welder_id or -1)
        if welder is None:
            raise NotFound("未找到焊工档案")
        since, until = local_day_bounds(*default_period(viewer.today))
        context.update(
            welder=welder,
            certificates=certificate_rows(repo.certificates_of(welder.id), viewer.today),
            employments=employment_rows(scope, repo.employments_of(welder.id)),
            recent_scans=RecordRepository(session).scan_totals(
                scope, ScanFilter(welder_id=welder.id, since=since, until=until)
            ),
        )
        return render(request, "home_welder.html", context)

    if viewer.is_enterprise_user:
        enterprise = EnterpriseRepository(session).visible(scope, scope.enterprise_id or -1)
        if enterprise is None:
            raise NotFound("企业不存在")
        context.update(
            enterprise=enterprise,
            counts=enterprise_counts(session, scope, viewer.today, enterprise),
        )
        return render(request, "home_enterprise.html", context)

    node = resolve_area(session, scope, area)
    if node is None and not scope.everything and viewer.user.jurisdiction_id is not None:
        node = JurisdictionRepository(session).by_id(viewer.user.jurisdiction_id)
    area_path = node.path if node is not None else None
    # A sector-limited department still sees its whole subtree, but counts only
    # its sectors: both come from the scope.
    counts = area_counts(session, scope, viewer.today, area_path)
    breakdown = counts_by_child_area(session, scope, viewer.today, area_path)
    context.update(
        node=node,
        counts=counts,
        breakdown=breakdown,
        areas=area_options(session, scope),
        selected_area=node.code if node is not None else "",
    )
    return render(request, "home.html", context)
