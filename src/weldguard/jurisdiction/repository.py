"""Queries for the jurisdiction tree and departments."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from weldguard.jurisdiction.models import Department, Jurisdiction
from weldguard.jurisdiction.paths import within


class JurisdictionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_id(self, jurisdiction_id: int) -> Jurisdiction | None:
        return self.session.get(Jurisdiction, jurisdiction_id)

    def by_code(self, code: str) -> Jurisdiction | None:
        return self.session.scalars(
            select(Jurisdiction).where(Jurisdiction.code == code)
        ).one_or_none()

    def all(self) -> list[Jurisdiction]:
        return list(self.session.scalars(select(Jurisdiction).order_by(Jurisdiction.path)))

    def subtree(self, path: str) -> list[Jurisdiction]:
        return list(
            self.session.scalars(
                select(Jurisdiction)
                .where(within(Jurisdiction.path, path))
                .order_by(Jurisdiction.path)
            )
        )

    def children(self, parent_id: int | None) -> list[Jurisdiction]:
        clause = (
            Jurisdiction.parent_id.is_(None)
            if parent_id is None
            else Jurisdiction.parent_id == parent_id
        )
        return list(
            self.session.scalars(select(Jurisdiction).where(clause).order_by(Jurisdiction.code))
        )

    def add(self, node: Jurisdiction) -> Jurisdiction:
        self.session.add(node)
        self.session.flush()
        return node


class DepartmentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_id(self, department_id: int) -> Department | None:
        return self.session.get(Department, department_id)

    def find(self, key: str) -> Department | None:
        """By code (emergency), short name (应急) or full name (应急管理局)."""
        return self.session.scalars(
            select(Department).where(
                or_(Department.code == key, Department.short_name == key, Department.name == key)
            )
        ).one_or_none()

    def all(self) -> list[Department]:
        return list(self.session.scalars(select(Department).order_by(Department.id)))

    def add(self, department: Department) -> Department:
        self.session.add(department)
        self.session.flush()
        return department
