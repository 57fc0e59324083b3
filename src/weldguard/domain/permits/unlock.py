"""Binding permits to unlocking (扫码开机).

Where a permit is required (:func:`weldguard.domain.authorization.permit_required`:
by default 危化, crowded places and construction sites; per sector in
:class:`~weldguard.domain.authorization.PermitRule`, per enterprise in
``PlaceFacts.permit_required_override``), a machine unlocks only for a welder
named on a started permit that names the machine, at its place and in its time:
:func:`covers`. The unlock decision reads permits as
:class:`~weldguard.domain.authorization.PermitFacts`; :func:`permit_facts` builds
them from a :class:`~weldguard.domain.permits.model.Permit`.
"""

from __future__ import annotations

from datetime import datetime

from weldguard.domain.authorization import PermitFacts, PermitState
from weldguard.domain.geo import GeoPoint
from weldguard.domain.permits.model import HotSpot, Permit, PermitStatus
from weldguard.domain.permits.policy import DEFAULT_PERMIT_POLICY, PermitPolicy
from weldguard.domain.permits.reasons import PermitReason, PermitReasonCode, local_text

__all__ = ["covers", "geofence", "permit_facts", "unlock_state"]

R = PermitReasonCode

_UNLOCK_STATES: dict[PermitStatus, PermitState] = {
    PermitStatus.DRAFT: PermitState.NOT_STARTED,
    PermitStatus.SUBMITTED: PermitState.NOT_STARTED,
    PermitStatus.APPROVED: PermitState.NOT_STARTED,
    PermitStatus.CLEARED: PermitState.NOT_STARTED,
    PermitStatus.IN_PROGRESS: PermitState.ACTIVE,
    # A pause locks the machines as a suspension does: the work stands still, and
    # resuming may need a new gas sample.
    PermitStatus.PAUSED: PermitState.SUSPENDED,
    PermitStatus.SUSPENDED: PermitState.SUSPENDED,
    PermitStatus.WATCHING: PermitState.CLOSED,
    PermitStatus.DISPOSED: PermitState.CLOSED,
    PermitStatus.CLOSED: PermitState.CLOSED,
    PermitStatus.CANCELLED: PermitState.CLOSED,
    PermitStatus.EXPIRED: PermitState.CLOSED,
}


def unlock_state(status: PermitStatus) -> PermitState:
    """The unlock decision's view of a permit's status."""
    return _UNLOCK_STATES[status]


def covers(
    permit: Permit,
    welder_id: int,
    machine_id: int,
    machine_position: GeoPoint | None,
    now: datetime,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """Every reason the permit does not cover ``welder_id`` unlocking ``machine_id``
    standing at ``machine_position`` (the chip's own fix: a site's position says
    nothing about 10 m) at ``now``; empty when it does."""
    content, tz = permit.content, policy.timezone
    reasons = []
    if permit.status.before_work:
        reasons.append(
            PermitReason(
                R.PERMIT_NOT_STARTED,
                f"作业票 {content.number} 为“{permit.status.label}”，尚未开始动火",
            )
        )
    elif permit.status is not PermitStatus.IN_PROGRESS:
        reasons.append(
            PermitReason(
                R.PERMIT_NOT_ACTIVE,
                f"作业票 {content.number} 为“{permit.status.label}”，不能开机",
            )
        )
    if not content.starts_at <= now < content.ends_at:
        reasons.append(
            PermitReason(
                R.OUTSIDE_WINDOW,
                f"作业票有效时间为 {local_text(content.starts_at, tz)} 至 "
                f"{local_text(content.ends_at, tz)}，现在是 {local_text(now, tz)}",
            )
        )
    if welder_id not in content.welder_ids:
        reasons.append(
            PermitReason(R.WELDER_NOT_NAMED, f"作业票 {content.number} 的动火人中没有您")
        )
    if machine_id not in content.machine_ids:
        reasons.append(PermitReason(R.MACHINE_NOT_NAMED, f"作业票 {content.number} 未包含该焊机"))
    reasons.extend(geofence(content.hot_spot, machine_position, policy))
    return tuple(reasons)


def geofence(
    hot_spot: HotSpot,
    machine_position: GeoPoint | None,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> tuple[PermitReason, ...]:
    """Why the machine standing at ``machine_position`` (the chip's own fix) is not
    where the permit lets it weld; empty when it is."""
    if machine_position is None:
        if not policy.machine_position_required:
            return ()
        return (
            PermitReason(
                R.MACHINE_POSITION_UNKNOWN,
                f"焊机没有定位信息，无法核对其是否在{hot_spot.label}内",
            ),
        )
    if hot_spot.contains(machine_position):
        return ()
    distance = hot_spot.distance_m(machine_position)
    return (
        PermitReason(
            R.OUTSIDE_HOT_SPOT,
            f"焊机距动火点约 {distance:.0f} 米，不在作业票的{hot_spot.label}内",
        ),
    )


def permit_facts(
    permit: Permit,
    machine_position: GeoPoint | None = None,
    now: datetime | None = None,
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> PermitFacts:
    """The permit as the unlock decision reads it. The decision checks the status,
    the window, the welder, the machine and the place (enterprise and site) itself;
    given the machine's fix and the time, the hot-spot geofence of :func:`covers`
    comes along as ``problems`` (without them the geofence is not checked)."""
    content = permit.content
    problems = (
        tuple(r.message for r in geofence(content.hot_spot, machine_position, policy))
        if now is not None
        else ()
    )
    return PermitFacts(
        id=content.id,
        number=content.number,
        state=unlock_state(permit.status),
        enterprise_id=content.enterprise_id,
        starts_at=content.starts_at,
        ends_at=content.ends_at,
        welder_ids=content.welder_ids,
        machine_ids=content.machine_ids,
        site_id=content.site_id,
        crowded_place_exception=permit.crowded_exception_taken,
        problems=problems,
    )
