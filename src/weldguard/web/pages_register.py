"""The register: lists (search, filters, pagination, htmx live filtering) and
detail pages of enterprises, machines, welders and certificates."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from weldguard.auth.scope import Action
from weldguard.deps import DbSession
from weldguard.device.views_repository import DeviceViewRepository, LiveFilter
from weldguard.domain.authorization import permit_required
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.enterprise.fields import PRODUCTION_STATUSES
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseFilter, EnterpriseRepository
from weldguard.enterprise.service import EnterpriseService
from weldguard.errors import NotFound, invalid
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.jurisdiction.service import CROWDED_SUBTYPES, SECTORS
from weldguard.machine.models import Chip, Machine, MachineStatus, WeldingProcess
from weldguard.machine.repository import MachineFilter
from weldguard.report.stats import enterprise_counts
from weldguard.unlock.facts import permit_rule_of, place_facts
from weldguard.web.common import (
    bool_param,
    choice_param,
    filter_enterprise,
    int_param,
    is_htmx,
    make_pager,
    render,
    settings_of,
    text_param,
)
from weldguard.web.context import AreaOption, PageViewer, Viewer, area_options, resolve_area
from weldguard.web.csrf import verify_csrf
from weldguard.web.device_views import LiveView, build_timeline, live_view, map_data, parse_cursor
from weldguard.web.pages_device import ALARM_ROLES, INSTALL_ROLES
from weldguard.web.views import (
    MachineRow,
    certificate_row,
    certificate_rows,
    employment_rows,
    shown_phone,
    welder_rows,
)
from weldguard.welder.repository import CertificateFilter, WelderFilter, WelderRepository

LIVE_OPTIONS = {f.value: f.label for f in LiveFilter}


@dataclass(frozen=True)
class MachineLiveRow:
    """A machine list row: the register's row plus the chip's live state."""

    base: MachineRow
    live: LiveView

    @property
    def machine(self) -> Machine:
        return self.base.machine

    @property
    def enterprise(self) -> Enterprise | None:
        return self.base.enterprise

    @property
    def chip(self) -> Chip | None:
        return self.base.chip

    @property
    def tone(self) -> str:
        return self.base.tone


router = APIRouter()

PROCESS_OPTIONS = {p.value: p.label for p in WeldingProcess}
MACHINE_STATUS_OPTIONS = {s.value: s.label for s in MachineStatus}
KIND_OPTIONS = {k.value: k.label for k in CertificateKind}
STATUS_OPTIONS = {s.value: s.label for s in CertificateStatus}
# Certificate feeds: the issuing authorities that share their databases.
SOURCE_OPTIONS = tuple(dict.fromkeys(k.issuer_label for k in CertificateKind))


def _page_number(params: Mapping[str, str]) -> int:
    return int_param(params.get("page")) or 1


def _list_response(
    request: Request, template: str, partial: str, context: dict[str, object]
) -> Response:
    """The whole page, or only the results for an htmx update."""
    return render(request, partial if is_htmx(request) else template, context)


def _area_names(session: DbSession, viewer: Viewer) -> dict[int, Jurisdiction]:
    return {option.node.id: option.node for option in area_options(session, viewer.scope)}


@dataclass(frozen=True)
class ListFilters:
    """The area and enterprise filters the machine, welder and certificate lists
    share, both checked against the viewer's scope."""

    node: Jurisdiction | None
    enterprise: Enterprise | None
    areas: list[AreaOption]

    @property
    def area_path(self) -> str | None:
        return self.node.path if self.node else None

    @property
    def enterprise_id(self) -> int | None:
        return self.enterprise.id if self.enterprise else None

    def context(self) -> dict[str, object]:
        return {
            "areas": self.areas,
            "selected_area": self.node.code if self.node else "",
            "filter_enterprise": self.enterprise,
        }


def _list_filters(session: DbSession, viewer: Viewer, params: Mapping[str, str]) -> ListFilters:
    return ListFilters(
        node=resolve_area(session, viewer.scope, text_param(params.get("area"))),
        enterprise=filter_enterprise(session, viewer.scope, params.get("enterprise_id")),
        areas=area_options(session, viewer.scope),
    )


