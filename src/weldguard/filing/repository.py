"""Every query of small-works filings and their checks."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.orm import Session, selectinload

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.enterprise.models import Enterprise
from weldguard.filing.models import SmallWorkCheck, SmallWorkFiling
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.paths import within
from weldguard.pagination import Page, paginate

# Who reads filings by area: the street's (and the levels above) regulators and
# inspectors. Installers have an area too, but filings are none of their business.
AREA_READERS = frozenset({Role.REGULATOR, Role.INSPECTOR})


def visible_filings(scope: Scope) -> ColumnElement[bool]:
    """The filer's enterprise sees its own filings; regulators and inspectors those
    filed with a street of their subtree (every sector: a small works filing is
    the street's, whoever does the works); nobody else any."""
    if scope.everything:
        return true()
    if scope.enterprise_id is not None:
        return SmallWorkFiling.enterprise_id == scope.enterprise_id
    if scope.role in AREA_READERS and scope.area_path is not None:
        return within(SmallWorkFiling.area_path, scope.area_path)
    return false()


class FilingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _loaded(self) -> Select[SmallWorkFiling]:
        return select(SmallWorkFiling).options(selectinload(SmallWorkFiling.checks))

    def page(
        self, scope: Scope, status: str | None, area_path: str | None, page: int, size: int
    ) -> Page[SmallWorkFiling]:
        """Latest filed first."""
        stmt = self._loaded().where(visible_filings(scope))
        if status is not None:
            stmt = stmt.where(SmallWorkFiling.status == status)
        if area_path is not None:
            stmt = stmt.where(within(SmallWorkFiling.area_path, area_path))
        stmt = stmt.order_by(SmallWorkFiling.filed_at.desc(), SmallWorkFiling.id.desc())
        return paginate(self.session, stmt, page, size)

    def visible(self, scope: Scope, filing_id: int) -> SmallWorkFiling | None:
        return self.session.scalars(
            self._loaded().where(SmallWorkFiling.id == filing_id, visible_filings(scope))
        ).one_or_none()

    def add(self, filing: SmallWorkFiling) -> SmallWorkFiling:
        self.session.add(filing)
        self.session.flush()
        return filing

    def add_check(self, check: SmallWorkCheck) -> SmallWorkCheck:
        self.session.add(check)
        self.session.flush()
        return check

    def enterprise(self, enterprise_id: int) -> Enterprise | None:
        return self.session.get(Enterprise, enterprise_id)

    def enterprise_by_credit_code(self, credit_code: str) -> Enterprise | None:
        return self.session.scalars(
            select(Enterprise).where(Enterprise.credit_code == credit_code)
        ).one_or_none()

    def jurisdiction_by_code(self, code: str) -> Jurisdiction | None:
        return self.session.scalars(
            select(Jurisdiction).where(Jurisdiction.code == code)
        ).one_or_none()
