"""/permits: hot-work permits (动火作业票) in the browser, on the desktop and on the
phone. The list follows the viewer's scope (regulators their area, enterprise users
their enterprise, a welder the permits naming them); the enterprise's admin and
safety officer apply (/permits/new) and edit a draft; everyone who signs a step
(approver, lead, welder, fire watch) does it on the permit's page, one small form
per step the permit's status and their role allow, with photos taken on the spot.

The pages call PermitService, the same use cases as /api/v1/permits: every rule is
the domain's, and a refused step comes back on the page with each reason. Every
form carries the CSRF token; a bad form is shown again with its values (422/409)
and nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response

from weldguard.auth.models import Role
from weldguard.deps import DbSession
from weldguard.domain.permits import (
    STANDARD_SAFETY_MEASURES,
    HotWorkMethod,
    NoticeLocation,
    PermitLevel,
    PermitStatus,
    SuspendCause,
    assess_level,
    mandatory_measure_codes,
)
from weldguard.errors import DomainError, ErrorDetail, InvalidInput, NotFound, PermissionDenied
from weldguard.permit.alarm_repository import PermitAlarmFilter, PermitAlarmRepository
from weldguard.permit.document import link_signer_for
from weldguard.permit.repository import FormChoices, PermitFilter
from weldguard.permit.service import (
    EVENT_TYPES,
    EXCEPTION_KINDS,
    MeasureInput,
    PermitInput,
    PermitService,
    PersonInput,
    WelderEntry,
    steps_open_to,
)
from weldguard.photos import (
    PhotoRejected,
    photo_media_type,
    read_photo,
    remove_photos,
    store_photo,
)
from weldguard.unlock.records import local_day_bounds
from weldguard.unlock.service import device_secrets
from weldguard.web.common import (
    SHANGHAI,
    certificate_kind_label,
    choice_param,
    date_param,
    datetime_input,
    filter_enterprise,
    int_param,
    is_htmx,
    make_pager,
    parse_datetime_input,
    render,
    settings_of,
)
from weldguard.web.context import PageViewer, Viewer
from weldguard.web.csrf import verify_csrf
from weldguard.web.pages_permit_docs import STATUS_TONES

router = APIRouter()
T = TypeVar("T")

PAGE_SIZE = 20
MAX_STEP_PHOTOS = 6

STATUS_CHOICES = {s.value: s.label for s in PermitStatus}
LEVEL_CHOICES = {x.value: x.label for x in PermitLevel}
METHOD_CHOICES = {x.value: x.label for x in HotWorkMethod}
NOTICE_CHOICES = {x.value: x.label for x in NoticeLocation}

#: The step buttons' words where they differ from the domain's event label.
STEP_BUTTONS = {
    "submit": "提交审批",
    "site_survey": "登记现场勘查",
    "confirm_risks": "确认风险（作业负责人）",
    "approve": "批准",
    "reject": "驳回",
    "gas_sample": "录入气体分析",
    "check_in": "监护签到",
    "confirm_measure": "确认安全措施",
    "confirm_notice": "确认动火公告",
    "clear": "可燃物已清理",
    "start": "开始动火",
    "pause": "中断作业",
    "resume": "恢复作业",
    "suspend": "责令暂停",
    "reinstate": "解除暂停",
    "end": "作业结束",
    "dispose": "余火检查完毕",
    "close": "关闭作业票",
    "cancel": "取消作业票",
    "crowded_risk_assessment": "登记全面风险评估",
    "crowded_fire_separation": "登记不燃材料防火分隔",
}
#: Steps whose form takes photos (the rules say which must have one).
PHOTO_STEPS = frozenset(
    {
        "site_survey",
        "confirm_risks",
        "approve",
        "check_in",
        "confirm_measure",
        "confirm_notice",
        "clear",
        "start",
        "end",
        "dispose",
        "close",
        *EXCEPTION_KINDS,
    }
)
NOTE_STEPS = frozenset(
    {
        "site_survey",
        "confirm_risks",
        "approve",
        "reject",
        "clear",
        "pause",
        "suspend",
        "dispose",
        *EXCEPTION_KINDS,
    }
)
#: Steps that need a deliberate second thought: the button asks to confirm.
CONFIRM_STEPS = frozenset({"reject", "suspend", "cancel", "end", "close"})


def _status(value: str) -> PermitStatus:
    return PermitStatus(value)


def status_badge(value: str) -> tuple[str, str]:
    status = _status(value)
    return STATUS_TONES[status], status.label


# --- list -----------------------------------------------------------------------------
@router.get("/permits")
def permit_list(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    status: str | None = None,
    enterprise_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    page: str | None = None,
) -> Response:
    service = PermitService(session)
    chosen_status = choice_param(status, STATUS_CHOICES)
    enterprise = filter_enterprise(session, viewer.scope, enterprise_id)
    first, last = date_param(since), date_param(until)
    if first is not None and last is not None and last < first:
        first, last = last, first
    start, end = local_day_bounds(first, last)
    f = PermitFilter(
        status=chosen_status,
        enterprise_id=enterprise.id if enterprise else None,
        since=start,
        until=end,
    )
    number = int_param(page) or 1
    result = service.repo.page(viewer.scope, f, number, PAGE_SIZE)
    names = service.repo.enterprise_names({p.enterprise_id for p in result.items})
    params = {
        "status": chosen_status or "",
        "enterprise_id": str(enterprise.id) if enterprise else "",
        "since": first.isoformat() if first else "",
        "until": last.isoformat() if last else "",
    }
    context = {
        "viewer": viewer,
        "active": "permits",
        "page": result,
        "rows": [
            {
                "p": p,
                "enterprise": names.get(p.enterprise_id, ""),
                "badge": status_badge(p.status),
                "level": PermitLevel(p.level).label,
                "raised": p.level != p.base_level,
            }
            for p in result.items
        ],
        "params": params,
        "statuses": STATUS_CHOICES,
        "filter_enterprise": enterprise,
        "may_apply": _may_apply(viewer),
        "pager": make_pager("/permits", params, result.page, result.pages, result.total),
    }
    name = "permits/_results.html" if is_htmx(request) else "permits/list.html"
    return render(request, name, context)


def _may_apply(viewer: Viewer) -> bool:
    return viewer.role in (Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER) and bool(
        viewer.enterprise_id
    )


# --- the application form ----------------------------------------------------------------
@dataclass
class PermitForm:
    """The form's values as typed (strings), kept when it is shown again."""

    place_description: str = ""
    site_id: str = ""
    hot_spot_polygon: str = ""
    hot_spot_lat: str = ""
    hot_spot_lon: str = ""
    hot_spot_radius_m: str = "10"
    methods: list[str] = field(default_factory=lambda: [HotWorkMethod.ELECTRIC_WELDING.value])
    base_level: str = PermitLevel.SECOND.value
    starts_at: str = ""
    ends_at: str = ""
    welder_ids: list[str] = field(default_factory=list)
    machine_ids: list[str] = field(default_factory=list)
    lead: str = ""
    fire_watch: str = ""
    fire_watch_trained: bool = True
    hazards: str = ""
    measures: list[str] | None = None  # None: the standard form's mandatory ones
    linked_permits: str = ""
    gas_analysis_required: bool = False
    special_equipment: bool = False
    check_in_interval_min: str = "30"
    crowded_exception: bool = False

    @classmethod
    def fresh(cls, now: datetime) -> PermitForm:
        start = (
            (now + timedelta(hours=1))
            .astimezone(SHANGHAI)
            .replace(minute=0, second=0, microsecond=0)
        )
        return cls(
            starts_at=datetime_input(start), ends_at=datetime_input(start + timedelta(hours=4))
        )


