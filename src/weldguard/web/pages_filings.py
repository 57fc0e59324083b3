"""Pages for what is declared to, or filed with, the authorities before hot work:
mobile jobs (流动作业报备: a contractor or a mobile welder declares, on the phone,
a job at a client's premises) and small works (限额以下小型工程备案: an enterprise
files works with the street, whose regulators check and close them).

Every read, write and permission goes through the services behind the JSON API
(``permit.mobile_service``, ``filing.service``): a record outside the viewer's
reach is a 404, a role that may not act a 403. Forms carry the CSRF token, show
each error next to its field at 422 with the values kept (nothing written), and
redirect after a successful post (303)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from weldguard.deps import DbSession
from weldguard.domain.ids import InvalidIdentifier, normalize_credit_code
from weldguard.domain.mobile_jobs import STATE_LABELS, end_transition, is_live, job_state
from weldguard.domain.small_works import STATUS_LABELS, CheckResult, may_close
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from weldguard.filing.models import SmallWorkFiling
from weldguard.filing.service import (
    FILER_ROLES,
    HOT_WORK_METHODS,
    OWNER_KINDS,
    CheckInput,
    FilingInput,
    FilingService,
)
from weldguard.jurisdiction.models import Level
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.machine.models import Machine, MachineStatus
from weldguard.machine.repository import MachineFilter, MachineRepository
from weldguard.pagination import Page
from weldguard.permit.mobile_models import MobileJob
from weldguard.permit.mobile_service import (
    DECLARER_ROLES,
    MAX_CREW,
    MAX_PHOTOS,
    MobileJobInput,
    MobileJobService,
)
from weldguard.photos import (
    MAX_PHOTO_BYTES,
    PhotoRejected,
    photo_file,
    photo_media_type,
    read_photo,
    remove_photos,
    store_photo,
)
from weldguard.web.common import (
    SHANGHAI,
    bool_param,
    choice_param,
    date_param,
    datetime_input,
    filter_enterprise,
    int_param,
    is_htmx,
    make_pager,
    parse_datetime_input,
    place_label,
    render,
    settings_of,
    text_param,
)
from weldguard.web.context import PageViewer, Viewer, area_options, resolve_area
from weldguard.web.csrf import verify_csrf
from weldguard.welder.models import Welder
from weldguard.welder.repository import WelderFilter, WelderRepository

router = APIRouter()

T = TypeVar("T")
Errors = dict[str, list[str]]

JOB_STATE_TONES = {"upcoming": "info", "active": "ok", "ended": "muted", "cancelled": "muted"}
FILING_STATUS_TONES = {
    "filed": "info",
    "checked": "ok",
    "rectification_required": "warn",
    "closed": "muted",
}
CHECK_RESULT_TONES = {CheckResult.PASSED.value: "ok", CheckResult.RECTIFY.value: "warn"}
# A crew picker longer than this is no use on a phone; more can be typed as codes.
PICKER_LIMIT = 200
DEFAULT_JOB_HOURS = 8


# --- shared helpers ---------------------------------------------------------------
def _field_errors(error: DomainError) -> Errors:
    errors: Errors = {}
    for detail in error.details:
        errors.setdefault(detail.field or "form", []).append(detail.reason)
    if not errors:
        errors["form"] = [error.message]
    return errors


def _attempt(
    session: Session, page_errors: Errors, action: Callable[[], T]
) -> tuple[T | None, Errors]:
    """Runs the service even when the page already found a problem (a date it
    could not read, a photo refused), so that every error shows at once; a
    success is then undone, since the page's problem stands."""
    errors: Errors = {name: list(reasons) for name, reasons in page_errors.items()}
    try:
        result = action()
    except InvalidInput as error:
        for name, reasons in _field_errors(error).items():
            # The page's message is the precise one for a value it could not read.
            errors.setdefault(name, reasons)
        return None, errors
    if errors:
        session.rollback()
        return None, errors
    return result, errors


def _when(errors: Errors, name: str, raw: str, label: str) -> datetime | None:
    if not raw.strip():
        return None  # the service names a missing value
    value = parse_datetime_input(raw)
    if value is None:
        errors[name] = [f"{label}格式无效，请按“年-月-日 时:分”填写"]
    return value


def _enterprise_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """Names of the enterprises a visible record names (its contractor or client
    may lie outside the viewer's own reach: the record itself shows who they are)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = session.execute(select(Enterprise.id, Enterprise.name).where(Enterprise.id.in_(wanted)))
    return {enterprise_id: name for enterprise_id, name in rows}


def _node_label(session: Session, jurisdiction_id: int) -> str:
    node = JurisdictionRepository(session).by_id(jurisdiction_id)
    return place_label(node.full_name) if node else ""


@dataclass(frozen=True)
class PlaceOption:
    code: str
    label: str
    level: str


def _city_path(area_path: str) -> str:
    parts = [p for p in area_path.split("/") if p]
    return "/".join(parts[:2]) + "/" if len(parts) >= 2 else area_path


def _place_options(
    session: Session, viewer: Viewer, home: Sequence[Enterprise], streets_only: bool
) -> list[PlaceOption]:
    """The districts and streets a place may be picked from: the cities the
    viewer's enterprise(s) lie in (everything for the admin), in division-code
    order, each district before its streets."""
    repo = JurisdictionRepository(session)
    if viewer.scope.everything:
        nodes = repo.all()
    else:
        nodes = []
        for city in sorted({_city_path(e.area_path) for e in home}):
            nodes.extend(repo.subtree(city))
    districts = {n.path: n.name for n in nodes if n.level == Level.DISTRICT}
    options: list[PlaceOption] = []
    for node in nodes:
        if node.level == Level.STREET:
            parent = districts.get(node.path.rsplit("/", 2)[0] + "/", "")
            options.append(PlaceOption(node.code, f"{parent} · {node.name}", node.level))
        elif node.level == Level.DISTRICT and not streets_only:
            options.append(PlaceOption(node.code, f"{node.name}（区县）", node.level))
    return options


def _own_enterprises(session: Session, viewer: Viewer) -> list[Enterprise]:
    """The viewer's own enterprise (enterprise roles) or employers (a welder)."""
    if viewer.scope.everything:
        return []
    return EnterpriseRepository(session).all_visible(viewer.scope)


def _enterprise_by_code(
    session: Session, viewer: Viewer, raw: str, errors: Errors, name: str
) -> Enterprise | None:
    """The admin names an enterprise by its credit code (the register is too large
    for a list)."""
    if not raw.strip():
        return None
    try:
        code = normalize_credit_code(raw)
    except InvalidIdentifier as exc:
        errors[name] = [f"统一社会信用代码无效：{exc.reason}"]
        return None
    found = EnterpriseRepository(session).visible_by_credit_code(viewer.scope, code)
    if found is None:
        errors[name] = ["该统一社会信用代码的企业未在平台登记"]
    return found


