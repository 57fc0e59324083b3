"""/api/v1/enterprises"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from weldguard.deps import CurrentScope, DbSession
from weldguard.enterprise.fields import PlaceResolver, validate_enterprise
from weldguard.enterprise.repository import EnterpriseFilter, EnterpriseRepository
from weldguard.enterprise.schemas import EnterpriseIn, EnterpriseOut, OpeningWindow, SiteIn, SiteOut
from weldguard.enterprise.service import EnterpriseService
from weldguard.errors import InvalidInput, invalid
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.schemas import PageOut

router = APIRouter(prefix="/enterprises", tags=["enterprises"])


def area_path_of(session: DbSession, code: str | None) -> str | None:
    if not code:
        return None
    node = JurisdictionRepository(session).by_code(code)
    if node is None:
        raise invalid("area", f"未知的行政区划代码 {code}")
    return node.path


@router.get("", response_model=PageOut[EnterpriseOut])
def list_enterprises(
    session: DbSession,
    scope: CurrentScope,
    q: str | None = None,
    area: Annotated[str | None, Query(description="Division code of a subtree")] = None,
    sector: str | None = None,
    crowded_subtype: str | None = None,
    production_status: str | None = None,
    mobile_work: bool | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> PageOut[EnterpriseOut]:
    result = EnterpriseRepository(session).search(
        scope,
        EnterpriseFilter(
            q=q,
            area_path=area_path_of(session, area),
            sector=sector,
            crowded_subtype=crowded_subtype,
            production_status=production_status,
            mobile_work=mobile_work,
        ),
        page,
        size,
    )
    return PageOut.of(result, [EnterpriseOut.model_validate(e) for e in result.items])


@router.get("/{enterprise_id}", response_model=EnterpriseOut)
def get_enterprise(enterprise_id: int, session: DbSession, scope: CurrentScope) -> EnterpriseOut:
    return EnterpriseOut.model_validate(EnterpriseService(session).get(scope, enterprise_id))


def _save(
    session: DbSession, scope: CurrentScope, body: EnterpriseIn
) -> tuple[EnterpriseOut, bool]:
    data, errors = validate_enterprise(body.model_dump(), PlaceResolver(session))
    if data is None:
        raise InvalidInput("企业信息有误", errors)
    enterprise, created = EnterpriseService(session).upsert(scope, data)
    return EnterpriseOut.model_validate(enterprise), created


@router.post("", response_model=EnterpriseOut, status_code=201)
def create_or_update_enterprise(
    body: EnterpriseIn, session: DbSession, scope: CurrentScope
) -> EnterpriseOut:
    """Registers an enterprise; an existing credit code is updated (like the import)."""
    return _save(session, scope, body)[0]


@router.put("/{enterprise_id}", response_model=EnterpriseOut)
def update_enterprise(
    enterprise_id: int, body: EnterpriseIn, session: DbSession, scope: CurrentScope
) -> EnterpriseOut:
    current = EnterpriseService(session).get(scope, enterprise_id)
    if body.credit_code.strip().upper() != current.credit_code:
        raise invalid("credit_code", "统一社会信用代码不可修改")
    return _save(session, scope, body)[0]


@router.put("/{enterprise_id}/opening-hours", response_model=EnterpriseOut)
def set_opening_hours(
    enterprise_id: int, body: list[OpeningWindow], session: DbSession, scope: CurrentScope
) -> EnterpriseOut:
    enterprise = EnterpriseService(session).set_opening_hours(
        scope, enterprise_id, [w.model_dump() for w in body]
    )
    return EnterpriseOut.model_validate(enterprise)


class PermitRequirementIn(BaseModel):
    permit_required: bool | None = Field(
        description="true: every hot work here needs a permit; false: none does; "
        "null: the sector rule decides"
    )


@router.put("/{enterprise_id}/permit-requirement", response_model=EnterpriseOut)
def set_permit_requirement(
    enterprise_id: int, body: PermitRequirementIn, session: DbSession, scope: CurrentScope
) -> EnterpriseOut:
    """A regulator sets it either way; the enterprise may only require permits."""
    enterprise = EnterpriseService(session).set_permit_requirement(
        scope, enterprise_id, body.permit_required
    )
    return EnterpriseOut.model_validate(enterprise)


@router.get("/{enterprise_id}/sites", response_model=list[SiteOut])
def list_sites(enterprise_id: int, session: DbSession, scope: CurrentScope) -> list[SiteOut]:
    enterprise = EnterpriseService(session).get(scope, enterprise_id)
    return [SiteOut.model_validate(s) for s in EnterpriseRepository(session).sites(enterprise.id)]


@router.post("/{enterprise_id}/sites", response_model=SiteOut, status_code=201)
def add_site(enterprise_id: int, body: SiteIn, session: DbSession, scope: CurrentScope) -> SiteOut:
    site = EnterpriseService(session).add_site(
        scope, enterprise_id, body.name, body.address, body.latitude, body.longitude, body.polygon
    )
    return SiteOut.model_validate(site)