def _number(raw: str) -> float | None:
    try:
        return float(raw) if raw.strip() else None
    except ValueError:
        return None


def _ints(values: Sequence[str]) -> list[int]:
    return [n for n in (int_param(v) for v in values) if n is not None]


def _person(raw: str, choices: FormChoices) -> PersonInput | None:
    """``u<id>``: an account of the enterprise; ``w<id>``: a welder it employs."""
    if raw.startswith("u") and (user_id := int_param(raw[1:])) is not None:
        for account in choices.accounts:
            if account.id == user_id:
                name = account.display_name.strip() or account.username
                return PersonInput(name, account.id, account.welder_id)
    if raw.startswith("w") and (welder_id := int_param(raw[1:])) is not None:
        for welder in choices.welders:
            if welder.id == welder_id:
                own = next((a.id for a in choices.accounts if a.welder_id == welder.id), None)
                return PersonInput(welder.name, own, welder.id)
    return None


def _polygon_of(text: str) -> list[list[float]] | None:
    """The drawn area, a vertex ``纬度,经度`` a line; None when left empty.
    Raises ValueError when a line is not two numbers."""
    points = []
    for line in text.replace("，", ",").splitlines():
        if not line.strip():
            continue
        lat, lon = (float(x) for x in line.split(","))
        points.append([lat, lon])
    return points or None