def _serve_photo(request: Request, relative: str) -> Response:
    path = photo_file(settings_of(request).data_dir, relative)
    if path is None:
        raise NotFound("照片不存在")
    return FileResponse(
        path,
        media_type=photo_media_type(relative),
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


def _uploads(files: Sequence[UploadFile | str] | None) -> list[UploadFile]:
    # A file input left empty still sends one part, without a file name, which
    # arrives as an empty text value.
    return [f for f in files or [] if not isinstance(f, str) and f.filename]


def _read_photos(
    uploads: Sequence[UploadFile], errors: Errors, name: str
) -> list[tuple[bytes, str]]:
    read: list[tuple[bytes, str]] = []
    for upload in uploads:
        result = read_photo(upload.file)
        if isinstance(result, PhotoRejected):
            errors.setdefault(name, []).append(f"{(upload.filename or '')[:64]}：{result.reason}")
        else:
            read.append(result)
    return read


# --- mobile jobs: list --------------------------------------------------------------
@dataclass(frozen=True)
class JobRow:
    job: MobileJob
    state: str
    state_label: str
    tone: str
    contractor: str
    client: str
    # The contractor as a list filter, when the viewer may see that enterprise.
    contractor_link: int | None


def _job_rows(session: Session, viewer: Viewer, jobs: Sequence[MobileJob]) -> list[JobRow]:
    contractors = [j.contractor_enterprise_id for j in jobs]
    names = _enterprise_names(session, contractors)
    visible = EnterpriseRepository(session).visible_by_ids(
        viewer.scope, sorted({i for i in contractors if i is not None})
    )
    welders = WelderRepository(session).names_by_ids(
        sorted({j.declared_by_welder_id for j in jobs if j.declared_by_welder_id is not None})
    )
    rows = []
    for job in jobs:
        state = job_state(job.status, job.starts_at, job.ends_at, viewer.now).value
        if job.contractor_enterprise_id is not None:
            contractor = names.get(job.contractor_enterprise_id, "")
        else:
            contractor = f"{welders.get(job.declared_by_welder_id or 0, '')}（焊工个人报备）"
        link = job.contractor_enterprise_id
        rows.append(
            JobRow(
                job=job,
                state=state,
                state_label=STATE_LABELS[state],
                tone=JOB_STATE_TONES.get(state, "muted"),
                contractor=contractor,
                client=job.client_name,  # a registered client's name, copied
                contractor_link=link if link in visible and not viewer.is_welder else None,
            )
        )
    return rows


def _day_window(raw: str | None) -> tuple[datetime, datetime] | None:
    day = date_param(raw)
    if day is None:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


@router.get("/mobile-jobs")
def mobile_job_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    params = request.query_params
    enterprise = (
        None
        if viewer.is_welder
        else filter_enterprise(session, viewer.scope, params.get("enterprise_id"))
    )
    state = choice_param(params.get("state"), STATE_LABELS)
    page = MobileJobService(session).list_page(
        viewer.scope,
        state,
        viewer.now,
        int_param(params.get("page")) or 1,
        settings_of(request).page_size,
        enterprise_id=enterprise.id if enterprise else None,
        between=_day_window(params.get("date")),
    )
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "mobile_jobs",
        "page": page,
        "rows": _job_rows(session, viewer, page.items),
        "pager": make_pager("/mobile-jobs", params, page.page, page.pages, page.total),
        "params": params,
        "states": STATE_LABELS,
        "filter_enterprise": enterprise,
        "may_declare": viewer.role in DECLARER_ROLES,
    }
    template = "mobile_jobs/_results.html" if is_htmx(request) else "mobile_jobs/list.html"
    return render(request, template, context)


# --- mobile jobs: declaring -----------------------------------------------------------
class JobFormIn(BaseModel):
    """The declaration form as typed: text, read by the page and the service."""

    csrf_token: str = Field(default="", max_length=256)
    contractor_enterprise_id: str = Field(default="", max_length=16)
    starts_at: str = Field(default="", max_length=32)
    ends_at: str = Field(default="", max_length=32)
    client_credit_code: str = Field(default="", max_length=32)
    client_name: str = Field(default="", max_length=256)
    client_contact: str = Field(default="", max_length=128)
    client_phone: str = Field(default="", max_length=64)
    address: str = Field(default="", max_length=512)
    area: str = Field(default="", max_length=16)
    latitude: str = Field(default="", max_length=32)
    longitude: str = Field(default="", max_length=32)
    fire_watch_name: str = Field(default="", max_length=128)
    fire_watch_phone: str = Field(default="", max_length=64)
    description: str = Field(default="", max_length=1024)
    welder_ids: list[str] = Field(default_factory=list, max_length=4 * MAX_CREW)
    machine_ids: list[str] = Field(default_factory=list, max_length=4 * MAX_CREW)
    machine_codes: str = Field(default="", max_length=1024)


@dataclass
class Crew:
    """What the declaration form offers to pick: the contractor's welders and
    machines (a welder: themself and their employers' machines)."""

    contractor: Enterprise | None = None
    welders: list[Welder] = field(default_factory=list)
    machines: list[Machine] = field(default_factory=list)
    places: list[PlaceOption] = field(default_factory=list)
    needs_contractor: bool = False


def _require_declarer(viewer: Viewer) -> None:
    if viewer.role not in DECLARER_ROLES:
        raise PermissionDenied("当前账号无权报备流动作业")


def _crew(session: Session, viewer: Viewer, contractor: Enterprise | None) -> Crew:
    scope = viewer.scope
    machines_repo = MachineRepository(session)
    crew = Crew(contractor=contractor)
    if viewer.is_welder:
        home = _own_enterprises(session, viewer)
        machine_filter = MachineFilter()
    elif scope.everything:
        crew.needs_contractor = contractor is None
        home = [contractor] if contractor else []
        machine_filter = MachineFilter(enterprise_id=contractor.id if contractor else -1)
    else:
        home = _own_enterprises(session, viewer)
        crew.contractor = home[0] if home else None
        machine_filter = MachineFilter(enterprise_id=scope.enterprise_id)
    if crew.contractor is not None:
        crew.welders = list(
            WelderRepository(session)
            .search(
                scope, WelderFilter(enterprise_id=crew.contractor.id), viewer.today, 1, PICKER_LIMIT
            )
            .items
        )
    if not crew.needs_contractor:
        crew.machines = [
            m
            for m in machines_repo.search(scope, machine_filter, 1, PICKER_LIMIT).items
            if m.status != MachineStatus.RETIRED.value
        ]
    crew.places = _place_options(session, viewer, home, streets_only=False)
    return crew


def _blank_job_form(viewer: Viewer, contractor: Enterprise | None) -> JobFormIn:
    start = viewer.now.replace(second=0, microsecond=0)
    return JobFormIn(
        contractor_enterprise_id=str(contractor.id) if contractor else "",
        starts_at=datetime_input(start),
        ends_at=datetime_input(start + timedelta(hours=DEFAULT_JOB_HOURS)),
    )


def _job_form_page(
    request: Request,
    viewer: Viewer,
    crew: Crew,
    form: JobFormIn,
    *,
    contractor_code: str = "",
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "mobile_jobs/form.html",
        {
            "viewer": viewer,
            "active": "mobile_jobs",
            "crew": crew,
            "form": form,
            "contractor_code": contractor_code,
            "errors": errors or {},
            "max_photos": MAX_PHOTOS,
            "max_photo_mb": MAX_PHOTO_BYTES // 1024 // 1024,
        },
        status_code=status_code,
    )


