"""/api/v1/small-works: small works filed with the street (限额以下小型工程备案).

Reads follow the caller's reach (a filing outside it is 404, like a missing one):
the filer's enterprise sees its own, regulators and inspectors those filed with a
street of their area. Filing: an enterprise's admin or safety officer, the admin
(403 for the rest). Checks (核查) and closing: the street's regulators (or above)
and the admin. 422 names every field that is wrong and nothing is written."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from weldguard.deps import CurrentScope, CurrentUser, DbSession, Now
from weldguard.domain.small_works import STATUS_LABELS
from weldguard.errors import invalid
from weldguard.filing.models import SmallWorkCheck, SmallWorkFiling
from weldguard.filing.service import CheckInput, FilingInput, FilingService
from weldguard.pagination import PageNumber, PageSize
from weldguard.schemas import PageOut
from weldguard.unlock.endpoints import scoped_area_path

router = APIRouter(tags=["small works"])

DEFAULT_SIZE = 20


class FilingIn(BaseModel):
    owner_kind: str = Field(default="", description="enterprise 单位 | person 个人")
    owner_credit_code: str = Field(default="", max_length=32, description="A registered owner")
    owner_name: str = Field(default="", max_length=256)
    owner_phone: str = Field(default="", max_length=64)
    address: str = Field(default="", max_length=512)
    street: str = Field(default="", max_length=16, description="Division code of the street")
    description: str = Field(default="", max_length=1024)
    expected_start: date | None = None
    expected_end: date | None = None
    contractor_credit_code: str = Field(default="", max_length=32)
    contractor_name: str = Field(default="", max_length=256)
    hot_work: bool | None = None
    hot_work_method: str = Field(default="", max_length=64, description="电焊、气焊、气割…")
    contact_name: str = Field(default="", max_length=128)
    contact_phone: str = Field(default="", max_length=64)
    enterprise_id: int | None = Field(default=None, description="The filer; admin only")


class CheckIn(BaseModel):
    result: str = Field(default="", description="合格 | 需整改")
    notes: str = Field(default="", max_length=2048, description="Required for 需整改")
    checked_at: datetime | None = Field(default=None, description="Default: now")


class CheckOut(BaseModel):
    id: int
    checked_at: datetime
    checked_by_user_id: int | None
    checked_by_name: str
    result: str
    notes: str

    @classmethod
    def of(cls, check: SmallWorkCheck) -> CheckOut:
        return cls(
            id=check.id,
            checked_at=check.checked_at,
            checked_by_user_id=check.checked_by_user_id,
            checked_by_name=check.checked_by_name,
            result=check.result,
            notes=check.notes,
        )


class FilingOut(BaseModel):
    id: int
    status: str
    status_label: str
    enterprise_id: int
    filed_at: datetime
    owner_kind: str
    owner_enterprise_id: int | None
    owner_name: str
    owner_phone: str
    address: str
    street_code: str
    area_path: str
    description: str
    expected_start: date
    expected_end: date
    contractor_enterprise_id: int | None
    contractor_name: str
    hot_work: bool
    hot_work_method: str
    contact_name: str
    contact_phone: str
    closed_at: datetime | None
    checks: list[CheckOut]
    may_check: bool

    @classmethod
    def of(cls, f: SmallWorkFiling, may_check: bool) -> FilingOut:
        return cls(
            id=f.id,
            status=f.status,
            status_label=STATUS_LABELS.get(f.status, f.status),
            enterprise_id=f.enterprise_id,
            filed_at=f.filed_at,
            owner_kind=f.owner_kind,
            owner_enterprise_id=f.owner_enterprise_id,
            owner_name=f.owner_name,
            owner_phone=f.owner_phone,
            address=f.address,
            street_code=f.area_path.rstrip("/").rsplit("/", 1)[-1],
            area_path=f.area_path,
            description=f.description,
            expected_start=f.expected_start,
            expected_end=f.expected_end,
            contractor_enterprise_id=f.contractor_enterprise_id,
            contractor_name=f.contractor_name,
            hot_work=f.hot_work,
            hot_work_method=f.hot_work_method,
            contact_name=f.contact_name,
            contact_phone=f.contact_phone,
            closed_at=f.closed_at,
            checks=[CheckOut.of(c) for c in f.checks],
            may_check=may_check,
        )


@router.get("/small-works", response_model=PageOut[FilingOut])
def list_filings(
    session: DbSession,
    scope: CurrentScope,
    status: Annotated[
        str | None, Query(description="filed | checked | rectification_required | closed")
    ] = None,
    area: Annotated[str | None, Query(description="Division code inside your area")] = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[FilingOut]:
    if status is not None and status not in STATUS_LABELS:
        raise invalid("status", "状态无效，可选：" + "、".join(STATUS_LABELS))
    area_path = scoped_area_path(session, scope, area)
    service = FilingService(session)
    result = service.list_page(scope, status, area_path, page, size)
    return PageOut.of(result, [FilingOut.of(f, service.may_check(scope, f)) for f in result.items])


@router.get("/small-works/{filing_id}", response_model=FilingOut)
def get_filing(filing_id: int, session: DbSession, scope: CurrentScope) -> FilingOut:
    service = FilingService(session)
    filing = service.get(scope, filing_id)
    return FilingOut.of(filing, service.may_check(scope, filing))


@router.post("/small-works", response_model=FilingOut, status_code=201)
def file_small_works(
    body: FilingIn, session: DbSession, scope: CurrentScope, user: CurrentUser, now: Now
) -> FilingOut:
    service = FilingService(session)
    filing = service.file(scope, FilingInput(**body.model_dump()), user.id, now)
    return FilingOut.of(filing, service.may_check(scope, filing))


@router.post("/small-works/{filing_id}/checks", response_model=FilingOut, status_code=201)
def check_small_works(
    filing_id: int,
    body: CheckIn,
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
) -> FilingOut:
    """Records a check (核查): 合格 → checked, 需整改 → rectification_required."""
    service = FilingService(session)
    filing = service.check(
        scope,
        filing_id,
        CheckInput(result=body.result, notes=body.notes, checked_at=body.checked_at),
        user.id,
        user.display_name or user.username,
        now,
    )
    return FilingOut.of(filing, True)


@router.post("/small-works/{filing_id}/close", response_model=FilingOut)
def close_small_works(
    filing_id: int, session: DbSession, scope: CurrentScope, now: Now
) -> FilingOut:
    """Closes (办结) a filing whose last check found it in order; 409 otherwise."""
    service = FilingService(session)
    return FilingOut.of(service.close(scope, filing_id, now), True)
