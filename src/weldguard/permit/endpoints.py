"""/api/v1/permits: hot-work permits (动火作业票).

Reads follow the caller's scope (regulators their area, enterprise users their
enterprise, a welder the permits naming them; outside it: 404). The enterprise's
admin and safety officer apply and sign steps; a welder signs the steps of the
work (``service.WELDER_EVENTS``); the rest read only (403). A refused step answers
409 ``permit_refused`` with every reason (``details[].code``, ``details[].reason``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from weldguard.deps import AppState, CurrentScope, CurrentUser, DbSession, Now, app_state
from weldguard.domain.permits import PermitStatus
from weldguard.errors import invalid
from weldguard.pagination import PageNumber, PageSize
from weldguard.permit.models import Permit, PermitEventRow
from weldguard.permit.repository import PermitFilter
from weldguard.permit.service import (
    EVENT_KINDS,
    MeasureInput,
    PermitInput,
    PermitService,
    PersonInput,
    WelderEntry,
)
from weldguard.photos import PhotoRejected, photo_media_type, read_photo, store_photo
from weldguard.schemas import PageOut
from weldguard.unlock.records import local_day_bounds
from weldguard.unlock.service import device_secrets

router = APIRouter(tags=["hot-work permits"])

DEFAULT_SIZE = 20


class PersonIn(BaseModel):
    name: str = Field(default="", max_length=64)
    user_id: int | None = None
    welder_id: int | None = None


class WelderIn(BaseModel):
    welder_id: int
    certificate_ids: list[int] = Field(
        default_factory=list, description="Empty: every certificate the welder holds"
    )


class MeasureIn(BaseModel):
    code: str = Field(max_length=32)
    text: str = Field(default="", max_length=256)
    applicable: bool = True


class HotSpotIn(BaseModel):
    lat: float | None = None
    lon: float | None = None
    radius_m: float = 10.0
    polygon: list[list[float]] | None = Field(default=None, description="[[lat, lon], ...]")


class PermitIn(BaseModel):
    enterprise_id: int | None = Field(default=None, description="Default: your enterprise")
    site_id: int | None = None
    place_description: str = Field(default="", max_length=256)
    hot_spot: HotSpotIn = Field(default_factory=HotSpotIn)
    methods: list[str] = Field(
        default_factory=list,
        description="electric_welding | gas_welding_cutting | plasma_cutting | brazing | other",
    )
    base_level: str = Field(default="", description="special 特级 | first 一级 | second 二级")
    level: str | None = Field(default=None, description="The managed level; default base_level")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    welders: list[WelderIn] = Field(default_factory=list)
    machine_ids: list[int] = Field(default_factory=list)
    lead: PersonIn | None = None
    fire_watch: PersonIn | None = None
    fire_watch_trained: bool = False
    hazards: list[str] = Field(default_factory=list)
    measures: list[MeasureIn] | None = Field(
        default=None, description="None: the standard form, mandatory measures applicable"
    )
    linked_permits: list[str] = Field(default_factory=list)
    gas_analysis_required: bool = False
    special_equipment: bool = False
    check_in_interval_min: int = 30
    crowded_exception: bool = Field(
        default=False,
        description="Request the crowded-place exception path (work in opening hours)",
    )

    def as_input(self) -> PermitInput:
        def person(p: PersonIn | None) -> PersonInput | None:
            return PersonInput(p.name, p.user_id, p.welder_id) if p is not None else None

        return PermitInput(
            enterprise_id=self.enterprise_id,
            site_id=self.site_id,
            place_description=self.place_description,
            hot_spot_lat=self.hot_spot.lat,
            hot_spot_lon=self.hot_spot.lon,
            hot_spot_radius_m=self.hot_spot.radius_m,
            hot_spot_polygon=self.hot_spot.polygon,
            methods=self.methods,
            base_level=self.base_level,
            level=self.level,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            welders=[WelderEntry(w.welder_id, tuple(w.certificate_ids)) for w in self.welders],
            machine_ids=self.machine_ids,
            lead=person(self.lead),
            fire_watch=person(self.fire_watch),
            fire_watch_trained=self.fire_watch_trained,
            hazards=self.hazards,
            measures=[MeasureInput(x.code, x.text, x.applicable) for x in self.measures]
            if self.measures is not None
            else None,
            linked_permits=self.linked_permits,
            gas_analysis_required=self.gas_analysis_required,
            special_equipment=self.special_equipment,
            check_in_interval_min=self.check_in_interval_min,
            crowded_exception=self.crowded_exception,
        )


class EventIn(BaseModel):
    """``kind`` and the step's own fields: ``photos`` (stored photo keys), ``note``;
    gas_sample: ``taken_at``, ``gas``, ``lel_percent``, ``reading_percent``,
    ``analyst``, ``position`` {lat, lon}; check_in: ``position``; confirm_measure:
    ``code``; confirm_notice: ``location`` (entrance | site); dispose: ``no_embers``;
    crowded_risk_assessment and crowded_fire_separation (the crowded-place
    exception path, before approval): ``photos`` (at least one), ``note``."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(description=" | ".join(EVENT_KINDS))


