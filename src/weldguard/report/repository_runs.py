"""Queries for import runs."""

from __future__ import annotations

from sqlalchemy.orm import Session

from weldguard.auth.models import Role, User
from weldguard.report.models import ImportRun


class ImportRunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def visible(self, run_id: int, user: User) -> ImportRun | None:
        """An import's report belongs to whoever ran it (and to admins): it may
        name enterprises outside the area of other users."""
        run = self.session.get(ImportRun, run_id)
        if run is None:
            return None
        if run.user_id == user.id or user.role == Role.ADMIN.value:
            return run
        return None
