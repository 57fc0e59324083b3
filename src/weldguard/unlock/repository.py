"""Queries of the unlock area. Every read of the register takes a Scope."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.enterprise.models import Enterprise
from weldguard.machine.models import Machine


class LabelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def machine_with_enterprise(
        self, scope: Scope, machine_id: int
    ) -> tuple[Machine, Enterprise] | None:
        row = self.session.execute(
            select(Machine, Enterprise)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(Machine.id == machine_id, scope.enterprise_filter())
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def machines_of(self, scope: Scope, enterprise_id: int) -> list[Machine]:
        """Every machine of a visible enterprise (retired ones too), by code."""
        return list(
            self.session.scalars(
                select(Machine)
                .join(Enterprise, Enterprise.id == Machine.enterprise_id)
                .where(Machine.enterprise_id == enterprise_id, scope.enterprise_filter())
                .order_by(Machine.code)
            )
        )

    def machine_by_code(self, code: str) -> Machine | None:
        """Unscoped: a scanned label resolves for anyone who holds it."""
        return self.session.scalars(select(Machine).where(Machine.code == code)).one_or_none()
