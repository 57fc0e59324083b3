"""Home-page statistics: the counts of an area as a regulator sees it.

Definitions (all within the caller's scope and the area asked for):
- enterprises: registered enterprises;
- machines: machines in service (retired machines are left out);
- machines with chip: machines whose status is chip_fitted;
- welders: distinct welders with an open employment at a counted enterprise;
- welders with a valid certificate: those of them holding a valid or expiring
  certificate (the same rule as the welder list's "certified" filter);
- certificates expiring within 30 days: certificates of those welders whose
  status is "expiring".
Percentages have one decimal and are 0 when the denominator is 0."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.enterprise.models import Enterprise
from weldguard.errors import NotFound
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.report.stats_repository import RawCounts, StatsRepository


@dataclass(frozen=True)
class AreaCounts:
    enterprises: int
    machines: int
    machines_with_chip: int
    machine_chip_percent: float
    welders: int
    welders_with_valid_certificate: int
    welder_certified_percent: float
    certificates_expiring_30d: int


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _from_raw(raw: RawCounts) -> AreaCounts:
    return AreaCounts(
        enterprises=raw.enterprises,
        machines=raw.machines,
        machines_with_chip=raw.machines_with_chip,
        machine_chip_percent=percent(raw.machines_with_chip, raw.machines),
        welders=raw.welders,
        welders_with_valid_certificate=raw.welders_with_valid_certificate,
        welder_certified_percent=percent(raw.welders_with_valid_certificate, raw.welders),
        certificates_expiring_30d=raw.certificates_expiring,
    )


def area_counts(
    session: Session, scope: Scope, today: date, area_path: str | None = None
) -> AreaCounts:
    """The counts of the scope, narrowed to the subtree ``area_path`` when given."""
    return _from_raw(StatsRepository(session).counts(scope, today, area_path=area_path))


def enterprise_counts(
    session: Session, scope: Scope, today: date, enterprise: Enterprise
) -> AreaCounts:
    """The counts of one enterprise the scope covers (404 otherwise)."""
    if not scope.covers_enterprise(enterprise):
        raise NotFound("企业不存在")
    raw = StatsRepository(session).counts(scope, today, enterprise_id=enterprise.id)
    return _from_raw(raw)


def counts_by_child_area(
    session: Session, scope: Scope, today: date, parent_path: str | None
) -> list[tuple[Jurisdiction, AreaCounts]]:
    """One row per child node of ``parent_path`` (the roots for None), in code
    order, each with the counts of its subtree within the scope. Children whose
    subtree the scope does not reach at all are left out."""
    repo = StatsRepository(session)
    children = [node for node in repo.child_nodes(parent_path) if _reachable(scope, node)]
    counts = repo.counts_by_node(scope, today, children)
    return [(node, _from_raw(counts.get(node.id, RawCounts()))) for node in children]


def _reachable(scope: Scope, node: Jurisdiction) -> bool:
    if scope.everything or scope.area_path is None:
        return True
    # A node inside the scope's subtree, or an ancestor of it.
    return node.path.startswith(scope.area_path) or scope.area_path.startswith(node.path)