@router.get("/mobile-jobs/new")
def mobile_job_new(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_declarer(viewer)
    errors: Errors = {}
    code = text_param(request.query_params.get("contractor"), 32) or ""
    contractor = None
    if viewer.scope.everything:
        contractor = _enterprise_by_code(session, viewer, code, errors, "contractor_enterprise_id")
    crew = _crew(session, viewer, contractor)
    form = _blank_job_form(viewer, crew.contractor if viewer.scope.everything else None)
    return _job_form_page(
        request,
        viewer,
        crew,
        form,
        contractor_code=code,
        errors=errors,
        status_code=422 if errors else 200,
    )


def _ids(raw: Sequence[str], errors: Errors, name: str, label: str) -> list[int]:
    ids: list[int] = []
    for value in raw:
        number = int_param(value)
        if number is None:
            errors.setdefault(name, []).append(f"{label}编号无效")
        else:
            ids.append(number)
    return ids


def _machine_codes(session: Session, raw: str, errors: Errors) -> list[int]:
    """Machines named by their label codes (a client's machine is not in the
    picker); the label resolves for anyone holding it, as a scan does."""
    ids: list[int] = []
    repo = MachineRepository(session)
    for code in raw.replace("，", ",").replace("、", ",").replace(",", " ").split():
        machine = repo.by_code(code.strip().upper())
        if machine is None:
            errors.setdefault("machine_ids", []).append(f"焊机编码 {code[:16]} 不存在")
        else:
            ids.append(machine.id)
    return ids


def _coordinate(raw: str, errors: Errors, name: str, label: str) -> float | None:
    text = raw.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        errors[name] = [f"{label}须为数字（WGS-84 十进制度，如 31.2201）"]
        return None


@router.post("/mobile-jobs/new")
def mobile_job_declare(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    form: Annotated[JobFormIn, Form()],
    photos: Annotated[list[UploadFile | str] | None, File()] = None,
) -> Response:
    verify_csrf(request, form.csrf_token)
    _require_declarer(viewer)
    errors: Errors = {}
    contractor: Enterprise | None = None
    contractor_id = int_param(form.contractor_enterprise_id)
    if viewer.scope.everything and contractor_id is not None:
        contractor = EnterpriseRepository(session).visible(viewer.scope, contractor_id)
    uploads = _uploads(photos)
    if len(uploads) > MAX_PHOTOS:
        errors["photos"] = [f"每项流动作业最多 {MAX_PHOTOS} 张照片"]
    read = _read_photos(uploads[:MAX_PHOTOS], errors, "photos")
    data = MobileJobInput(
        starts_at=_when(errors, "starts_at", form.starts_at, "开始时间"),
        ends_at=_when(errors, "ends_at", form.ends_at, "结束时间"),
        address=form.address,
        area=form.area,
        latitude=_coordinate(form.latitude, errors, "latitude", "纬度"),
        longitude=_coordinate(form.longitude, errors, "longitude", "经度"),
        client_credit_code=form.client_credit_code,
        client_name=form.client_name,
        client_contact=form.client_contact,
        client_phone=form.client_phone,
        fire_watch_name=form.fire_watch_name,
        fire_watch_phone=form.fire_watch_phone,
        description=form.description,
        welder_ids=_ids(form.welder_ids, errors, "welder_ids", "焊工"),
        machine_ids=[
            *_ids(form.machine_ids, errors, "machine_ids", "焊机"),
            *_machine_codes(session, form.machine_codes, errors),
        ],
        contractor_enterprise_id=contractor_id if viewer.scope.everything else None,
    )
    service = MobileJobService(session)
    job, errors = _attempt(
        session, errors, lambda: service.declare(viewer.scope, data, viewer.user.id, viewer.now)
    )
    if job is None:
        crew = _crew(session, viewer, contractor)
        return _job_form_page(
            request,
            viewer,
            crew,
            form,
            contractor_code=contractor.credit_code if contractor else "",
            errors=errors,
            status_code=422,
        )
    data_dir = settings_of(request).data_dir
    stored: list[str] = []

    def keep(content: bytes, extension: str) -> Callable[[], str]:
        def write() -> str:
            stored.append(store_photo(data_dir, content, extension))
            return stored[-1]

        return write

    try:
        for content, extension in read:
            service.add_photo(viewer.scope, job.id, keep(content, extension), viewer.now)
    except BaseException:
        remove_photos(data_dir, stored)
        raise
    return RedirectResponse(f"/mobile-jobs/{job.id}?declared=1", status_code=303)


# --- mobile jobs: one job ---------------------------------------------------------------
@dataclass(frozen=True)
class CrewMember:
    name: str
    id_number_masked: str


@dataclass(frozen=True)
class JobMachine:
    code: str
    label: str
    owner: str


def _job_page(
    request: Request,
    viewer: Viewer,
    session: Session,
    job: MobileJob,
    *,
    message: str = "",
    problem: str = "",
    photo_errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    service = MobileJobService(session)
    row = _job_rows(session, viewer, [job])[0]
    welder_ids = [w.welder_id for w in job.welders]
    machine_ids = [m.machine_id for m in job.machines]
    welders = (
        list(session.scalars(select(Welder).where(Welder.id.in_(welder_ids)).order_by(Welder.id)))
        if welder_ids
        else []
    )
    machines = (
        list(
            session.scalars(select(Machine).where(Machine.id.in_(machine_ids)).order_by(Machine.id))
        )
        if machine_ids
        else []
    )
    owners = _enterprise_names(session, [m.enterprise_id for m in machines])
    visible = EnterpriseRepository(session).visible_by_ids(
        viewer.scope,
        [i for i in (job.contractor_enterprise_id, job.client_enterprise_id) if i is not None],
    )
    may_manage = service.may_manage(viewer.scope, job)
    transition = end_transition(job.status, job.starts_at, job.ends_at, viewer.now)
    return render(
        request,
        "mobile_jobs/detail.html",
        {
            "viewer": viewer,
            "active": "mobile_jobs",
            "job": job,
            "row": row,
            "area": _node_label(session, job.jurisdiction_id),
            "welders": [CrewMember(w.name, w.id_number_masked) for w in welders],
            "machines": [
                JobMachine(m.code, f"{m.make} {m.model}", owners.get(m.enterprise_id, ""))
                for m in machines
            ],
            "visible_enterprises": visible,
            "photo_count": len(job.photos),
            "may_cancel": may_manage and transition is not None,
            "cancel_ends": transition is not None and job.starts_at <= viewer.now,
            "may_add_photo": may_manage
            and is_live(job.status, job.ends_at, viewer.now)
            and len(job.photos) < MAX_PHOTOS,
            "max_photos": MAX_PHOTOS,
            "max_photo_mb": MAX_PHOTO_BYTES // 1024 // 1024,
            "message": message,
            "problem": problem,
            "errors": photo_errors or {},
        },
        status_code=status_code,
    )


JOB_MESSAGES = {
    "declared": "流动作业已报备。作业期间可继续上传现场照片。",
    "cancelled": "已撤销该流动作业报备。",
    "ended": "已结束该流动作业，此后扫码不再以此报备放行。",
    "photo": "现场照片已上传。",
}


def _message(request: Request, messages: Mapping[str, str]) -> str:
    for key, text in messages.items():
        if request.query_params.get(key):
            return text
    return ""


@router.get("/mobile-jobs/{job_id}")
def mobile_job_detail(
    request: Request, job_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    job = MobileJobService(session).get(viewer.scope, job_id)
    return _job_page(request, viewer, session, job, message=_message(request, JOB_MESSAGES))


@router.post("/mobile-jobs/{job_id}/cancel")
def mobile_job_cancel(
    request: Request,
    job_id: int,
    viewer: PageViewer,
    session: DbSession,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    service = MobileJobService(session)
    try:
        job = service.cancel(viewer.scope, job_id, viewer.user.id, viewer.now)
    except Conflict as error:
        found = service.get(viewer.scope, job_id)
        return _job_page(request, viewer, session, found, problem=error.message, status_code=409)
    outcome = "cancelled" if job.status == "cancelled" else "ended"
    return RedirectResponse(f"/mobile-jobs/{job.id}?{outcome}=1", status_code=303)


@router.post("/mobile-jobs/{job_id}/photos")
def mobile_job_add_photo(
    request: Request,
    job_id: int,
    viewer: PageViewer,
    session: DbSession,
    photo: Annotated[UploadFile | str | None, File()] = None,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    service = MobileJobService(session)
    job = service.get(viewer.scope, job_id)
    errors: Errors = {}
    uploads = _uploads([photo] if photo is not None else [])
    if not uploads:
        errors["photo"] = ["请选择或拍摄现场照片"]
    read = _read_photos(uploads, errors, "photo")
    if errors or not read:
        if not service.may_manage(viewer.scope, job):
            raise PermissionDenied("只有报备单位（或报备的焊工本人）可以上传现场照片")
        return _job_page(request, viewer, session, job, photo_errors=errors, status_code=422)
    content, extension = read[0]
    data_dir = settings_of(request).data_dir
    stored: list[str] = []

    def write() -> str:
        stored.append(store_photo(data_dir, content, extension))
        return stored[-1]

    try:
        job = service.add_photo(viewer.scope, job_id, write, viewer.now)
    except Conflict as error:
        return _job_page(request, viewer, session, job, problem=error.message, status_code=409)
    except BaseException:
        remove_photos(data_dir, stored)
        raise
    return RedirectResponse(f"/mobile-jobs/{job.id}?photo=1", status_code=303)


@router.get("/mobile-jobs/{job_id}/photos/{index}")
def mobile_job_photo(
    request: Request, job_id: int, index: int, viewer: PageViewer, session: DbSession
) -> Response:
    job = MobileJobService(session).get(viewer.scope, job_id)
    if not 0 <= index < len(job.photos):
        raise NotFound("照片不存在")
    return _serve_photo(request, job.photos[index])


# --- small works: list ------------------------------------------------------------------
@dataclass(frozen=True)
class FilingRow:
    filing: SmallWorkFiling
    label: str
    tone: str
    filer: str


def _filing_rows(session: Session, filings: Sequence[SmallWorkFiling]) -> list[FilingRow]:
    names = _enterprise_names(session, [f.enterprise_id for f in filings])
    return [
        FilingRow(
            filing=f,
            label=STATUS_LABELS.get(f.status, f.status),
            tone=FILING_STATUS_TONES.get(f.status, "muted"),
            filer=names.get(f.enterprise_id, ""),
        )
        for f in filings
    ]


@router.get("/small-works")
def small_works_list(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    params = request.query_params
    node = resolve_area(session, viewer.scope, text_param(params.get("area")))
    page: Page[SmallWorkFiling] = FilingService(session).list_page(
        viewer.scope,
        choice_param(params.get("status"), STATUS_LABELS),
        node.path if node else None,
        int_param(params.get("page")) or 1,
        settings_of(request).page_size,
    )
    streets = {f.jurisdiction_id: _node_label(session, f.jurisdiction_id) for f in page.items}
    context: dict[str, object] = {
        "viewer": viewer,
        "active": "small_works",
        "page": page,
        "rows": _filing_rows(session, page.items),
        "streets": streets,
        "pager": make_pager("/small-works", params, page.page, page.pages, page.total),
        "params": params,
        "statuses": STATUS_LABELS,
        "areas": area_options(session, viewer.scope),
        "selected_area": node.code if node else "",
        "may_file": viewer.role in FILER_ROLES,
    }
    template = "small_works/_results.html" if is_htmx(request) else "small_works/list.html"
    return render(request, template, context)


# --- small works: filing ----------------------------------------------------------------
class FilingFormIn(BaseModel):
    csrf_token: str = Field(default="", max_length=256)
    enterprise_code: str = Field(default="", max_length=32)
    owner_kind: str = Field(default="", max_length=16)
    owner_credit_code: str = Field(default="", max_length=32)
    owner_name: str = Field(default="", max_length=256)
    owner_phone: str = Field(default="", max_length=64)
    address: str = Field(default="", max_length=512)
    street: str = Field(default="", max_length=16)
    description: str = Field(default="", max_length=1024)
    expected_start: str = Field(default="", max_length=16)
    expected_end: str = Field(default="", max_length=16)
    contractor_credit_code: str = Field(default="", max_length=32)
    contractor_name: str = Field(default="", max_length=256)
    hot_work: str = Field(default="", max_length=8)
    hot_work_method: str = Field(default="", max_length=64)
    contact_name: str = Field(default="", max_length=128)
    contact_phone: str = Field(default="", max_length=64)


def _require_filer(viewer: Viewer) -> None:
    if viewer.role not in FILER_ROLES:
        raise PermissionDenied("当前账号无权办理小型工程备案")


def _filing_form_page(
    request: Request,
    viewer: Viewer,
    session: Session,
    form: FilingFormIn,
    *,
    errors: Errors | None = None,
    status_code: int = 200,
) -> Response:
    home = _own_enterprises(session, viewer)
    return render(
        request,
        "small_works/form.html",
        {
            "viewer": viewer,
            "active": "small_works",
            "form": form,
            "errors": errors or {},
            "streets": _place_options(session, viewer, home, streets_only=True),
            "owner_kinds": OWNER_KINDS,
            "methods": HOT_WORK_METHODS,
            "filer": home[0] if home else None,
            "min_date": viewer.today.isoformat(),
        },
        status_code=status_code,
    )


@router.get("/small-works/new")
def small_works_new(request: Request, viewer: PageViewer, session: DbSession) -> Response:
    _require_filer(viewer)
    form = FilingFormIn(owner_kind="person", hot_work="1", hot_work_method=HOT_WORK_METHODS[0])
    return _filing_form_page(request, viewer, session, form)


def _day(errors: Errors, name: str, raw: str, label: str) -> date | None:
    if not raw.strip():
        return None
    day = date_param(raw)
    if day is None:
        errors[name] = [f"{label}格式无效，请按“年-月-日”填写"]
    return day


@router.post("/small-works/new")
def small_works_file(
    request: Request,
    viewer: PageViewer,
    session: DbSession,
    form: Annotated[FilingFormIn, Form()],
) -> Response:
    verify_csrf(request, form.csrf_token)
    _require_filer(viewer)
    errors: Errors = {}
    filer = None
    if viewer.scope.everything:
        filer = _enterprise_by_code(session, viewer, form.enterprise_code, errors, "enterprise_id")
    start = _day(errors, "expected_start", form.expected_start, "预计开工日期")
    end = _day(errors, "expected_end", form.expected_end, "预计完工日期")
    data = FilingInput(
        owner_kind=form.owner_kind,
        owner_credit_code=form.owner_credit_code if form.owner_kind == "enterprise" else "",
        owner_name=form.owner_name,
        owner_phone=form.owner_phone,
        address=form.address,
        street=form.street,
        description=form.description,
        expected_start=start,
        expected_end=end,
        contractor_credit_code=form.contractor_credit_code,
        contractor_name=form.contractor_name,
        hot_work=bool_param(form.hot_work),
        hot_work_method=form.hot_work_method,
        contact_name=form.contact_name,
        contact_phone=form.contact_phone,
        enterprise_id=filer.id if filer else None,
    )
    filing, errors = _attempt(
        session,
        errors,
        lambda: FilingService(session).file(viewer.scope, data, viewer.user.id, viewer.now),
    )
    if filing is None:
        return _filing_form_page(request, viewer, session, form, errors=errors, status_code=422)
    return RedirectResponse(f"/small-works/{filing.id}?filed=1", status_code=303)


# --- small works: one filing, checks, closing --------------------------------------------
@dataclass
class CheckForm:
    result: str = ""
    notes: str = ""
    checked_at: str = ""


FILING_MESSAGES = {
    "filed": "已向工程所在街道（乡镇）备案。",
    "checked": "核查记录已保存。",
    "closed": "该备案已办结。",
}


def _filing_page(
    request: Request,
    viewer: Viewer,
    session: Session,
    filing: SmallWorkFiling,
    *,
    check_form: CheckForm | None = None,
    errors: Errors | None = None,
    message: str = "",
    problem: str = "",
    status_code: int = 200,
) -> Response:
    service = FilingService(session)
    may_check = service.may_check(viewer.scope, filing)
    row = _filing_rows(session, [filing])[0]
    return render(
        request,
        "small_works/detail.html",
        {
            "viewer": viewer,
            "active": "small_works",
            "filing": filing,
            "row": row,
            "street": _node_label(session, filing.jurisdiction_id),
            "owner_kind": OWNER_KINDS.get(filing.owner_kind, filing.owner_kind),
            "checks": [
                {"check": c, "tone": CHECK_RESULT_TONES.get(c.result, "muted")}
                for c in filing.checks
            ],
            "may_check": may_check and filing.status != "closed",
            "may_close": may_check and may_close(filing.status),
            "results": [r.value for r in CheckResult],
            "check_form": check_form or CheckForm(),
            "errors": errors or {},
            "message": message,
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("/small-works/{filing_id}")
def small_works_detail(
    request: Request, filing_id: int, viewer: PageViewer, session: DbSession
) -> Response:
    filing = FilingService(session).get(viewer.scope, filing_id)
    return _filing_page(
        request, viewer, session, filing, message=_message(request, FILING_MESSAGES)
    )


@router.post("/small-works/{filing_id}/checks")
def small_works_check(
    request: Request,
    filing_id: int,
    viewer: PageViewer,
    session: DbSession,
    result: Annotated[str, Form(max_length=16)] = "",
    notes: Annotated[str, Form(max_length=2048)] = "",
    checked_at: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    service = FilingService(session)
    form = CheckForm(result=result, notes=notes, checked_at=checked_at)
    errors: Errors = {}
    when = _when(errors, "checked_at", checked_at, "核查时间")
    data = CheckInput(result=result, notes=notes, checked_at=when)
    try:
        filing, errors = _attempt(
            session,
            errors,
            lambda: service.check(
                viewer.scope, filing_id, data, viewer.user.id, viewer.name, viewer.now
            ),
        )
    except Conflict as error:
        found = service.get(viewer.scope, filing_id)
        return _filing_page(request, viewer, session, found, problem=error.message, status_code=409)
    if filing is None:
        found = service.get(viewer.scope, filing_id)
        return _filing_page(
            request, viewer, session, found, check_form=form, errors=errors, status_code=422
        )
    return RedirectResponse(f"/small-works/{filing.id}?checked=1#checks", status_code=303)


@router.post("/small-works/{filing_id}/close")
def small_works_close(
    request: Request,
    filing_id: int,
    viewer: PageViewer,
    session: DbSession,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    service = FilingService(session)
    try:
        filing = service.close(viewer.scope, filing_id, viewer.now)
    except Conflict as error:
        found = service.get(viewer.scope, filing_id)
        return _filing_page(request, viewer, session, found, problem=error.message, status_code=409)
    return RedirectResponse(f"/small-works/{filing.id}?closed=1", status_code=303)
