"""Machine bookings: a machine is on at most one live permit at a time.

A permit claims its machines over ``[starts_at, ends_at)`` from submission until
its work ends (the post-work watch frees them: the machines are locked by then),
or until it is cancelled or expires. Drafts claim nothing yet. Windows that only
touch (one ends when the other starts) do not overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from weldguard.clock import SHANGHAI
from weldguard.domain.permits.model import Permit, PermitContent, PermitStatus
from weldguard.domain.permits.reasons import PermitReason, PermitReasonCode, local_text

__all__ = [
    "CLAIMING_STATUSES",
    "MachineClaim",
    "Overlap",
    "check_overlap",
    "claim_of_content",
    "machine_claim",
    "overlapping",
]

CLAIMING_STATUSES = frozenset(
    {
        PermitStatus.SUBMITTED,
        PermitStatus.APPROVED,
        PermitStatus.CLEARED,
        PermitStatus.IN_PROGRESS,
        PermitStatus.PAUSED,
        PermitStatus.SUSPENDED,
    }
)


@dataclass(frozen=True)
class MachineClaim:
    """A permit's machines over its window ``[starts_at, ends_at)``."""

    permit_id: int
    number: str
    machine_ids: frozenset[int]
    starts_at: datetime
    ends_at: datetime
    machine_labels: tuple[tuple[int, str], ...] = ()

    def label_of(self, machine_id: int) -> str:
        return dict(self.machine_labels).get(machine_id, f"#{machine_id}")


def claim_of_content(content: PermitContent) -> MachineClaim:
    """The claim a permit with ``content`` makes (or would make once submitted)."""
    return MachineClaim(
        permit_id=content.id,
        number=content.number,
        machine_ids=content.machine_ids,
        starts_at=content.starts_at,
        ends_at=content.ends_at,
        machine_labels=tuple((m.machine_id, m.label) for m in content.machines),
    )


def machine_claim(permit: Permit) -> MachineClaim | None:
    """The permit's claim, or ``None`` when it claims nothing (draft, ended)."""
    if permit.status not in CLAIMING_STATUSES:
        return None
    return claim_of_content(permit.content)


@dataclass(frozen=True)
class Overlap:
    """Two claims on the same machines at the same time."""

    first: MachineClaim
    second: MachineClaim
    machine_ids: frozenset[int]
    starts_at: datetime
    ends_at: datetime


def _overlap(a: MachineClaim, b: MachineClaim) -> Overlap | None:
    shared = a.machine_ids & b.machine_ids
    if not shared or a.permit_id == b.permit_id:
        return None
    starts, ends = max(a.starts_at, b.starts_at), min(a.ends_at, b.ends_at)
    if starts >= ends:
        return None
    return Overlap(a, b, shared, starts, ends)


def overlapping(claims: Iterable[MachineClaim]) -> tuple[Overlap, ...]:
    """Every pair of claims that books a machine twice, ordered by permit ids."""
    ordered = sorted(claims, key=lambda c: c.permit_id)
    found = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            hit = _overlap(a, b)
            if hit is not None:
                found.append(hit)
    return tuple(found)


def check_overlap(
    candidate: MachineClaim, others: Sequence[MachineClaim], tz: tzinfo = SHANGHAI
) -> tuple[PermitReason, ...]:
    """The candidate books none of its machines while another permit holds it."""
    hits = [h for other in others if (h := _overlap(candidate, other)) is not None]
    if not hits:
        return ()
    details = "；".join(
        "、".join(candidate.label_of(m) for m in sorted(h.machine_ids))
        + f" 已在作业票 {h.second.number} 中（{local_text(h.starts_at, tz)} 至 "
        f"{local_text(h.ends_at, tz)} 重叠）"
        for h in sorted(hits, key=lambda h: (h.starts_at, h.second.permit_id))
    )
    return (
        PermitReason(
            PermitReasonCode.MACHINE_DOUBLE_BOOKED,
            f"同一焊机同一时间只能用于一张作业票：{details}",
        ),
    )
