"""The SQL behind the home-page statistics.

Every query is narrowed by the caller's Scope (``scope.enterprise_filter()``)
and optionally by an area subtree. Counts can be grouped by the child nodes of
an area in one query per figure: each enterprise is mapped to the child whose
path prefixes its own through a CASE expression."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.domain.certificates import CertificateStatus
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.paths import within
from weldguard.machine.models import Machine, MachineStatus
from weldguard.welder.models import Certificate, Employment
from weldguard.welder.repository import certificate_status_sql

USABLE = (CertificateStatus.VALID.value, CertificateStatus.EXPIRING.value)

# Key under which ungrouped counts are returned.
ALL = 0


@dataclass(frozen=True)
class RawCounts:
    enterprises: int = 0
    machines: int = 0
    machines_with_chip: int = 0
    welders: int = 0
    welders_with_valid_certificate: int = 0
    certificates_expiring: int = 0


class StatsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- the tree -----------------------------------------------------------
    def node_by_path(self, path: str) -> Jurisdiction | None:
        return self.session.scalars(
            select(Jurisdiction).where(Jurisdiction.path == path)
        ).one_or_none()

    def child_nodes(self, parent_path: str | None) -> list[Jurisdiction]:
        """Children of the node with ``parent_path``; the roots for None."""
        if parent_path is None:
            clause: ColumnElement[bool] = Jurisdiction.parent_id.is_(None)
        else:
            parent = self.node_by_path(parent_path)
            if parent is None:
                return []
            clause = Jurisdiction.parent_id == parent.id
        return list(
            self.session.scalars(select(Jurisdiction).where(clause).order_by(Jurisdiction.code))
        )

    # --- counts -------------------------------------------------------------
    def counts(
        self,
        scope: Scope,
        today: date,
        area_path: str | None = None,
        enterprise_id: int | None = None,
    ) -> RawCounts:
        grouped = self._grouped(scope, today, None, area_path, enterprise_id)
        return grouped.get(ALL, RawCounts())

    def counts_by_node(
        self, scope: Scope, today: date, nodes: Sequence[Jurisdiction]
    ) -> dict[int, RawCounts]:
        """Counts per node (by node id), for sibling nodes whose subtrees do not overlap."""
        if not nodes:
            return {}
        key = case(
            *[(within(Enterprise.area_path, node.path), node.id) for node in nodes],
            else_=None,
        )
        return self._grouped(scope, today, key, None, None)

    def _grouped(
        self,
        scope: Scope,
        today: date,
        key: ColumnElement[int | None] | None,
        area_path: str | None,
        enterprise_id: int | None,
    ) -> dict[int, RawCounts]:
        where: list[ColumnElement[bool]] = [scope.enterprise_filter()]
        if area_path:
            where.append(within(Enterprise.area_path, area_path))
        if enterprise_id is not None:
            where.append(Enterprise.id == enterprise_id)

        def rows(stmt: Select[Any]) -> dict[int, int]:
            """Runs a one-count statement, grouped by ``key`` when there is one."""
            if key is None:
                return {ALL: self.session.scalar(stmt) or 0}
            grouped = stmt.add_columns(key).group_by(key)
            return {k: n for n, k in self.session.execute(grouped).all() if k is not None}

        enterprises = rows(select(func.count(Enterprise.id)).where(*where))

        in_service = Machine.status != MachineStatus.RETIRED.value
        machine_base = select(func.count(Machine.id)).join(
            Enterprise, Enterprise.id == Machine.enterprise_id
        )
        machines = rows(machine_base.where(*where, in_service))
        chipped = rows(
            machine_base.where(*where, Machine.status == MachineStatus.CHIP_FITTED.value)
        )

        # Welders: distinct people with an open employment at a visible enterprise.
        employed = and_(Employment.end_date.is_(None), *where)
        welder_base = select(func.count(func.distinct(Employment.welder_id))).join(
            Enterprise, Enterprise.id == Employment.enterprise_id
        )
        status = certificate_status_sql(today)
        usable = exists(
            select(Certificate.id).where(
                Certificate.welder_id == Employment.welder_id, status.in_(USABLE)
            )
        )
        welders = rows(welder_base.where(employed))
        certified = rows(welder_base.where(employed, usable))

        expiring = rows(
            select(func.count(func.distinct(Certificate.id)))
            .select_from(Certificate)
            .join(Employment, Employment.welder_id == Certificate.welder_id)
            .join(Enterprise, Enterprise.id == Employment.enterprise_id)
            .where(employed, status == CertificateStatus.EXPIRING.value)
        )

        keys = set(enterprises) | set(machines) | set(welders) | set(expiring)
        if key is None:
            keys.add(ALL)
        return {
            k: RawCounts(
                enterprises=enterprises.get(k, 0),
                machines=machines.get(k, 0),
                machines_with_chip=chipped.get(k, 0),
                welders=welders.get(k, 0),
                welders_with_valid_certificate=certified.get(k, 0),
                certificates_expiring=expiring.get(k, 0),
            )
            for k in keys
        }