def _input_of(form: PermitForm, choices: FormChoices) -> tuple[PermitInput, dict[str, str]]:
    """The service's input, and what the page itself could not read (by field)."""
    unreadable: dict[str, str] = {}
    try:
        polygon = _polygon_of(form.hot_spot_polygon)
    except ValueError:
        polygon = None
        unreadable["hot_spot_polygon"] = "动火区域每行填写一个顶点：纬度,经度"
    site_id = int_param(form.site_id)
    if form.site_id.strip() and site_id is None:
        unreadable["site_id"] = "请选择本企业的作业场所"
    measures = None
    if form.measures is not None:
        chosen = set(form.measures)
        measures = [
            MeasureInput(t.code, t.text, t.code in chosen) for t in STANDARD_SAFETY_MEASURES
        ]
    interval = int_param(form.check_in_interval_min)
    data = PermitInput(
        place_description=form.place_description,
        site_id=site_id,
        hot_spot_polygon=polygon,
        hot_spot_lat=_number(form.hot_spot_lat),
        hot_spot_lon=_number(form.hot_spot_lon),
        hot_spot_radius_m=_number(form.hot_spot_radius_m) or 0.0,
        methods=list(form.methods),
        base_level=form.base_level,
        starts_at=parse_datetime_input(form.starts_at),
        ends_at=parse_datetime_input(form.ends_at),
        welders=[WelderEntry(w) for w in _ints(form.welder_ids)],
        machine_ids=_ints(form.machine_ids),
        lead=_person(form.lead, choices),
        fire_watch=_person(form.fire_watch, choices),
        fire_watch_trained=form.fire_watch_trained,
        hazards=[h for h in form.hazards.splitlines() if h.strip()],
        measures=measures,
        linked_permits=[x for x in form.linked_permits.replace("，", ",").split(",") if x.strip()],
        gas_analysis_required=form.gas_analysis_required,
        special_equipment=form.special_equipment,
        check_in_interval_min=interval if interval is not None else 0,
        crowded_exception=form.crowded_exception,
    )
    return data, unreadable


def _form_of_row(row: Any, choices: FormChoices) -> PermitForm:
    def who(person: Mapping[str, Any]) -> str:
        if person.get("user_id"):
            return f"u{person['user_id']}"
        if person.get("welder_id"):
            return f"w{person['welder_id']}"
        return ""

    return PermitForm(
        place_description=row.place_description,
        site_id=str(row.site_id or ""),
        hot_spot_polygon="\n".join(f"{lat},{lon}" for lat, lon in row.hot_spot_polygon or ()),
        hot_spot_lat=str(row.hot_spot_lat),
        hot_spot_lon=str(row.hot_spot_lon),
        hot_spot_radius_m=f"{row.hot_spot_radius_m:g}",
        methods=list(row.methods),
        base_level=row.base_level,
        starts_at=datetime_input(row.starts_at),
        ends_at=datetime_input(row.ends_at),
        welder_ids=[str(w.welder_id) for w in row.welders],
        machine_ids=[str(x.machine_id) for x in row.machines],
        lead=who(row.lead),
        fire_watch=who(row.fire_watch),
        fire_watch_trained=bool(row.fire_watch.get("trained")),
        hazards="\n".join(row.hazards),
        measures=[x["code"] for x in row.measures if x.get("applicable")],
        linked_permits=", ".join(row.linked_permits),
        gas_analysis_required=row.gas_analysis_required,
        special_equipment=row.special_equipment,
        check_in_interval_min=str(row.check_in_interval_min),
        crowded_exception=row.crowded_exception is not None,
    )


