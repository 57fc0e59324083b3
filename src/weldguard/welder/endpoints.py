"""/api/v1/welders and /api/v1/certificates"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from weldguard.auth.scope import Action
from weldguard.clock import local_today
from weldguard.deps import CurrentScope, DbSession, Now, Vault
from weldguard.domain.certificates import CertificateKind, certificate_status_reason
from weldguard.domain.ids import mask_phone
from weldguard.enterprise.endpoints import area_path_of
from weldguard.errors import NotFound
from weldguard.schemas import PageOut
from weldguard.welder.models import Certificate, Welder
from weldguard.welder.repository import CertificateFilter, WelderFilter, WelderRepository
from weldguard.welder.schemas import (
    CertificateOut,
    EmploymentOut,
    ManualCertificateIn,
    WelderDetailOut,
    WelderIn,
    WelderOut,
)
from weldguard.welder.service import (
    CertificateInput,
    WelderInput,
    WelderService,
    facts_of,
    status_of,
)

router = APIRouter(tags=["welders"])
MANUAL_SOURCE = "企业录入"


def certificate_out(certificate: Certificate, today: date) -> CertificateOut:
    status = status_of(certificate, today)
    return CertificateOut(
        id=certificate.id,
        welder_id=certificate.welder_id,
        kind=certificate.kind,
        kind_label=CertificateKind(certificate.kind).label,
        number_masked=certificate.number_masked,
        item=certificate.item,
        issue_date=certificate.issue_date,
        expiry_date=certificate.expiry_date,
        review_due_date=certificate.review_due_date,
        issuing_authority=certificate.issuing_authority,
        source=certificate.source,
        status=status.value,
        status_label=status.label,
        status_reason=certificate_status_reason(facts_of(certificate), today),
        confirmed_by_enterprise_id=certificate.confirmed_by_enterprise_id,
    )


def welder_out(welder: Welder) -> WelderOut:
    return WelderOut(
        id=welder.id,
        name=welder.name,
        id_number_masked=welder.id_number_masked,
        phone_masked=mask_phone(welder.phone) if welder.phone else None,
    )


@router.get("/welders", response_model=PageOut[WelderOut])
def list_welders(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    q: str | None = None,
    enterprise_id: int | None = None,
    area: str | None = None,
    certified: bool | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> PageOut[WelderOut]:
    result = WelderRepository(session).search(
        scope,
        WelderFilter(
            q=q,
            enterprise_id=enterprise_id,
            area_path=area_path_of(session, area),
            certified=certified,
        ),
        local_today(now),
        page,
        size,
    )
    return PageOut.of(result, [welder_out(w) for w in result.items])


@router.get("/welders/{welder_id}", response_model=WelderDetailOut)
def get_welder(
    welder_id: int, session: DbSession, scope: CurrentScope, now: Now
) -> WelderDetailOut:
    repo = WelderRepository(session)
    welder = repo.visible(scope, welder_id)
    if welder is None:
        raise NotFound("焊工不存在")
    today = local_today(now)
    return WelderDetailOut(
        **welder_out(welder).model_dump(),
        certificates=[certificate_out(c, today) for c in repo.certificates_of(welder.id)],
        employments=[
            EmploymentOut(
                enterprise_id=e.enterprise_id,
                enterprise_name=ent.name,
                start_date=e.start_date,
                end_date=e.end_date,
            )
            for e, ent in repo.employments_of(welder.id)
        ],
    )


@router.post("/welders", response_model=WelderOut, status_code=201)
def register_welder(
    body: WelderIn, session: DbSession, scope: CurrentScope, now: Now, vault: Vault
) -> WelderOut:
    """Registers a welder (or finds them by ID number) and employs them."""
    scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
    service = WelderService(session, vault)
    today = local_today(now)
    welder = service.register(WelderInput(body.name, body.id_number, body.phone), today)
    service.employ(scope, welder, body.enterprise_id, today)
    return welder_out(welder)


@router.post("/welders/{welder_id}/employment/{enterprise_id}/end", status_code=204)
def end_employment(
    welder_id: int,
    enterprise_id: int,
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    vault: Vault,
) -> None:
    """The welder leaves the enterprise; the employment stays in the history."""
    scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
    welder = WelderRepository(session).visible(scope, welder_id)
    if welder is None:
        raise NotFound("焊工不存在")
    WelderService(session, vault).end_employment(scope, welder, enterprise_id, local_today(now))


@router.post("/welders/{welder_id}/certificates", response_model=CertificateOut, status_code=201)
def add_manual_certificate(
    welder_id: int,
    body: ManualCertificateIn,
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    vault: Vault,
) -> CertificateOut:
    scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
    welder = WelderRepository(session).visible(scope, welder_id)
    if welder is None:
        raise NotFound("焊工不存在")
    certificate, _ = WelderService(session, vault).upsert_certificate(
        welder,
        CertificateInput(
            kind=body.kind,
            number=body.number,
            item=body.item,
            issue_date=body.issue_date,
            expiry_date=body.expiry_date,
            issuing_authority=body.issuing_authority,
            source=MANUAL_SOURCE,
            verified=False,
        ),
        id_number=vault.decrypt(welder.id_number_encrypted),
    )
    return certificate_out(certificate, local_today(now))


@router.get("/certificates", response_model=PageOut[CertificateOut])
def list_certificates(
    session: DbSession,
    scope: CurrentScope,
    now: Now,
    q: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    source: str | None = None,
    enterprise_id: int | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> PageOut[CertificateOut]:
    today = local_today(now)
    result = WelderRepository(session).search_certificates(
        scope,
        CertificateFilter(
            q=q, kind=kind, status=status, source=source, enterprise_id=enterprise_id
        ),
        today,
        page,
        size,
    )
    return PageOut.of(result, [certificate_out(c, today) for c in result.items])


@router.get("/certificates/{certificate_id}", response_model=CertificateOut)
def get_certificate(
    certificate_id: int, session: DbSession, scope: CurrentScope, now: Now
) -> CertificateOut:
    certificate = WelderRepository(session).visible_certificate(scope, certificate_id)
    if certificate is None:
        raise NotFound("证书不存在")
    return certificate_out(certificate, local_today(now))


@router.post("/certificates/{certificate_id}/confirm", response_model=CertificateOut)
def confirm_certificate(
    certificate_id: int, session: DbSession, scope: CurrentScope, now: Now, vault: Vault
) -> CertificateOut:
    """Provisional acceptance of a pending certificate by the employing enterprise."""
    certificate = WelderRepository(session).visible_certificate(scope, certificate_id)
    if certificate is None:
        raise NotFound("证书不存在")
    WelderService(session, vault).confirm_provisionally(scope, certificate, now)
    return certificate_out(certificate, local_today(now))