class EventOut(BaseModel):
    id: int
    kind: str
    at: datetime
    actor_user_id: int | None
    person_name: str
    person_role: str
    status_before: str | None
    status_after: str
    payload: dict[str, Any]
    photos: list[str]

    @classmethod
    def of(cls, e: PermitEventRow) -> EventOut:
        return cls(
            id=e.id,
            kind=e.kind,
            at=e.at,
            actor_user_id=e.actor_user_id,
            person_name=e.person_name,
            person_role=e.person_role,
            status_before=e.status_before,
            status_after=e.status_after,
            payload=e.payload,
            photos=e.photos,
        )


class PermitOut(BaseModel):
    id: int
    number: str
    enterprise_id: int
    site_id: int | None
    area_path: str
    status: str
    status_label: str
    version: int
    base_level: str
    level: str
    starts_at: datetime
    ends_at: datetime
    methods: list[str]
    place_description: str
    hot_spot: HotSpotIn
    welders: list[WelderIn]
    machine_ids: list[int]
    lead: dict[str, Any]
    fire_watch: dict[str, Any]
    hazards: list[str]
    measures: list[dict[str, Any]]
    linked_permits: list[str]
    gas_analysis_required: bool
    special_equipment: bool
    check_in_interval_min: int
    crowded_exception: dict[str, Any] | None
    created_by_user_id: int
    created_at: datetime
    updated_at: datetime
    events: list[EventOut] | None = None

    @classmethod
    def of(cls, p: Permit, events: list[PermitEventRow] | None = None) -> PermitOut:
        return cls(
            id=p.id,
            number=p.number,
            enterprise_id=p.enterprise_id,
            site_id=p.site_id,
            area_path=p.area_path,
            status=p.status,
            status_label=PermitStatus(p.status).label,
            version=p.version,
            base_level=p.base_level,
            level=p.level,
            starts_at=p.starts_at,
            ends_at=p.ends_at,
            methods=p.methods,
            place_description=p.place_description,
            hot_spot=HotSpotIn(
                lat=p.hot_spot_lat,
                lon=p.hot_spot_lon,
                radius_m=p.hot_spot_radius_m,
                polygon=p.hot_spot_polygon,
            ),
            welders=[
                WelderIn(welder_id=w.welder_id, certificate_ids=w.certificate_ids)
                for w in p.welders
            ],
            machine_ids=[x.machine_id for x in p.machines],
            lead=p.lead,
            fire_watch=p.fire_watch,
            hazards=p.hazards,
            measures=p.measures,
            linked_permits=p.linked_permits,
            gas_analysis_required=p.gas_analysis_required,
            special_equipment=p.special_equipment,
            check_in_interval_min=p.check_in_interval_min,
            crowded_exception=p.crowded_exception,
            created_by_user_id=p.created_by_user_id,
            created_at=p.created_at,
            updated_at=p.updated_at,
            events=[EventOut.of(e) for e in events] if events is not None else None,
        )


class PermitSummaryOut(BaseModel):
    id: int
    number: str
    enterprise_id: int
    status: str
    status_label: str
    level: str
    starts_at: datetime
    ends_at: datetime
    place_description: str

    @classmethod
    def of(cls, p: Permit) -> PermitSummaryOut:
        return cls(
            id=p.id,
            number=p.number,
            enterprise_id=p.enterprise_id,
            status=p.status,
            status_label=PermitStatus(p.status).label,
            level=p.level,
            starts_at=p.starts_at,
            ends_at=p.ends_at,
            place_description=p.place_description,
        )