FORM_FIELDS = {
    "place_description": "place_description",
    "hot_spot": "hot_spot",
    "hot_spot_lat": "hot_spot",
    "hot_spot_lon": "hot_spot",
    "hot_spot_radius_m": "hot_spot_radius_m",
    "hot_spot_polygon": "hot_spot_polygon",
    "methods": "methods",
    "base_level": "base_level",
    "level": "base_level",
    "starts_at": "starts_at",
    "ends_at": "ends_at",
    "welders": "welders",
    "machine_ids": "machine_ids",
    "lead.name": "lead",
    "fire_watch.name": "fire_watch",
    "hazards": "hazards",
    "check_in_interval_min": "check_in_interval_min",
    "site_id": "site_id",
}


def _errors_of(error: DomainError) -> tuple[dict[str, str], list[str]]:
    """Field errors by the form's field, and the reasons that belong to no field
    (the rules' refusals: certificates, machines, window, level…)."""
    fields: dict[str, str] = {}
    general: list[str] = []
    for detail in error.details:
        name = FORM_FIELDS.get(detail.field or "")
        if name is None and (detail.field or "").startswith("measures"):
            name = "measures"
        if name is not None:
            fields[name] = f"{fields[name]}；{detail.reason}" if name in fields else detail.reason
        else:
            general.append(detail.reason)
    if not fields and not general:
        general.append(error.message)
    return fields, general


