"""The one place that decides what a user may read and write.

Every repository query for enterprises, machines, welders and certificates goes
through a Scope. Records outside the scope are treated as absent (404), so a
user cannot even learn that they exist."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true
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
    DECLARE_SPECIAL_PERIOD = "declare_special_period"  # 特殊时期, within the jurisdiction


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.REGULATOR: frozenset(
        {
            Action.MANAGE_REGISTER,
            Action.MANAGE_ENTERPRISE_ASSETS,
            Action.EXPORT,
            Action.DECLARE_SPECIAL_PERIOD,
        }
    ),
    Role.INSPECTOR: frozenset({Action.EXPORT}),
    Role.ENTERPRISE_ADMIN: frozenset({Action.MANAGE_ENTERPRISE_ASSETS, Action.EXPORT}),
    Role.SAFETY_OFFICER: frozenset({Action.MANAGE_ENTERPRISE_ASSETS, Action.EXPORT}),
    Role.UNIT_HEAD: frozenset(),
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

    def record_filter(
        self,
        area_path_column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
        enterprise_id_column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
        welder_id_column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    ) -> ColumnElement[bool]:
        """A WHERE clause over a record that carries a copy of its enterprise's
        area path (scan records, work sessions), so that an area is an index range
        on the record itself, without a join. Enterprise users see their
        enterprise's records, a welder only their own; a sector-limited department
        those of enterprises in its sectors. Records without an area (a forged
        label) are seen only by those who see everything."""
        if self.everything:
            return true()
        if self.enterprise_id is not None:
            return enterprise_id_column == self.enterprise_id
        if self.welder_id is not None:
            return welder_id_column == self.welder_id
        if self.area_path is None:
            return false()
        clause = within(area_path_column, self.area_path)  # type: ignore[arg-type]
        if self.sectors is not None:
            in_sectors = select(Enterprise.id).where(Enterprise.sector.in_(sorted(self.sectors)))
            clause = and_(clause, enterprise_id_column.in_(in_sectors))
        return clause

    def area_overlap_filter(
        self, area_path_column: InstrumentedAttribute[str]
    ) -> ColumnElement[bool]:
        """A WHERE clause over a record that applies to a whole subtree (a special
        period): visible when the subtree lies inside the scope's, or contains it
        (a city-wide period concerns a district); for enterprise and welder scopes,
        when it contains one of their enterprises."""
        if self.everything:
            return true()
        if self.area_path is not None and self.enterprise_id is None and self.welder_id is None:
            parts = self.area_path.rstrip("/").split("/")
            ancestors = ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
            return or_(within(area_path_column, self.area_path), area_path_column.in_(ancestors))
        if self.enterprise_id is None and self.welder_id is None:
            return false()
        covered = func.substr(Enterprise.area_path, 1, func.length(area_path_column))
        return exists(
            select(Enterprise.id).where(self.enterprise_filter(), covered == area_path_column)
        )
