"""View models: what a page row shows, computed from records and today's date.
No queries here beyond the repositories' own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.domain.certificates import CertificateStatus, certificate_status_reason
from weldguard.domain.ids import mask_phone
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.machine.models import Chip, Machine
from weldguard.welder.models import Certificate, Employment, Welder
from weldguard.welder.repository import WelderRepository
from weldguard.welder.service import facts_of, status_of

# CSS modifier of a status badge.
CERTIFICATE_TONE = {
    CertificateStatus.VALID: "ok",
    CertificateStatus.EXPIRING: "warn",
    CertificateStatus.REVIEW_OVERDUE: "bad",
    CertificateStatus.EXPIRED: "bad",
    CertificateStatus.REVOKED: "dark",
    CertificateStatus.PENDING_VERIFICATION: "info",
}
MACHINE_TONE = {"chip_fitted": "ok", "registered": "warn", "retired": "muted"}


@dataclass(frozen=True)
class CertificateRow:
    certificate: Certificate
    status: CertificateStatus
    reason: str

    @property
    def tone(self) -> str:
        return CERTIFICATE_TONE[self.status]


def certificate_row(certificate: Certificate, today: date) -> CertificateRow:
    return CertificateRow(
        certificate=certificate,
        status=status_of(certificate, today),
        reason=certificate_status_reason(facts_of(certificate), today),
    )


def certificate_rows(certificates: Sequence[Certificate], today: date) -> list[CertificateRow]:
    return [certificate_row(c, today) for c in certificates]


@dataclass(frozen=True)
class EmploymentRow:
    employment: Employment
    enterprise: Enterprise | None  # None: outside the viewer's scope, not named
    linkable: bool = True  # the viewer may open the enterprise's page

    @property
    def current(self) -> bool:
        return self.employment.end_date is None


def employment_rows(
    scope: Scope, employments: Sequence[tuple[Employment, Enterprise]]
) -> list[EmploymentRow]:
    """Employment history. Enterprises outside the scope stay anonymous so that
    a welder's page does not reveal them; a welder sees their own employers by
    name (the current ones, which their scope reaches, with a link)."""
    rows = []
    for employment, enterprise in employments:
        if scope.welder_id is not None:
            # Mirrors Scope.enterprise_filter(): a welder reaches current employers.
            rows.append(EmploymentRow(employment, enterprise, employment.end_date is None))
        elif scope.covers_enterprise(enterprise):
            rows.append(EmploymentRow(employment, enterprise))
        else:
            rows.append(EmploymentRow(employment, None, False))
    return rows


def shown_phone(phone: str | None, full: bool) -> str:
    if not phone:
        return ""
    return phone if full else mask_phone(phone)


@dataclass(frozen=True)
class WelderRow:
    welder: Welder
    phone: str
    employers: list[Enterprise]
    certificates: list[CertificateRow]

    @property
    def certified(self) -> bool:
        return any(row.status.is_usable for row in self.certificates)


def welder_rows(
    session: Session, scope: Scope, welders: Sequence[Welder], today: date, full_phone: bool
) -> list[WelderRow]:
    repo = WelderRepository(session)
    ids = [welder.id for welder in welders]
    employments = repo.employments_of_many(ids)
    certificates = repo.certificates_of_many(ids)
    rows = []
    for welder in welders:
        employers = [
            row.enterprise
            for row in employment_rows(scope, employments[welder.id])
            if row.current and row.enterprise is not None
        ]
        rows.append(
            WelderRow(
                welder=welder,
                phone=shown_phone(welder.phone, full_phone),
                employers=employers,
                certificates=certificate_rows(certificates[welder.id], today),
            )
        )
    return rows


@dataclass(frozen=True)
class MachineRow:
    machine: Machine
    enterprise: Enterprise | None
    chip: Chip | None

    @property
    def tone(self) -> str:
        return MACHINE_TONE.get(self.machine.status, "muted")


def visible_enterprises(
    session: Session, scope: Scope, enterprise_ids: Sequence[int]
) -> dict[int, Enterprise]:
    return EnterpriseRepository(session).visible_by_ids(scope, enterprise_ids)


def machine_rows(
    session: Session, scope: Scope, machines: Sequence[Machine], chips: dict[int, Chip]
) -> list[MachineRow]:
    enterprises = visible_enterprises(session, scope, [m.enterprise_id for m in machines])
    return [MachineRow(m, enterprises.get(m.enterprise_id), chips.get(m.id)) for m in machines]
