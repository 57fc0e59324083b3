"""/api/v1/mobile-jobs: mobile jobs (流动作业报备).

Reads follow the caller's reach (a job outside it is 404, like a missing one):
regulators see the jobs taking place in their area, the contractor and the client
their own, a welder those naming them. Declaring: the contractor's admin or safety
officer, a welder for themself, the admin (403 for the rest); 422 names every
field that is wrong and nothing is written. Cancelling (撤销) before the window
cancels, during it ends the job now; a job is never edited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from weldguard.deps import AppState, CurrentScope, CurrentUser, DbSession, Now, app_state
from weldguard.domain.mobile_jobs import STATE_LABELS, job_state
from weldguard.errors import NotFound, invalid
from weldguard.pagination import PageNumber, PageSize
from weldguard.permit.mobile_models import MobileJob
from weldguard.permit.mobile_service import MobileJobInput, MobileJobService
from weldguard.photos import PhotoRejected, photo_file, photo_media_type, read_photo, store_photo
from weldguard.schemas import PageOut

router = APIRouter(tags=["mobile jobs"])

DEFAULT_SIZE = 20
State = Annotated[AppState, Depends(app_state)]


class MobileJobIn(BaseModel):
    starts_at: datetime | None = None
    ends_at: datetime | None = Field(
        default=None, description="Exclusive; at most 72 h after starts_at"
    )
    client_credit_code: str = Field(
        default="", max_length=32, description="A registered client; else client_name + contact"
    )
    client_name: str = Field(default="", max_length=256)
    client_contact: str = Field(default="", max_length=128)
    client_phone: str = Field(default="", max_length=64)
    address: str = Field(
        default="", max_length=512, description="Defaults to the registered client's"
    )
    area: str = Field(
        default="", max_length=16, description="Street (or district) code; defaults to the client's"
    )
    latitude: float | None = Field(default=None, description="WGS-84")
    longitude: float | None = None
    fire_watch_name: str = Field(default="", max_length=128)
    fire_watch_phone: str = Field(default="", max_length=64)
    description: str = Field(default="", max_length=1024)
    welder_ids: list[int] = Field(
        default_factory=list, description="A welder: defaults to themself"
    )
    machine_ids: list[int] = Field(default_factory=list)
    contractor_enterprise_id: int | None = Field(default=None, description="Admin only")


class MobileJobOut(BaseModel):
    id: int
    status: str
    state: str
    state_label: str
    contractor_enterprise_id: int | None
    declared_by_welder_id: int | None
    declared_at: datetime
    client_enterprise_id: int | None
    client_name: str
    client_contact: str
    client_phone: str
    address: str
    area_code: str
    area_path: str
    latitude: float | None
    longitude: float | None
    description: str
    starts_at: datetime
    ends_at: datetime
    fire_watch_name: str
    fire_watch_phone: str
    welder_ids: list[int]
    machine_ids: list[int]
    photo_count: int
    closed_at: datetime | None
    may_cancel: bool

    @classmethod
    def of(cls, job: MobileJob, now: datetime, may_manage: bool) -> MobileJobOut:
        state = job_state(job.status, job.starts_at, job.ends_at, now)
        return cls(
            id=job.id,
            status=job.status,
            state=state.value,
            state_label=STATE_LABELS[state.value],
            contractor_enterprise_id=job.contractor_enterprise_id,
            declared_by_welder_id=job.declared_by_welder_id,
            declared_at=job.declared_at,
            client_enterprise_id=job.client_enterprise_id,
            client_name=job.client_name,
            client_contact=job.client_contact,
            client_phone=job.client_phone,
            address=job.address,
            area_code=job.area_path.rstrip("/").rsplit("/", 1)[-1],
            area_path=job.area_path,
            latitude=job.latitude,
            longitude=job.longitude,
            description=job.description,
            starts_at=job.starts_at,
            ends_at=job.ends_at,
            fire_watch_name=job.fire_watch_name,
            fire_watch_phone=job.fire_watch_phone,
            welder_ids=[w.welder_id for w in job.welders],
            machine_ids=[m.machine_id for m in job.machines],
            photo_count=len(job.photos),
            closed_at=job.closed_at,
            may_cancel=may_manage and state.value in ("upcoming", "active"),
        )


@router.get("/mobile-jobs", response_model=PageOut[MobileJobOut])
def list_mobile_jobs(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    state: Annotated[str | None, Query(description="upcoming | active | ended | cancelled")] = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[MobileJobOut]:
    if state is not None and state not in STATE_LABELS:
        raise invalid("state", "状态无效，可选：" + "、".join(STATE_LABELS))
    service = MobileJobService(session)
    result = service.list_page(scope, state, now, page, size)
    items = [MobileJobOut.of(j, now, service.may_manage(scope, j)) for j in result.items]
    return PageOut.of(result, items)


@router.get("/mobile-jobs/{job_id}", response_model=MobileJobOut)
def get_mobile_job(job_id: int, session: DbSession, scope: CurrentScope, now: Now) -> MobileJobOut:
    service = MobileJobService(session)
    job = service.get(scope, job_id)
    return MobileJobOut.of(job, now, service.may_manage(scope, job))


@router.post("/mobile-jobs", response_model=MobileJobOut, status_code=201)
def declare_mobile_job(
    body: MobileJobIn, session: DbSession, scope: CurrentScope, user: CurrentUser, now: Now
) -> MobileJobOut:
    """Declares a job before the work starts."""
    service = MobileJobService(session)
    job = service.declare(scope, MobileJobInput(**body.model_dump()), user.id, now)
    return MobileJobOut.of(job, now, True)


@router.post("/mobile-jobs/{job_id}/cancel", response_model=MobileJobOut)
def cancel_mobile_job(
    job_id: int, session: DbSession, scope: CurrentScope, user: CurrentUser, now: Now
) -> MobileJobOut:
    """Cancels the job (before its window) or ends it now (during it); 409 when over."""
    service = MobileJobService(session)
    job = service.cancel(scope, job_id, user.id, now)
    return MobileJobOut.of(job, now, True)


@router.post("/mobile-jobs/{job_id}/photos", response_model=MobileJobOut, status_code=201)
def add_mobile_job_photo(
    job_id: int,
    photo: Annotated[UploadFile, File(description="JPEG or PNG, at most 8 MB")],
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    state: State,
) -> MobileJobOut:
    """A photo of the place (现场照片), while the job is live."""
    read = read_photo(photo.file)
    if isinstance(read, PhotoRejected):
        error = invalid("photo", read.reason)
        error.status_code = read.status
        raise error
    content, extension = read
    service = MobileJobService(session)
    job = service.add_photo(
        scope, job_id, lambda: store_photo(state.settings.data_dir, content, extension), now
    )
    return MobileJobOut.of(job, now, True)


@router.get("/mobile-jobs/{job_id}/photos/{index}")
def get_mobile_job_photo(
    job_id: int, index: int, session: DbSession, scope: CurrentScope, state: State
) -> FileResponse:
    """The ``index``-th photo (from 0)."""
    job = MobileJobService(session).get(scope, job_id)
    if not 0 <= index < len(job.photos):
        raise NotFound("照片不存在")
    path = photo_file(state.settings.data_dir, job.photos[index])
    if path is None:
        raise NotFound("照片不存在")
    return FileResponse(
        path,
        media_type=photo_media_type(job.photos[index]),
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )
