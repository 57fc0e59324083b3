"""Queries for enterprises and sites. Every read takes the caller's Scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.enterprise.models import Enterprise, Site
from weldguard.jurisdiction.paths import within
from weldguard.pagination import Page, paginate


@dataclass(frozen=True)
class EnterpriseFilter:
    q: str | None = None  # name, credit code or address fragment
    area_path: str | None = None  # narrow to a subtree inside the scope
    sector: str | None = None
    crowded_subtype: str | None = None
    production_status: str | None = None
    mobile_work: bool | None = None


class EnterpriseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_credit_code(self, credit_code: str) -> Enterprise | None:
        """Unscoped: for imports and account binding, which check scope themselves."""
        return self.session.scalars(
            select(Enterprise).where(Enterprise.credit_code == credit_code)
        ).one_or_none()

    def by_credit_codes(self, codes: Sequence[str]) -> dict[str, Enterprise]:
        found: dict[str, Enterprise] = {}
        for start in range(0, len(codes), 500):
            chunk = codes[start : start + 500]
            for enterprise in self.session.scalars(
                select(Enterprise).where(Enterprise.credit_code.in_(chunk))
            ):
                found[enterprise.credit_code] = enterprise
        return found

    def visible(self, scope: Scope, enterprise_id: int) -> Enterprise | None:
        return self.session.scalars(
            select(Enterprise).where(Enterprise.id == enterprise_id, scope.enterprise_filter())
        ).one_or_none()

    def visible_by_ids(self, scope: Scope, enterprise_ids: Sequence[int]) -> dict[int, Enterprise]:
        """The visible ones among these ids, in one query (list pages)."""
        ids = sorted(set(enterprise_ids))
        if not ids:
            return {}
        return {
            e.id: e
            for e in self.session.scalars(
                select(Enterprise).where(Enterprise.id.in_(ids), scope.enterprise_filter())
            )
        }

    def visible_by_credit_code(self, scope: Scope, credit_code: str) -> Enterprise | None:
        return self.session.scalars(
            select(Enterprise).where(
                Enterprise.credit_code == credit_code, scope.enterprise_filter()
            )
        ).one_or_none()

    def search_statement(self, scope: Scope, f: EnterpriseFilter) -> Select[Enterprise]:
        stmt = select(Enterprise).where(scope.enterprise_filter())
        if f.q:
            like = f"%{f.q.strip()}%"
            stmt = stmt.where(
                or_(
                    Enterprise.name.like(like),
                    Enterprise.credit_code.like(like),
                    Enterprise.address.like(like),
                )
            )
        if f.area_path:
            stmt = stmt.where(within(Enterprise.area_path, f.area_path))
        if f.sector:
            stmt = stmt.where(Enterprise.sector == f.sector)
        if f.crowded_subtype:
            stmt = stmt.where(Enterprise.crowded_subtype == f.crowded_subtype)
        if f.production_status:
            stmt = stmt.where(Enterprise.production_status == f.production_status)
        if f.mobile_work is not None:
            stmt = stmt.where(Enterprise.mobile_work == f.mobile_work)
        return stmt.order_by(Enterprise.area_path, Enterprise.name, Enterprise.id)

    def search(self, scope: Scope, f: EnterpriseFilter, page: int, size: int) -> Page[Enterprise]:
        return paginate(self.session, self.search_statement(scope, f), page, size)

    def all_visible(self, scope: Scope, f: EnterpriseFilter | None = None) -> list[Enterprise]:
        return list(self.session.scalars(self.search_statement(scope, f or EnterpriseFilter())))

    def count_visible(self, scope: Scope) -> int:
        return (
            self.session.scalar(select(func.count(Enterprise.id)).where(scope.enterprise_filter()))
            or 0
        )

    def add(self, enterprise: Enterprise) -> Enterprise:
        self.session.add(enterprise)
        self.session.flush()
        return enterprise

    # --- sites --------------------------------------------------------------
    def sites(self, enterprise_id: int) -> list[Site]:
        return list(
            self.session.scalars(
                select(Site).where(Site.enterprise_id == enterprise_id).order_by(Site.name)
            )
        )

    def site(self, enterprise_id: int, site_id: int) -> Site | None:
        return self.session.scalars(
            select(Site).where(Site.id == site_id, Site.enterprise_id == enterprise_id)
        ).one_or_none()

    def add_site(self, site: Site) -> Site:
        self.session.add(site)
        self.session.flush()
        return site