# --- enterprises ------------------------------------------------------------------
@router.get("/enterprises")
def enterprise_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    params = request.query_params
    node = resolve_area(session, viewer.scope, text_param(params.get("area")))
    sector = choice_param(params.get("sector"), SECTORS)
    f = EnterpriseFilter(
        q=text_param(params.get("q")),
        area_path=node.path if node else None,
        sector=sector,
        crowded_subtype=choice_param(params.get("crowded"), CROWDED_SUBTYPES),
        production_status=choice_param(params.get("status"), PRODUCTION_STATUSES),
        mobile_work=bool_param(params.get("mobile")),
    )
    page = EnterpriseRepository(session).search(
        viewer.scope, f, _page_number(params), settings_of(request).page_size
    )
    areas = _area_names(session, viewer)
    if any(e.jurisdiction_id not in areas for e in page.items):
        jurisdictions = JurisdictionRepository(session)
        for enterprise in page.items:
            if enterprise.jurisdiction_id not in areas:
                found = jurisdictions.by_id(enterprise.jurisdiction_id)
                if found is not None:
                    areas[found.id] = found
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "enterprises",
        "page": page,
        "pager": make_pager("/enterprises", params, page.page, page.pages, page.total),
        "params": params,
        "area_nodes": areas,
        "areas": area_options(session, viewer.scope),
        "sectors": SECTORS,
        "crowded_subtypes": CROWDED_SUBTYPES,
        "production_statuses": PRODUCTION_STATUSES,
        "selected_area": node.code if node else "",
    }
    return _list_response(request, "enterprises/list.html", "enterprises/_results.html", context)


@router.get("/enterprises/{enterprise_id}")
def enterprise_detail(
    request: Request, enterprise_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    enterprise = EnterpriseService(session).get(viewer.scope, enterprise_id)
    repo = EnterpriseRepository(session)
    sites = repo.sites(enterprise.id)
    node = JurisdictionRepository(session).by_id(enterprise.jurisdiction_id)
    markers = [
        {"name": s.name, "address": s.address, "lat": s.latitude, "lng": s.longitude}
        for s in sites
        if s.latitude is not None and s.longitude is not None
    ]
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "enterprises",
        "enterprise": enterprise,
        "jurisdiction": node,
        "sites": sites,
        "markers_json": json.dumps(markers, ensure_ascii=False),
        "has_map": bool(markers),
        "counts": enterprise_counts(session, viewer.scope, viewer.today, enterprise),
        "permit_rule": _permit_requirement(request, viewer, enterprise),
        "saved": request.query_params.get("saved") == "permit",
    }
    return render(request, "enterprises/detail.html", context)


@dataclass(frozen=True)
class PermitRequirement:
    """What the enterprise page says about hot-work permits there, and which
    choices the viewer may make (see EnterpriseService.set_permit_requirement)."""

    required: bool
    by_rule: bool
    own: bool | None
    choices: dict[str, str]


PERMIT_CHOICES = {"rule": "按行业规则", "required": "须持作业票", "not_required": "无须作业票"}


def _permit_requirement(request: Request, viewer: Viewer, ent: Enterprise) -> PermitRequirement:
    place = dataclasses.replace(place_facts(ent), permit_required_override=None)
    by_rule = permit_required(place, "", permit_rule_of(settings_of(request)))
    choices: dict[str, str] = {}
    if viewer.scope.may(Action.MANAGE_REGISTER):
        choices = dict(PERMIT_CHOICES)
    elif viewer.scope.may(Action.MANAGE_ENTERPRISE_ASSETS) and ent.permit_required is not True:
        choices = {"required": PERMIT_CHOICES["required"]}
    own = ent.permit_required
    return PermitRequirement(by_rule if own is None else own, by_rule, own, choices)


@router.post("/enterprises/{enterprise_id}/permit-requirement")
def set_permit_requirement(
    request: Request,
    enterprise_id: int,
    viewer: PageViewer,
    session: DbSession,
    requirement: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    if requirement not in PERMIT_CHOICES:
        raise invalid("requirement", "请选择：" + "、".join(PERMIT_CHOICES.values()))
    value = {"rule": None, "required": True, "not_required": False}[requirement]
    EnterpriseService(session).set_permit_requirement(viewer.scope, enterprise_id, value)
    return RedirectResponse(f"/enterprises/{enterprise_id}?saved=permit", status_code=303)


# --- machines ---------------------------------------------------------------------
@router.get("/machines")
def machine_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    params = request.query_params
    filters = _list_filters(session, viewer, params)
    f = MachineFilter(
        q=text_param(params.get("q")),
        enterprise_id=filters.enterprise_id,
        area_path=filters.area_path,
        process=choice_param(params.get("process"), PROCESS_OPTIONS),
        status=choice_param(params.get("status"), MACHINE_STATUS_OPTIONS),
    )
    live_choice = choice_param(params.get("live"), LIVE_OPTIONS)
    # One joined query: machine, enterprise, current chip and its live state.
    page = DeviceViewRepository(session).machine_page(
        viewer.scope,
        f,
        LiveFilter(live_choice) if live_choice else None,
        viewer.now,
        _page_number(params),
        settings_of(request).page_size,
    )
    rows = [
        MachineLiveRow(
            MachineRow(item.machine, item.enterprise, item.chip),
            live_view(item.chip, item.state, viewer.now),
        )
        for item in page.items
    ]
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "machines",
        "page": page,
        "rows": rows,
        "pager": make_pager("/machines", params, page.page, page.pages, page.total),
        "params": params,
        "processes": PROCESS_OPTIONS,
        "statuses": MACHINE_STATUS_OPTIONS,
        "live_options": LIVE_OPTIONS,
        **filters.context(),
    }
    return _list_response(request, "machines/list.html", "machines/_results.html", context)


