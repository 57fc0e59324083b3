"""The scan's few round trips (both backends): the joined reads return what the
single-table reads did, the session insert that cannot fail the transaction, and
how many statements a scan sends (a count, not a time)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.unlock.test_scan_service import NEAR, live_machine, user
from weldguard.config import Settings
from weldguard.device.models import DeviceCommand
from weldguard.machine.models import Machine
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import ScanRecord, WorkSession
from weldguard.unlock.repository import ScanRepository
from weldguard.unlock.service import RecentScans, ScanService
from weldguard.welder.models import Certificate, Employment


@contextmanager
def statements(db: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = db.get_bind()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _session(machine: Machine, welder_id: int, status: str = "active") -> WorkSession:
    return WorkSession(
        id=str(uuid.uuid4()),
        machine_id=machine.id,
        device_id="WGX0001",
        welder_id=welder_id,
        enterprise_id=machine.enterprise_id,
        area_path="310000/",
        status=status,
        started_at=NOW - timedelta(minutes=5),
        valid_until=NOW + timedelta(hours=1),
    )


def test_machine_place_reads_machine_enterprise_chip_and_state_at_once(
    db: Session, settings: Settings, world: World
) -> None:
    machine, device_id, _ = live_machine(db, settings, world)
    repo = ScanRepository(db)
    found = repo.machine_place(code=machine.code)
    assert found is not None
    got, enterprise, site, chip, state = found
    assert (got.id, enterprise.id, site) == (machine.id, machine.enterprise_id, None)
    assert chip is not None and chip.device_id == device_id
    assert state is not None and state.online
    assert repo.machine_place(machine_id=machine.id) is not None
    assert repo.machine_place(code="WGNOSUCH01") is None
    # A machine without a chip: the machine and its enterprise, nothing else.
    bare = repo.machine_place(code=world.machines["B"].code)
    assert bare is not None and bare[3] is None and bare[4] is None


def test_welder_facts_match_the_single_table_reads(
    db: Session, settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    welder = world.welders["A"]
    # A second certificate and a second employment: the joins' cross product.
    first = db.scalars(select(Certificate).where(Certificate.welder_id == welder.id)).one()
    db.add(
        Certificate(
            welder_id=welder.id,
            kind=first.kind,
            number_hash="x" * 64,
            number_masked="T3****99",
            item=first.item,
            issue_date=first.issue_date,
            expiry_date=NOW.date() + timedelta(days=30),
            issuing_authority=first.issuing_authority,
            source=first.source,
        )
    )
    db.add(
        Employment(
            welder_id=welder.id,
            enterprise_id=world.enterprises["B"].id,
            start_date=NOW.date() - timedelta(days=10),
        )
    )
    here = _session(machine, world.welders["B"].id)
    elsewhere = _session(world.machines["C"], welder.id)
    ended = _session(world.machines["Z"], welder.id, status="ended")
    db.add_all([here, elsewhere, ended])
    db.commit()

    repo = ScanRepository(db)
    certificates, employments, sessions = repo.welder_facts(welder.id, machine.id)
    assert [c.id for c in certificates] == [c.id for c in repo.certificates_of(welder.id)]
    assert len(certificates) == 2
    assert [e.id for e in employments] == [e.id for e in repo.employments_of(welder.id)]
    assert len(employments) == 2
    assert {s.id for s in sessions} == {here.id, elsewhere.id}
    assert {s.id for s in sessions} == {s.id for s in repo.open_sessions_for(machine.id, welder.id)}

    # A welder with nothing at all still sees the machine's open session.
    nobody = world.welders["Z"]
    db.execute(Certificate.__table__.delete().where(Certificate.welder_id == nobody.id))
    db.execute(Employment.__table__.delete().where(Employment.welder_id == nobody.id))
    _c, _e, seen = repo.welder_facts(nobody.id, machine.id)
    assert (_c, _e, [s.id for s in seen]) == ([], [], [here.id])


def test_a_session_on_a_busy_machine_is_refused_without_breaking_the_transaction(
    db: Session, settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    repo = ScanRepository(db)
    first = _session(machine, world.welders["A"].id, status="starting")
    assert repo.add_session_if_free(first)
    # Persistent, every column loaded: nothing to read back.
    assert first in db and first.arc_seconds == 0 and first.long_running_warned is False
    second = _session(machine, world.welders["B"].id, status="starting")
    assert not repo.add_session_if_free(second)
    # The transaction goes on: the scan still writes its refusal.
    assert db.scalar(select(func.count()).select_from(WorkSession)) == 1
    db.commit()
    assert db.get(WorkSession, first.id) is not None


def test_a_scan_takes_few_statements(db: Session, settings: Settings, world: World) -> None:
    """Reads: machine and place; certificates, employments and open sessions;
    special periods. Writes: the record, the unlock, the session, and the bus's
    claim of the unlock (savepoint, update, release). A denial: the reads and
    its record."""
    machine, _, _ = live_machine(db, settings, world)
    other, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    signer = signer_for(settings)
    service = ScanService(db, settings, recent=RecentScans(), claim_for_bus=True)
    with statements(db) as allowed:
        result = service.scan(welder, machine.code, signer.sign(machine.code), NEAR, None, NOW)
    assert result.allowed and result.unlock is not None and result.unlock.claimed
    assert len(allowed) <= 9, allowed
    assert allowed.count("SELECT") == 3
    db.commit()
    command = db.get(DeviceCommand, result.unlock.command_id)
    assert command is not None and command.status == "sent"
    work = db.get(WorkSession, result.session.id)  # type: ignore[union-attr]
    assert work is not None and work.unlock_command_id == command.id
    record = db.get(ScanRecord, result.record.id)
    assert record is not None and record.session_id == work.id

    # Busy on the first machine: refused on the second (BUSY_ELSEWHERE).
    with statements(db) as denied:
        refused = service.scan(welder, other.code, signer.sign(other.code), NEAR, None, NOW)
    assert not refused.allowed
    assert len(denied) <= 4, denied
