"""Queries for welders, certificates and employment. Every read takes a Scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.domain.certificates import DEFAULT_POLICY, CertificatePolicy, CertificateStatus
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.paths import within
from weldguard.pagination import Page, paginate
from weldguard.welder.models import Certificate, Employment, Welder


def certificate_status_sql(
    today: date, policy: CertificatePolicy = DEFAULT_POLICY
) -> ColumnElement[str]:
    """The SQL twin of domain.certificates.certificate_status, over stored
    (already derived) expiry and review dates. tests/welder prove they agree."""
    horizon = today + timedelta(days=policy.expiring_within_days)
    review = Certificate.review_due_date
    return case(
        (Certificate.revoked.is_(True), CertificateStatus.REVOKED.value),
        (Certificate.expiry_date < today, CertificateStatus.EXPIRED.value),
        (and_(review.is_not(None), review < today), CertificateStatus.REVIEW_OVERDUE.value),
        (Certificate.verified.is_(False), CertificateStatus.PENDING_VERIFICATION.value),
        (
            or_(Certificate.expiry_date <= horizon, and_(review.is_not(None), review <= horizon)),
            CertificateStatus.EXPIRING.value,
        ),
        else_=CertificateStatus.VALID.value,
    )


def usable_certificate_exists(today: date) -> ColumnElement[bool]:
    """Welder has at least one valid or expiring certificate (correlated on Welder)."""
    status = certificate_status_sql(today)
    return exists(
        select(Certificate.id).where(
            Certificate.welder_id == Welder.id,
            status.in_([CertificateStatus.VALID.value, CertificateStatus.EXPIRING.value]),
        )
    )


@dataclass(frozen=True)
class WelderFilter:
    q: str | None = None  # name or phone
    enterprise_id: int | None = None
    area_path: str | None = None
    certified: bool | None = None  # has a valid or expiring certificate


@dataclass(frozen=True)
class CertificateFilter:
    q: str | None = None  # holder name
    kind: str | None = None
    status: str | None = None
    source: str | None = None
    enterprise_id: int | None = None
    area_path: str | None = None  # holders employed in this subtree


class WelderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- welders -----------------------------------------------------------
    def by_id_hash(self, id_hash: str) -> Welder | None:
        """Unscoped: registration and certificate import match people by ID hash."""
        return self.session.scalars(
            select(Welder).where(Welder.id_number_hash == id_hash)
        ).one_or_none()

    def by_id_hashes(self, hashes: list[str]) -> dict[str, Welder]:
        found: dict[str, Welder] = {}
        for start in range(0, len(hashes), 500):
            for welder in self.session.scalars(
                select(Welder).where(Welder.id_number_hash.in_(hashes[start : start + 500]))
            ):
                found[welder.id_number_hash] = welder
        return found

    def visible(self, scope: Scope, welder_id: int) -> Welder | None:
        return self.session.scalars(
            select(Welder).where(Welder.id == welder_id, scope.welder_filter(Welder.id))
        ).one_or_none()

    def _employed_in(self, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(
            select(Employment.id)
            .join(Enterprise, Enterprise.id == Employment.enterprise_id)
            .where(Employment.welder_id == Welder.id, Employment.end_date.is_(None), *conditions)
        )

    def search_statement(self, scope: Scope, f: WelderFilter, today: date) -> Select[Welder]:
        stmt = select(Welder).where(scope.welder_filter(Welder.id))
        if f.q:
            like = f"%{f.q.strip()}%"
            stmt = stmt.where(or_(Welder.name.like(like), Welder.phone.like(like)))
        if f.enterprise_id is not None:
            stmt = stmt.where(self._employed_in(Employment.enterprise_id == f.enterprise_id))
        if f.area_path:
            stmt = stmt.where(self._employed_in(within(Enterprise.area_path, f.area_path)))
        if f.certified is not None:
            has = usable_certificate_exists(today)
            stmt = stmt.where(has if f.certified else ~has)
        return stmt.order_by(Welder.name, Welder.id)

    def search(
        self, scope: Scope, f: WelderFilter, today: date, page: int, size: int
    ) -> Page[Welder]:
        return paginate(self.session, self.search_statement(scope, f, today), page, size)

    def add(self, welder: Welder) -> Welder:
        self.session.add(welder)
        self.session.flush()
        return welder

    # --- certificates ------------------------------------------------------
    def certificates_of(self, welder_id: int) -> list[Certificate]:
        return list(
            self.session.scalars(
                select(Certificate)
                .where(Certificate.welder_id == welder_id)
                .order_by(Certificate.expiry_date.desc())
            )
        )

    def certificates_of_many(self, welder_ids: list[int]) -> dict[int, list[Certificate]]:
        found: dict[int, list[Certificate]] = {wid: [] for wid in welder_ids}
        if welder_ids:
            for certificate in self.session.scalars(
                select(Certificate)
                .where(Certificate.welder_id.in_(welder_ids))
                .order_by(Certificate.expiry_date.desc())
            ):
                found[certificate.welder_id].append(certificate)
        return found

    def certificate_by_number_hash(self, kind: str, number_hash: str) -> Certificate | None:
        return self.session.scalars(
            select(Certificate).where(
                Certificate.kind == kind, Certificate.number_hash == number_hash
            )
        ).one_or_none()

    def visible_certificate(self, scope: Scope, certificate_id: int) -> Certificate | None:
        return self.session.scalars(
            select(Certificate).where(
                Certificate.id == certificate_id, scope.welder_filter(Certificate.welder_id)
            )
        ).one_or_none()

    def certificate_search_statement(
        self, scope: Scope, f: CertificateFilter, today: date
    ) -> Select[Certificate]:
        stmt = select(Certificate).where(scope.welder_filter(Certificate.welder_id))
        if f.q:
            holders = select(Welder.id).where(Welder.name.like(f"%{f.q.strip()}%"))
            stmt = stmt.where(Certificate.welder_id.in_(holders))
        if f.kind:
            stmt = stmt.where(Certificate.kind == f.kind)
        if f.source:
            stmt = stmt.where(Certificate.source == f.source)
        if f.status:
            stmt = stmt.where(certificate_status_sql(today) == f.status)
        if f.enterprise_id is not None:
            employed = select(Employment.welder_id).where(
                Employment.enterprise_id == f.enterprise_id, Employment.end_date.is_(None)
            )
            stmt = stmt.where(Certificate.welder_id.in_(employed))
        if f.area_path:
            in_area = (
                select(Employment.welder_id)
                .join(Enterprise, Enterprise.id == Employment.enterprise_id)
                .where(
                    Employment.end_date.is_(None),
                    within(Enterprise.area_path, f.area_path),
                )
            )
            stmt = stmt.where(Certificate.welder_id.in_(in_area))
        return stmt.order_by(Certificate.expiry_date, Certificate.id)

    def search_certificates(
        self, scope: Scope, f: CertificateFilter, today: date, page: int, size: int
    ) -> Page[Certificate]:
        return paginate(
            self.session, self.certificate_search_statement(scope, f, today), page, size
        )

    def add_certificate(self, certificate: Certificate) -> Certificate:
        self.session.add(certificate)
        self.session.flush()
        return certificate

    # --- employment --------------------------------------------------------
    def employments_of(self, welder_id: int) -> list[tuple[Employment, Enterprise]]:
        rows = self.session.execute(
            select(Employment, Enterprise)
            .join(Enterprise, Enterprise.id == Employment.enterprise_id)
            .where(Employment.welder_id == welder_id)
            .order_by(Employment.start_date.desc())
        )
        return [(e, ent) for e, ent in rows]

    def employments_of_many(
        self, welder_ids: list[int]
    ) -> dict[int, list[tuple[Employment, Enterprise]]]:
        found: dict[int, list[tuple[Employment, Enterprise]]] = {wid: [] for wid in welder_ids}
        if welder_ids:
            rows = self.session.execute(
                select(Employment, Enterprise)
                .join(Enterprise, Enterprise.id == Employment.enterprise_id)
                .where(Employment.welder_id.in_(welder_ids))
                .order_by(Employment.start_date.desc())
            )
            for employment, enterprise in rows:
                found[employment.welder_id].append((employment, enterprise))
        return found

    def open_employment(self, welder_id: int, enterprise_id: int) -> Employment | None:
        return self.session.scalars(
            select(Employment).where(
                Employment.welder_id == welder_id,
                Employment.enterprise_id == enterprise_id,
                Employment.end_date.is_(None),
            )
        ).first()

    def add_employment(self, employment: Employment) -> Employment:
        self.session.add(employment)
        self.session.flush()
        return employment

    def names_by_ids(self, welder_ids: list[int]) -> dict[int, str]:
        if not welder_ids:
            return {}
        rows = self.session.execute(select(Welder.id, Welder.name).where(Welder.id.in_(welder_ids)))
        return {wid: name for wid, name in rows}

    def count_visible(self, scope: Scope) -> int:
        return (
            self.session.scalar(select(func.count(Welder.id)).where(scope.welder_filter(Welder.id)))
            or 0
        )