def _form_page(
    request: Request,
    viewer: Viewer,
    session: DbSession,
    form: PermitForm,
    *,
    permit: Any = None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    enterprise_id = permit.enterprise_id if permit is not None else viewer.enterprise_id
    assert enterprise_id is not None
    service = PermitService(session)
    choices = service.repo.form_choices(enterprise_id, viewer.today)
    certificates = service.repo.certificates_of([w.id for w in choices.welders])
    held: dict[int, list[str]] = {}
    for c in certificates:
        held.setdefault(c.welder_id, []).append(
            f"{certificate_kind_label(c.kind)} {c.number_masked}"
        )
    level_note = ""
    starts, ends = parse_datetime_input(form.starts_at), parse_datetime_input(form.ends_at)
    if form.base_level in LEVEL_CHOICES and starts and ends and starts < ends:
        assessed = assess_level(
            PermitLevel(form.base_level),
            starts,
            ends,
            service.calendar_between(starts, ends),
            service.policy,
        )
        if assessed.raised:
            level_note = f"按规定升级为{assessed.level.label}管理：" + "；".join(assessed.because)
    chosen_methods = frozenset(HotWorkMethod(x) for x in form.methods if x in METHOD_CHOICES)
    mandatory = set(
        mandatory_measure_codes(
            chosen_methods,
            PermitLevel(form.base_level)
            if form.base_level in LEVEL_CHOICES
            else PermitLevel.SECOND,
        )
    )
    applicable = set(form.measures) if form.measures is not None else mandatory
    people = [
        (f"u{a.id}", f"{a.display_name or a.username}（{Role(a.role).label}）")
        for a in choices.accounts
    ] + [
        (f"w{w.id}", f"{w.name}（焊工）")
        for w in choices.welders
        if not any(a.welder_id == w.id for a in choices.accounts)
    ]
    return render(
        request,
        "permits/form.html",
        {
            "viewer": viewer,
            "active": "permits",
            "permit": permit,
            "form": form,
            "errors": errors or {},
            "general": general or [],
            "levels": LEVEL_CHOICES,
            "methods": METHOD_CHOICES,
            "welders": [{"w": w, "held": held.get(w.id, [])} for w in choices.welders],
            "machines": choices.machines,
            "sites": choices.sites,
            "people": people,
            "measures": [
                {"m": t, "mandatory": t.code in mandatory, "checked": t.code in applicable}
                for t in STANDARD_SAFETY_MEASURES
            ],
            "level_note": level_note,
        },
        status_code=status_code,
    )


def _require_applicant(viewer: Viewer) -> None:
    if not _may_apply(viewer):
        raise PermissionDenied("只有企业管理员和安全管理员可以申请动火作业票")


def _also_unreadable(save: Callable[[], T], unreadable: Mapping[str, str]) -> T:
    """Runs the service's save, then adds what the page could not read to its
    refusal, or refuses with those alone: every problem is shown at once, and the
    caller's savepoint keeps nothing of a refused save."""
    extra = [ErrorDetail(reason, name) for name, reason in unreadable.items()]
    try:
        result = save()
    except InvalidInput as error:
        raise InvalidInput(error.message, [*error.details, *extra]) from error
    if extra:
        raise InvalidInput("作业票: " + "；".join(d.reason for d in extra), extra)
    return result


@router.get("/permits/new")
def new_permit_page(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_applicant(viewer)
    return _form_page(request, viewer, session, PermitForm.fresh(viewer.now))


@dataclass
class FormFields:
    """The form's POST body (FastAPI reads repeated fields into the lists)."""

    place_description: str
    site_id: str
    hot_spot_polygon: str
    hot_spot_lat: str
    hot_spot_lon: str
    hot_spot_radius_m: str
    methods: list[str]
    base_level: str
    starts_at: str
    ends_at: str
    welder_ids: list[str]
    machine_ids: list[str]
    lead: str
    fire_watch: str
    fire_watch_trained: str
    hazards: str
    measures: list[str]
    measures_shown: str
    linked_permits: str
    gas_analysis_required: str
    special_equipment: str
    check_in_interval_min: str
    crowded_exception: str

    def form(self) -> PermitForm:
        return PermitForm(
            place_description=self.place_description,
            site_id=self.site_id,
            hot_spot_polygon=self.hot_spot_polygon,
            hot_spot_lat=self.hot_spot_lat,
            hot_spot_lon=self.hot_spot_lon,
            hot_spot_radius_m=self.hot_spot_radius_m,
            methods=self.methods,
            base_level=self.base_level,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            welder_ids=self.welder_ids,
            machine_ids=self.machine_ids,
            lead=self.lead,
            fire_watch=self.fire_watch,
            fire_watch_trained=bool(self.fire_watch_trained),
            hazards=self.hazards,
            measures=self.measures if self.measures_shown else None,
            linked_permits=self.linked_permits,
            gas_analysis_required=bool(self.gas_analysis_required),
            special_equipment=bool(self.special_equipment),
            check_in_interval_min=self.check_in_interval_min,
            crowded_exception=bool(self.crowded_exception),
        )


def form_fields(
    place_description: Annotated[str, Form(max_length=512)] = "",
    site_id: Annotated[str, Form(max_length=16)] = "",
    hot_spot_polygon: Annotated[str, Form(max_length=4000)] = "",
    hot_spot_lat: Annotated[str, Form(max_length=32)] = "",
    hot_spot_lon: Annotated[str, Form(max_length=32)] = "",
    hot_spot_radius_m: Annotated[str, Form(max_length=16)] = "",
    methods: Annotated[list[str] | None, Form()] = None,
    base_level: Annotated[str, Form(max_length=16)] = "",
    starts_at: Annotated[str, Form(max_length=32)] = "",
    ends_at: Annotated[str, Form(max_length=32)] = "",
    welder_ids: Annotated[list[str] | None, Form()] = None,
    machine_ids: Annotated[list[str] | None, Form()] = None,
    lead: Annotated[str, Form(max_length=16)] = "",
    fire_watch: Annotated[str, Form(max_length=16)] = "",
    fire_watch_trained: Annotated[str, Form(max_length=4)] = "",
    hazards: Annotated[str, Form(max_length=4000)] = "",
    measures: Annotated[list[str] | None, Form()] = None,
    measures_shown: Annotated[str, Form(max_length=4)] = "",
    linked_permits: Annotated[str, Form(max_length=512)] = "",
    gas_analysis_required: Annotated[str, Form(max_length=4)] = "",
    special_equipment: Annotated[str, Form(max_length=4)] = "",
    check_in_interval_min: Annotated[str, Form(max_length=8)] = "",
    crowded_exception: Annotated[str, Form(max_length=4)] = "",
) -> FormFields:
    return FormFields(
        place_description,
        site_id,
        hot_spot_polygon,
        hot_spot_lat,
        hot_spot_lon,
        hot_spot_radius_m,
        (methods or [])[:10],
        base_level,
        starts_at,
        ends_at,
        (welder_ids or [])[:200],
        (machine_ids or [])[:200],
        lead,
        fire_watch,
        fire_watch_trained,
        hazards,
        (measures or [])[:100],
        measures_shown,
        linked_permits,
        gas_analysis_required,
        special_equipment,
        check_in_interval_min,
        crowded_exception,
    )


PermitFormFields = Annotated[FormFields, Depends(form_fields)]


@router.post("/permits/new")
def create_permit_page(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    fields: PermitFormFields,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    _require_applicant(viewer)
    assert viewer.enterprise_id is not None
    form = fields.form()
    service = PermitService(session)
    choices = service.repo.form_choices(viewer.enterprise_id, viewer.today)
    data, unreadable = _input_of(form, choices)
    try:
        with session.begin_nested():
            row = _also_unreadable(
                lambda: service.create(viewer.scope, viewer.user, data, viewer.now), unreadable
            )
    except DomainError as error:
        errors, general = _errors_of(error)
        return _form_page(
            request,
            viewer,
            session,
            form,
            errors=errors,
            general=general,
            status_code=error.status_code,
        )
    return RedirectResponse(f"/permits/{row.id}?created=1", status_code=303)


@router.get("/permits/{permit_id}/edit")
def edit_permit_page(
    request: Request, permit_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    _require_applicant(viewer)
    service = PermitService(session)
    row = service.get(viewer.scope, permit_id)
    choices = service.repo.form_choices(row.enterprise_id, viewer.today)
    return _form_page(request, viewer, session, _form_of_row(row, choices), permit=row)


@router.post("/permits/{permit_id}/edit")
def save_permit_page(
    request: Request,
    permit_id: int,
    viewer: PageViewer,
    session: DbSession,
    fields: PermitFormFields,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    _require_applicant(viewer)
    service = PermitService(session)
    row = service.get(viewer.scope, permit_id)
    form = fields.form()
    choices = service.repo.form_choices(row.enterprise_id, viewer.today)
    data, unreadable = _input_of(form, choices)
    try:
        with session.begin_nested():
            _also_unreadable(
                lambda: service.edit(viewer.scope, viewer.user, permit_id, data, viewer.now),
                unreadable,
            )
    except DomainError as error:
        session.expire_all()
        errors, general = _errors_of(error)
        return _form_page(
            request,
            viewer,
            session,
            form,
            permit=service.get(viewer.scope, permit_id),
            errors=errors,
            general=general,
            status_code=error.status_code,
        )
    return RedirectResponse(f"/permits/{permit_id}?saved=1", status_code=303)


# --- the permit's page -----------------------------------------------------------------
@dataclass(frozen=True)
class StepProblem:
    kind: str
    message: str
    reasons: list[str]
    fields: dict[str, str]


def _detail(
    request: Request,
    viewer: Viewer,
    session: DbSession,
    permit_id: int,
    *,
    problem: StepProblem | None = None,
    values: Mapping[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
) -> Response:
    service = PermitService(session)
    loaded = service.load(viewer.scope, permit_id, viewer.now)
    row, permit = loaded.row, loaded.permit
    events = service.repo.events(row.id)
    content = permit.content
    certificates = service.repo.certificates_of(sorted(content.welder_ids))
    held: dict[int, list[Any]] = {}
    for c in certificates:
        if c.id in {
            cid for w in row.welders if w.welder_id == c.welder_id for cid in w.certificate_ids
        }:
            held.setdefault(c.welder_id, []).append(c)
    machines = {x.id: x for x in service.repo.machines(sorted(content.machine_ids))}
    confirmed = {c.code: c for c in permit.measure_confirmations}
    steps = steps_open_to(permit, viewer.user, viewer.scope)
    assessed = assess_level(
        content.base_level,
        content.starts_at,
        content.ends_at,
        service.calendar_between(content.starts_at, content.ends_at),
        service.policy,
    )
    return render(
        request,
        "permits/detail.html",
        {
            "viewer": viewer,
            "active": "permits",
            "row": row,
            "permit": permit,
            "content": content,
            "enterprise": loaded.enterprise,
            "status_tone": status_badge(row.status)[0],
            "status_label": status_badge(row.status)[1],
            "level_because": assessed.because if content.level != content.base_level else (),
            "welders": [
                {"w": w, "certificates": held.get(w.welder_id, [])} for w in content.welders
            ],
            "machines": [machines[i] for i in sorted(content.machine_ids) if i in machines],
            "measures": [{"m": x, "confirmed": confirmed.get(x.code)} for x in content.measures],
            "events": events,
            "event_labels": {k: t.label for k, t in EVENT_TYPES.items()}
            | dict(EXCEPTION_KINDS)
            | {"create": "填写作业票", "edit": "修改作业票", "expire": "到期"},
            "steps": steps,
            "step_buttons": STEP_BUTTONS,
            "photo_steps": PHOTO_STEPS,
            "note_steps": NOTE_STEPS,
            "confirm_steps": CONFIRM_STEPS,
            "open_measures": [
                x for x in content.measures if x.applicable and x.code not in confirmed
            ],
            "notices": NOTICE_CHOICES,
            "suspend_labels": {c.value: c.label for c in SuspendCause},
            "may_edit": _may_apply(viewer)
            and permit.status in (PermitStatus.DRAFT, PermitStatus.SUBMITTED),
            "problem": problem,
            "values": values or {},
            "message": message,
            "now_input": datetime_input(viewer.now),
            "max_photos": MAX_STEP_PHOTOS,
            "alarms": PermitAlarmRepository(session)
            .page(viewer.scope, PermitAlarmFilter(state="open", permit_id=row.id), 1, 20)
            .items,
            "live_path": link_signer_for(settings_of(request)).live_path(row.id, row.number),
        },
        status_code=status_code,
    )


MESSAGES = {
    "created": "作业票草稿已保存。核对无误后点击“提交审批”。",
    "saved": "修改已保存。",
}


@router.get("/permits/{permit_id}")
def permit_page(
    request: Request,
    permit_id: int,
    viewer: PageViewer,
    session: DbSession,
    created: str | None = None,
    saved: str | None = None,
    done: str | None = None,
) -> Response:
    message = ""
    if created:
        message = MESSAGES["created"]
    elif saved:
        message = MESSAGES["saved"]
    elif done and done in EVENT_TYPES:
        message = f"已完成：{EVENT_TYPES[done].label}。"
    elif done and done in EXCEPTION_KINDS:
        message = f"已登记：{EXCEPTION_KINDS[done]}。"
    return _detail(request, viewer, session, permit_id, message=message)


@router.post("/permits/{permit_id}/steps/{kind}")
def take_step(
    request: Request,
    permit_id: int,
    kind: str,
    viewer: PageViewer,
    session: DbSession,
    photos: Annotated[list[UploadFile] | None, File()] = None,
    note: Annotated[str, Form(max_length=1000)] = "",
    taken_at: Annotated[str, Form(max_length=32)] = "",
    gas: Annotated[str, Form(max_length=64)] = "",
    lel_percent: Annotated[str, Form(max_length=16)] = "",
    reading_percent: Annotated[str, Form(max_length=16)] = "",
    analyst: Annotated[str, Form(max_length=128)] = "",
    lat: Annotated[str, Form(max_length=32)] = "",
    lon: Annotated[str, Form(max_length=32)] = "",
    code: Annotated[str, Form(max_length=64)] = "",
    location: Annotated[str, Form(max_length=16)] = "",
    no_embers: Annotated[str, Form(max_length=4)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    if kind not in EVENT_TYPES:
        raise NotFound("没有这个步骤")
    values = {
        "note": note,
        "taken_at": taken_at,
        "gas": gas,
        "lel_percent": lel_percent,
        "reading_percent": reading_percent,
        "analyst": analyst,
        "code": code,
        "location": location,
    }
    data: dict[str, Any] = {"note": note} if note.strip() else {}
    if kind == "gas_sample":
        moment = parse_datetime_input(taken_at)
        data |= {
            "taken_at": moment.isoformat() if moment else taken_at,
            "gas": gas,
            "lel_percent": _number(lel_percent)
            if _number(lel_percent) is not None
            else lel_percent,
            "reading_percent": _number(reading_percent)
            if _number(reading_percent) is not None
            else reading_percent,
            "analyst": analyst,
        }
    if kind == "confirm_measure":
        data["code"] = code
    if kind == "confirm_notice":
        data["location"] = location
    if kind == "dispose":
        data["no_embers"] = bool(no_embers)
    position_lat, position_lon = _number(lat), _number(lon)
    if position_lat is not None and position_lon is not None:
        data["position"] = {"lat": position_lat, "lon": position_lon}
    # The permit must be in scope before anything is stored for it.
    service = PermitService(
        session,
        device_secrets=device_secrets(settings_of(request).resolved_secret_key()),
        lock_ttl_s=settings_of(request).unlock_command_ttl_s,
    )
    service.get(viewer.scope, permit_id)
    stored: list[str] = []
    data_dir = settings_of(request).data_dir
    try:
        uploads = [p for p in photos or [] if p.filename]
        if len(uploads) > MAX_STEP_PHOTOS:
            return _step_refused(
                request,
                viewer,
                session,
                permit_id,
                kind,
                values,
                f"最多上传 {MAX_STEP_PHOTOS} 张照片",
            )
        for upload in uploads:
            read = read_photo(upload.file)
            if isinstance(read, PhotoRejected):
                return _step_refused(request, viewer, session, permit_id, kind, values, read.reason)
            content, extension = read
            stored.append(store_photo(data_dir, content, extension))
        if stored:
            data["photos"] = stored
        with session.begin_nested():
            service.apply(viewer.scope, viewer.user, permit_id, kind, data, viewer.now)
    except DomainError as error:
        remove_photos(data_dir, stored)
        session.expire_all()
        fields, general = {}, []
        for detail in error.details:
            name = detail.field or ""
            if name in values or name in ("position", "photos"):
                fields[name] = detail.reason
            else:
                general.append(detail.reason)
        problem = StepProblem(kind, error.message, general, fields)
        return _detail(
            request,
            viewer,
            session,
            permit_id,
            problem=problem,
            values=values,
            status_code=error.status_code,
        )
    except BaseException:
        remove_photos(data_dir, stored)
        raise
    return RedirectResponse(f"/permits/{permit_id}?done={kind}#steps", status_code=303)


def _step_refused(
    request: Request,
    viewer: Viewer,
    session: DbSession,
    permit_id: int,
    kind: str,
    values: Mapping[str, str],
    reason: str,
) -> Response:
    problem = StepProblem(kind, reason, [], {"photos": reason})
    return _detail(
        request, viewer, session, permit_id, problem=problem, values=values, status_code=422
    )


@router.get("/permits/{permit_id}/photos/{folder}/{name}")
def permit_photo(
    request: Request, permit_id: int, folder: str, name: str, viewer: PageViewer, session: DbSession
) -> Response:
    """A photo of one of the permit's steps, to whoever may see the permit."""
    key = f"{folder}/{name}"
    path = PermitService(session).photo_path(
        viewer.scope, permit_id, key, settings_of(request).data_dir
    )
    return FileResponse(
        path, media_type=photo_media_type(key), headers={"Cache-Control": "private, max-age=3600"}
    )