@router.get("/machines/{machine_id}")
def machine_detail(
    request: Request, machine_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    devices = DeviceViewRepository(session)
    found = devices.machine_live(viewer.scope, machine_id)
    if found is None:
        raise NotFound("焊机不存在")
    machine, enterprise = found.machine, found.enterprise
    site = devices.site_of(machine)
    bindings = devices.bindings_of(viewer.scope, machine.id)
    live = live_view(found.chip, found.state, viewer.now)
    until = parse_cursor(request.query_params.get("until"))
    timeline = build_timeline(devices, machine, bindings, until, viewer.now)
    markers = map_data(live.position, found.state, site, bindings)
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "machines",
        "machine": machine,
        "row": MachineRow(machine, enterprise, found.chip),
        "enterprise": enterprise,
        "site": site,
        "bindings": bindings,
        "chip": found.chip,
        "state": found.state,
        "live": live,
        "timeline": timeline,
        "paged": until is not None,
        "map_json": json.dumps(markers, ensure_ascii=False),
        "map_points": markers,
        "has_map": bool(markers),
        "can_install": viewer.role in INSTALL_ROLES and machine.status != "retired",
        "can_see_alarms": viewer.role in ALARM_ROLES,
    }
    return render(request, "machines/detail.html", context)


# --- welders ----------------------------------------------------------------------
@router.get("/welders")
def welder_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    params = request.query_params
    filters = _list_filters(session, viewer, params)
    f = WelderFilter(
        q=text_param(params.get("q")),
        enterprise_id=filters.enterprise_id,
        area_path=filters.area_path,
        certified=bool_param(params.get("certified")),
    )
    page = WelderRepository(session).search(
        viewer.scope, f, viewer.today, _page_number(params), settings_of(request).page_size
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "welders",
        "page": page,
        "rows": welder_rows(session, viewer.scope, page.items, viewer.today, viewer.sees_phones),
        "pager": make_pager("/welders", params, page.page, page.pages, page.total),
        "params": params,
        **filters.context(),
    }
    return _list_response(request, "welders/list.html", "welders/_results.html", context)


@router.get("/welders/{welder_id}")
def welder_detail(
    request: Request, welder_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    repo = WelderRepository(session)
    welder = repo.visible(viewer.scope, welder_id)
    if welder is None:
        raise NotFound("焊工不存在")
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "welders",
        "welder": welder,
        "phone": shown_phone(welder.phone, viewer.sees_phones),
        "certificates": certificate_rows(repo.certificates_of(welder.id), viewer.today),
        "employments": employment_rows(viewer.scope, repo.employments_of(welder.id)),
    }
    return render(request, "welders/detail.html", context)


# --- certificates -----------------------------------------------------------------
@router.get("/certificates")
def certificate_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    params = request.query_params
    filters = _list_filters(session, viewer, params)
    f = CertificateFilter(
        q=text_param(params.get("q")),
        kind=choice_param(params.get("kind"), KIND_OPTIONS),
        status=choice_param(params.get("status"), STATUS_OPTIONS),
        source=choice_param(params.get("source"), SOURCE_OPTIONS),
        enterprise_id=filters.enterprise_id,
        area_path=filters.area_path,
    )
    repo = WelderRepository(session)
    page = repo.search_certificates(
        viewer.scope, f, viewer.today, _page_number(params), settings_of(request).page_size
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "certificates",
        "page": page,
        "rows": certificate_rows(page.items, viewer.today),
        "holders": repo.names_by_ids(sorted({c.welder_id for c in page.items})),
        "pager": make_pager("/certificates", params, page.page, page.pages, page.total),
        "params": params,
        "kinds": KIND_OPTIONS,
        "statuses": STATUS_OPTIONS,
        "sources": SOURCE_OPTIONS,
        **filters.context(),
    }
    return _list_response(request, "certificates/list.html", "certificates/_results.html", context)


@router.get("/certificates/{certificate_id}")
def certificate_detail(
    request: Request, certificate_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    repo = WelderRepository(session)
    certificate = repo.visible_certificate(viewer.scope, certificate_id)
    if certificate is None:
        raise NotFound("证书不存在")
    holder = repo.visible(viewer.scope, certificate.welder_id)
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "certificates",
        "row": certificate_row(certificate, viewer.today),
        "certificate": certificate,
        "holder": holder,
    }
    return render(request, "certificates/detail.html", context)
