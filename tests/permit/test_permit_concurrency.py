"""Two events on one permit at once: only one applies."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, World
from tests.permit.permits import PHOTO, create, people, scope_of, user
from weldguard.config import Settings
from weldguard.permit.models import Permit, PermitEventRow
from weldguard.permit.repository import PermitRepository
from weldguard.permit.service import PermitRefused, PermitService


def test_a_stale_version_moves_nothing(db: Session, settings: Settings, world: World) -> None:
    """The portable guard: the header moves only from the version that was read."""
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    row = db.get(Permit, steps.id)
    assert row is not None and row.version == 1
    repo = PermitRepository(db)
    assert repo.advance(row, 1, "submitted", row.last_event_id or 0, NOW)
    assert not repo.advance(row, 1, "draft", row.last_event_id or 0, NOW)
    db.commit()
    assert (row.status, row.version) == ("submitted", 2)


def test_two_approvals_at_once_only_one_applies(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    """PostgreSQL: the second waits on the row lock, then sees the permit approved
    and is refused (STEP_OUT_OF_ORDER)."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers itself")
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.do(p.applicant, "submit", NOW)
    steps.do(p.boss, "site_survey", NOW, photos=PHOTO)
    steps.do(p.welder, "confirm_risks", NOW)

    first = session_factory()
    boss = user(first, "boss_b")
    PermitService(first).apply(scope_of(first, settings, boss), boss, steps.id, "approve", {}, NOW)
    outcome: list[object] = []

    def second() -> None:
        session = session_factory()
        try:
            officer = user(session, "safety_b")
            scope = scope_of(session, settings, officer)
            PermitService(session).apply(
                scope, officer, steps.id, "approve", {}, NOW + timedelta(seconds=1)
            )
            session.commit()
            outcome.append("applied")
        except PermitRefused as exc:
            session.rollback()
            outcome.append(exc.codes)
        finally:
            session.close()

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), "the second approval must wait for the first"
    first.commit()
    first.close()
    thread.join(timeout=10)
    assert outcome == [["STEP_OUT_OF_ORDER"]]
    db.expire_all()
    approvals = db.scalar(
        select(func.count())
        .select_from(PermitEventRow)
        .where(PermitEventRow.permit_id == steps.id, PermitEventRow.kind == "approve")
    )
    assert approvals == 1


def test_a_number_taken_meanwhile_is_skipped(
    db: Session, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two applications at once may pick the same number: the second takes the next."""
    p = people(db, settings, world)
    first = db.get(Permit, create(db, settings, world, p).id)
    assert first is not None and first.number == "DH-20261122-0001"
    real = PermitRepository.next_number
    offered: list[str] = []

    def stale_then_real(self: PermitRepository, day: object) -> str:
        number = first.number if not offered else real(self, day)  # type: ignore[arg-type]
        offered.append(number)
        return number

    monkeypatch.setattr(PermitRepository, "next_number", stale_then_real)
    second = db.get(Permit, create(db, settings, world, p).id)
    assert second is not None and second.number == "DH-20261122-0002"
    assert offered == ["DH-20261122-0001", "DH-20261122-0002"]
    assert db.scalar(select(func.count()).select_from(PermitEventRow)) == 2
