"""The one place that decides what a user may read and write.

Every repository query for enterprises, machines, welders and certificates goes
through a Scope. Records outside the scope are treated as absent (404), so a
user cannot even learn that they exist."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, exists, false, select, true
from sqlalchemy.orm import InstrumentedAttribute

from weldguard.auth.models import Role
from weldguard.enterprise.models import Enterprise
from weldguard.errors import PermissionDenied
from weldguard.jurisdiction.paths import within
from weldguard.welder.models import Employment


class Action(StrEnum):
    """What a user may write; reads are decided by the scope alone."""

    MANAGE_REGISTER = "manage_register"  # create/update enterprises, import the register
    MANAGE_ENTERPRISE_ASSETS = "manage_enterprise_assets"  # machines, sites, welders, employment
    IMPORT_CERTIFICATES = "import_certificates"
    MANAGE_USERS = "manage_users"
    EXPORT = "export"


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.REGULATOR: frozenset(
        {Action.MANAGE_REGISTER, Action.MANAGE_ENTERPRISE_ASSETS, Action.EXPORT}
    ),
    Role.INSPECTOR: frozenset({Action.EXPORT}),
    Role.ENTERPRISE_ADMIN: frozenset({Action.MANAGE_ENTERPRISE_ASSETS, Action.EXPORT}),
    Role.SAFETY_OFFICER: frozenset({Action.MANAGE_ENTERPRISE_ASSETS, Action.EXPORT}),
    Role.WELDER: frozenset(),
    Role.INSTALLER: frozenset(),
}


@dataclass(frozen=True)
class Scope:
    """A user's reach. Exactly one of the shapes applies:
    everything (admin), a jurisdiction subtree optionally limited to sectors
    (regulator, inspector, installer), one enterprise (enterprise roles), or one
    welder's own records (welder). A user with no binding reaches nothing."""

    role: Role
    user_id: int
    everything: bool = False
    area_path: str | None = None
    sectors: frozenset[str] | None = None  # None: every sector
    enterprise_id: int | None = None
    welder_id: int | None = None

    # --- writes -------------------------------------------------------------
    def may(self, action: Action) -> bool:
        return action in _ALLOWED[self.role]

    def require(self, action: Action) -> None:
        if not self.may(action):
            raise PermissionDenied("当前账号无权执行此操作")

    # --- pure checks (objects already loaded) -------------------------------
    def covers_path(self, area_path: str) -> bool:
        if self.everything:
            return True
        return self.area_path is not None and area_path.startswith(self.area_path)

    def covers_sector(self, sector: str) -> bool:
        return self.everything or self.sectors is None or sector in self.sectors

    def covers_area(self, area_path: str, sector: str) -> bool:
        return self.covers_path(area_path) and self.covers_sector(sector)

    def covers_enterprise(self, enterprise: Enterprise) -> bool:
        if self.enterprise_id is not None:
            return enterprise.id == self.enterprise_id
        if self.welder_id is not None:
            return False
        return self.covers_area(enterprise.area_path, enterprise.sector)

    # --- SQL filters --------------------------------------------------------
    def enterprise_filter(self) -> ColumnElement[bool]:
        """A WHERE clause over the Enterprise table."""
        if self.everything:
            return true()
        if self.enterprise_id is not None:
            return Enterprise.id == self.enterprise_id
        if self.welder_id is not None:
            # A welder sees the enterprises that employ them, nothing more.
            return Enterprise.id.in_(
                select(Employment.enterprise_id).where(
                    Employment.welder_id == self.welder_id, Employment.end_date.is_(None)
                )
            )
        if self.area_path is None:
            return false()
        clause = within(Enterprise.area_path, self.area_path)
        if self.sectors is not None:
            clause = and_(clause, Enterprise.sector.in_(sorted(self.sectors)))
        return clause

    def welder_filter(
        self, welder_id_column: ColumnElement[int] | InstrumentedAttribute[int]
    ) -> ColumnElement[bool]:
        """Welders are visible to a welder (themself) and to anyone who sees an
        enterprise that employs them (past or present: history stays reviewable)."""
        if self.everything:
            return true()
        if self.welder_id is not None:
            return welder_id_column == self.welder_id
        employed = (
            select(Employment.id)
            .join(Enterprise, Enterprise.id == Employment.enterprise_id)
            .where(Employment.welder_id == welder_id_column, self.enterprise_filter())
        )
        return exists(employed)
