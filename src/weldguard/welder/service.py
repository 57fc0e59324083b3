"""Use cases for welders, certificates and employment. Services flush, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from weldguard.auth.scope import Action, Scope
from weldguard.domain.certificates import (
    DEFAULT_POLICY,
    CertificateFacts,
    CertificateKind,
    CertificateStatus,
    certificate_status,
    effective_expiry_date,
    holder_matches_number,
    next_review_due,
    validate_item,
)
from weldguard.domain.ids import (
    InvalidIdentifier,
    mask_id_number,
    normalize_id_number,
    normalize_mobile_phone,
)
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import ErrorDetail, InvalidInput, NotFound, PermissionDenied
from weldguard.welder.identity import IdentityVault, mask_certificate_number
from weldguard.welder.models import Certificate, Employment, Welder
from weldguard.welder.repository import WelderRepository

MAX_NAME = 64


def facts_of(certificate: Certificate) -> CertificateFacts:
    return CertificateFacts(
        kind=CertificateKind(certificate.kind),
        issue_date=certificate.issue_date,
        expiry_date=certificate.expiry_date,
        review_due_date=certificate.review_due_date,
        last_review_date=certificate.last_review_date,
        revoked=certificate.revoked,
        verified=certificate.verified,
    )


def status_of(certificate: Certificate, today: date) -> CertificateStatus:
    return certificate_status(facts_of(certificate), today)


@dataclass(frozen=True)
class WelderInput:
    name: str
    id_number: str
    phone: str | None = None


@dataclass(frozen=True)
class CertificateInput:
    kind: str
    number: str
    item: str
    issue_date: date
    expiry_date: date | None
    issuing_authority: str
    source: str
    review_due_date: date | None = None
    last_review_date: date | None = None
    revoked: bool = False
    verified: bool = True


def validate_welder(data: WelderInput, today: date) -> tuple[WelderInput, list[ErrorDetail]]:
    errors: list[ErrorDetail] = []
    name = data.name.strip()
    if not name:
        errors.append(ErrorDetail("姓名不能为空", field="name"))
    elif len(name) > MAX_NAME:
        errors.append(ErrorDetail(f"姓名超过 {MAX_NAME} 个字符", field="name"))
    id_number = ""
    try:
        id_number = normalize_id_number(data.id_number, today)
    except InvalidIdentifier as exc:
        errors.append(ErrorDetail(exc.reason, field="id_number"))
    phone = None
    if data.phone and data.phone.strip():
        try:
            phone = normalize_mobile_phone(data.phone)
        except InvalidIdentifier as exc:
            errors.append(ErrorDetail(exc.reason, field="phone"))
    return WelderInput(name=name, id_number=id_number, phone=phone), errors


def validate_certificate(
    data: CertificateInput, id_number: str | None
) -> tuple[CertificateFacts | None, list[ErrorDetail]]:
    """Checks a certificate record; id_number (when known) proves the holder of a
    特种作业 certificate, whose number is "T" + the ID number."""
    errors: list[ErrorDetail] = []
    try:
        kind = CertificateKind(data.kind)
    except ValueError:
        return None, [ErrorDetail(f"未知的证书类型“{data.kind}”", field="kind")]
    try:
        validate_item(kind, data.item)
    except ValueError as exc:
        errors.append(ErrorDetail(str(exc), field="item"))
    number = data.number.strip().upper()
    if not number or len(number) > 64:
        errors.append(ErrorDetail("证书编号不能为空且不超过 64 个字符", field="number"))
    elif id_number and not holder_matches_number(kind, number, id_number):
        errors.append(
            ErrorDetail("特种作业操作证编号应为 T + 持证人身份证号（人证不符）", field="number")
        )
    if not data.issuing_authority.strip():
        errors.append(ErrorDetail("发证机关不能为空", field="issuing_authority"))
    if data.expiry_date is not None and data.expiry_date < data.issue_date:
        errors.append(ErrorDetail("有效期止早于发证日期", field="expiry_date"))
    if errors:
        return None, errors
    return (
        CertificateFacts(
            kind=kind,
            issue_date=data.issue_date,
            expiry_date=data.expiry_date,
            review_due_date=data.review_due_date,
            last_review_date=data.last_review_date,
            revoked=data.revoked,
            verified=data.verified,
        ),
        [],
    )


class WelderService:
    def __init__(self, session: Session, vault: IdentityVault) -> None:
        self.session = session
        self.vault = vault
        self.repo = WelderRepository(session)

    def find_by_id_number(self, id_number: str) -> Welder | None:
        return self.repo.by_id_hash(self.vault.lookup_hash(id_number))

    def register(self, data: WelderInput, today: date) -> Welder:
        """Creates the person, or updates name and phone when the ID is known."""
        clean, errors = validate_welder(data, today)
        if errors:
            raise InvalidInput("焊工信息有误", errors)
        existing = self.find_by_id_number(clean.id_number)
        if existing is not None:
            if existing.name != clean.name:
                # The same ID under another name is a person-certificate mismatch
                # (人证不符) or a typo; either way a person must look at it.
                raise InvalidInput(
                    "焊工信息有误",
                    [ErrorDetail("该身份证号已登记，但姓名不一致", field="name")],
                )
            if clean.phone:
                existing.phone = clean.phone
            self.session.flush()
            return existing
        return self.repo.add(
            Welder(
                name=clean.name,
                id_number_hash=self.vault.lookup_hash(clean.id_number),
                id_number_encrypted=self.vault.encrypt(clean.id_number),
                id_number_masked=mask_id_number(clean.id_number),
                phone=clean.phone,
            )
        )

    def upsert_certificate(
        self, welder: Welder, data: CertificateInput, id_number: str | None = None
    ) -> tuple[Certificate, bool]:
        """Adds or updates (same kind and number) a certificate; True when created."""
        facts, errors = validate_certificate(data, id_number)
        if errors or facts is None:
            raise InvalidInput("证书信息有误", errors)
        number = data.number.strip().upper()
        number_hash = self.vault.lookup_hash(f"{facts.kind.value}:{number}")
        certificate = self.repo.certificate_by_number_hash(facts.kind.value, number_hash)
        created = certificate is None
        if certificate is None:
            certificate = Certificate(
                welder_id=welder.id, kind=facts.kind.value, number_hash=number_hash
            )
            self.session.add(certificate)
        elif certificate.welder_id != welder.id:
            raise InvalidInput(
                "证书信息有误",
                [ErrorDetail("该证书编号已登记在另一人名下（人证不符）", field="number")],
            )
        certificate.number_masked = mask_certificate_number(number)
        certificate.item = data.item
        certificate.issue_date = facts.issue_date
        certificate.expiry_date = effective_expiry_date(facts, DEFAULT_POLICY)
        certificate.review_due_date = next_review_due(facts, DEFAULT_POLICY)
        certificate.last_review_date = facts.last_review_date
        certificate.issuing_authority = data.issuing_authority.strip()
        certificate.source = data.source
        certificate.revoked = facts.revoked
        certificate.verified = facts.verified
        self.session.flush()
        return certificate, created

    def confirm_provisionally(
        self, scope: Scope, certificate: Certificate, now: datetime
    ) -> Certificate:
        """An enterprise vouches for a certificate not yet in the national query
        service (it takes about 3 days to appear); re-checked when a feed has it."""
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        if scope.enterprise_id is None:
            raise PermissionDenied("只有企业账号可以临时确认证书")
        if certificate.verified:
            raise InvalidInput(
                "无需确认", [ErrorDetail("证书已在发证机关数据中核验", field="verified")]
            )
        if self.repo.open_employment(certificate.welder_id, scope.enterprise_id) is None:
            raise NotFound("证书不存在")
        certificate.confirmed_by_enterprise_id = scope.enterprise_id
        certificate.confirmed_at = now
        self.session.flush()
        return certificate

    def employ(self, scope: Scope, welder: Welder, enterprise_id: int, start: date) -> Employment:
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        enterprise = EnterpriseRepository(self.session).visible(scope, enterprise_id)
        if enterprise is None:
            raise NotFound("企业不存在")
        existing = self.repo.open_employment(welder.id, enterprise.id)
        if existing is not None:
            return existing
        return self.repo.add_employment(
            Employment(welder_id=welder.id, enterprise_id=enterprise.id, start_date=start)
        )

    def end_employment(self, scope: Scope, welder: Welder, enterprise_id: int, end: date) -> None:
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        enterprise = EnterpriseRepository(self.session).visible(scope, enterprise_id)
        employment = self.repo.open_employment(welder.id, enterprise_id) if enterprise else None
        if employment is None:
            raise NotFound("该焊工未受雇于此企业")
        employment.end_date = end
        self.session.flush()
