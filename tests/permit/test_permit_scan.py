"""Permits bound to unlocking: a construction site's machine (a permit required)
unlocks only under a started permit naming welder and machine, with the machine
within the hot spot's 10 m (both backends)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.permit.permits import create, people
from tests.unlock.test_scan_round_trips import allowed_writes, statements
from tests.unlock.test_scan_service import HERE, NEAR, live_machine
from weldguard.auth.models import User
from weldguard.config import Settings
from weldguard.device.models import DeviceCommand
from weldguard.domain.geo import GeoPoint
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import WorkSession
from weldguard.unlock.service import ScanResult, ScanService

SCAN_AT = NOW + timedelta(minutes=5)
# About 40 m north of the hot spot.
FORTY_M = GeoPoint(HERE.latitude + 0.00036, HERE.longitude)


def _scan(
    db: Session, settings: Settings, who: User, code: str, at: datetime | None = None
) -> ScanResult:
    signer = signer_for(settings)
    service = ScanService(db, settings)
    result = service.scan(who, code, signer.sign(code), NEAR, None, at or SCAN_AT)
    db.commit()
    return result


def test_a_construction_site_machine_needs_a_started_permit(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", now=SCAN_AT)
    refused = _scan(db, settings, p.welder, machine.code)
    assert refused.record.reason_codes == ["PERMIT_REQUIRED"]

    steps = create(db, settings, world, p, machine_ids=[machine.id])
    steps.to_started()
    allowed = _scan(db, settings, p.welder, machine.code)
    assert allowed.allowed, allowed.record.reasons
    assert allowed.decision.permit_id == steps.id
    # The session ends with the permit's window at the latest.
    assert allowed.session.valid_until <= NOW + timedelta(hours=6)


def test_a_machine_forty_metres_from_the_hot_spot_is_refused(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", position=FORTY_M, now=SCAN_AT)
    steps = create(db, settings, world, p, machine_ids=[machine.id])
    steps.to_started()
    refused = _scan(db, settings, p.welder, machine.code)
    assert refused.record.reason_codes == ["PERMIT_INVALID"]
    message = refused.record.reasons[0]["message"]
    assert "米" in message and "动火点" in message  # the distance is told


def test_a_paused_permit_does_not_unlock(db: Session, settings: Settings, world: World) -> None:
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", now=SCAN_AT)
    steps = create(db, settings, world, p, machine_ids=[machine.id])
    steps.to_started()
    steps.do(p.welder, "pause", NOW + timedelta(minutes=3))
    refused = _scan(db, settings, p.welder, machine.code)
    assert refused.record.reason_codes == ["PERMIT_INVALID"]


def test_pausing_the_permit_ends_its_sessions_and_locks_its_machines(
    db: Session, settings: Settings, world: World
) -> None:
    """A permit that stops covering work locks its machines at once, not at the
    end of its window (the session would otherwise run on)."""
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", now=SCAN_AT)
    steps = create(db, settings, world, p, machine_ids=[machine.id])
    steps.to_started()
    allowed = _scan(db, settings, p.welder, machine.code)
    assert allowed.allowed
    session_id = allowed.session.id
    work = db.get(WorkSession, session_id)
    assert work is not None
    work.status = "active"
    db.commit()
    steps.do(p.welder, "pause", SCAN_AT + timedelta(minutes=1))
    db.expire_all()
    work = db.get(WorkSession, session_id)
    assert work is not None
    assert (work.status, work.end_reason) == ("ended", "permit")
    assert work.ended_at == SCAN_AT + timedelta(minutes=1)
    lock = db.get(DeviceCommand, work.lock_command_id)
    assert lock is not None and (lock.cmd, lock.machine_id, lock.reason) == (
        "lock",
        machine.id,
        session_id,
    )
    unlock = db.get(DeviceCommand, work.unlock_command_id)
    assert unlock is not None and unlock.status == "expired"


def test_the_permit_read_is_one_statement_and_only_where_a_permit_is_required(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", now=SCAN_AT)
    steps = create(db, settings, world, p, machine_ids=[machine.id])
    steps.to_started()
    signer = signer_for(settings)
    service = ScanService(db, settings, claim_for_bus=True)
    with statements(db) as seen:
        result = service.scan(
            p.welder, machine.code, signer.sign(machine.code), NEAR, None, SCAN_AT
        )
    assert result.allowed
    # The place, the welder's facts, the permits; the record, unlock and session.
    assert seen == ["SELECT", "SELECT", "SELECT", *allowed_writes(db)], seen