@router.get("/permits", response_model=PageOut[PermitSummaryOut])
def list_permits(
    session: DbSession,
    scope: CurrentScope,
    status: Annotated[str | None, Query(description="draft | submitted | … | closed")] = None,
    enterprise_id: int | None = None,
    since: Annotated[date | None, Query(description="Windows ending after this China day")] = None,
    until: Annotated[date | None, Query(description="Windows starting by this China day")] = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[PermitSummaryOut]:
    """Permits in your scope, the latest window first."""
    if status is not None and status not in {s.value for s in PermitStatus}:
        raise invalid("status", "状态无效，可选：" + "、".join(s.value for s in PermitStatus))
    if since is not None and until is not None and until < since:
        raise invalid("until", "结束日期不能早于开始日期")
    start, end = local_day_bounds(since, until)
    f = PermitFilter(status=status, enterprise_id=enterprise_id, since=start, until=end)
    result = PermitService(session).repo.page(scope, f, page, size)
    return PageOut.of(result, [PermitSummaryOut.of(p) for p in result.items])


@router.post("/permits", response_model=PermitOut, status_code=201)
def create_permit(
    body: PermitIn, session: DbSession, scope: CurrentScope, user: CurrentUser, now: Now
) -> PermitOut:
    """A draft; 422 names every bad field, 409 lists the rules the content breaks."""
    service = PermitService(session)
    row = service.create(scope, user, body.as_input(), now)
    return PermitOut.of(*service.events(scope, row.id))


@router.get("/permits/{permit_id}", response_model=PermitOut)
def get_permit(permit_id: int, session: DbSession, scope: CurrentScope) -> PermitOut:
    """The permit with its steps (the audit trail: time, person, photos)."""
    return PermitOut.of(*PermitService(session).events(scope, permit_id))


@router.patch("/permits/{permit_id}", response_model=PermitOut)
def edit_permit(
    permit_id: int,
    body: PermitIn,
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
) -> PermitOut:
    """New content for a draft (a submitted permit goes back to draft); after
    approval 409 EDIT_AFTER_APPROVAL: a change needs a new permit."""
    service = PermitService(session)
    service.edit(scope, user, permit_id, body.as_input(), now)
    return PermitOut.of(*service.events(scope, permit_id))


class PhotoOut(BaseModel):
    photo: str = Field(description="The key to list in a step's ``photos``")


@router.post("/permits/{permit_id}/photos", response_model=PhotoOut, status_code=201)
def upload_photo(
    permit_id: int,
    photo: Annotated[UploadFile, File(description="JPEG or PNG, at most 8 MB")],
    state: Annotated[AppState, Depends(app_state)],
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
) -> PhotoOut:
    """A photo taken on site for a step: stored first, then named in the step's
    ``photos``. Only for those who may sign the permit's steps."""
    service = PermitService(session)
    service.require_signer(scope, user, permit_id)
    read = read_photo(photo.file)
    if isinstance(read, PhotoRejected):
        error = invalid("photo", read.reason)
        error.status_code = read.status
        raise error
    content, extension = read
    return PhotoOut(photo=store_photo(state.settings.data_dir, content, extension))


@router.get("/permits/{permit_id}/photos/{folder}/{name}")
def get_photo(
    permit_id: int,
    folder: str,
    name: str,
    state: Annotated[AppState, Depends(app_state)],
    session: DbSession,
    scope: CurrentScope,
) -> FileResponse:
    """A photo one of the permit's steps names, to whoever may read the permit."""
    key = f"{folder}/{name}"
    path = PermitService(session).photo_path(scope, permit_id, key, state.settings.data_dir)
    return FileResponse(
        path,
        media_type=photo_media_type(key),
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/permits/{permit_id}/events", response_model=PermitOut, status_code=201)
def add_event(
    permit_id: int,
    body: EventIn,
    state: Annotated[AppState, Depends(app_state)],
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
) -> PermitOut:
    """Applies one step; 409 with every reason when the rules refuse it."""
    settings = state.settings
    service = PermitService(
        session,
        device_secrets=device_secrets(settings.resolved_secret_key()),
        lock_ttl_s=settings.unlock_command_ttl_s,
    )
    service.apply(scope, user, permit_id, body.kind, body.model_extra or {}, now)
    return PermitOut.of(*service.events(scope, permit_id))
