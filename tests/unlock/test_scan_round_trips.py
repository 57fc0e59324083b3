"""The scan's few round trips (both backends): the joined reads return what the
single-table reads did, the session insert that cannot fail the transaction, and
how many statements a scan sends (a count, not a time)."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, World
from tests.unlock.test_scan_service import NEAR, live_machine, user
from weldguard.auth.models import AccessToken, TokenKind, User
from weldguard.auth.service import AuthService, hash_token
from weldguard.config import Settings
from weldguard.device.models import DeviceCommand
from weldguard.machine.models import Chip, Machine
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import ScanRecord, SpecialPeriod, WorkSession
from weldguard.unlock.repository import ScanRepository
from weldguard.unlock.service import ScanService
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


def allowed_writes(db: Session) -> list[str]:
    """An allowed scan's writes (record, unlock, session): one statement of
    data-modifying CTEs on PostgreSQL, an INSERT each on SQLite."""
    return ["WITH"] if db.get_bind().dialect.name == "postgresql" else ["INSERT"] * 3


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


def _period(world: World, title: str, area_path: str, ends: timedelta) -> SpecialPeriod:
    """A 禁止动火 period over ``area_path``, begun a day ago, ending ``ends`` from NOW."""
    return SpecialPeriod(
        title=title,
        kind="ban_hot_work",
        jurisdiction_id=world.enterprises["A"].jurisdiction_id,
        area_path=area_path,
        sectors=None,
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + ends,
        declared_at=NOW - timedelta(days=2),
    )


def _second_certificate_and_employment(db: Session, world: World) -> None:
    """Welder A gets a second certificate and a second employment: the joins'
    cross product."""
    welder = world.welders["A"]
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
    _second_certificate_and_employment(db, world)
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


def _token(db: Session, settings: Settings, username: str) -> tuple[str, AccessToken]:
    raw, token = AuthService(db, settings).issue_token(
        user(db, username), TokenKind.SESSION, NOW, name="phone", lifetime=timedelta(days=1)
    )
    db.commit()
    return raw, token


def test_scan_read_is_the_place_the_account_and_the_welder_facts_at_once(
    db: Session, settings: Settings, world: World
) -> None:
    """scan_read gives what scan_place, live_with_user and welder_facts give apart,
    also when periods, certificates, employments and sessions multiply its rows;
    the account only for a live token."""
    machine, device_id, _ = live_machine(db, settings, world)
    welder = world.welders["A"]
    _second_certificate_and_employment(db, world)
    area = world.enterprises["A"].area_path
    for title, ends in (("全市", timedelta(hours=2)), ("本街道", timedelta(hours=1))):
        db.add(_period(world, title, area, ends))
    here = _session(machine, world.welders["B"].id)
    elsewhere = _session(world.machines["C"], welder.id)
    db.add_all([here, elsewhere])
    db.commit()
    raw, token = _token(db, settings, "welder_one")
    repo = ScanRepository(db)

    with statements(db) as sent:
        found = repo.scan_read(machine.code, hash_token(raw), NOW)
    assert sent == ["SELECT"]
    assert found is not None
    place = repo.scan_place(machine.code, NOW)
    assert place is not None
    assert [getattr(row, "id", None) for row in found.place] == [
        getattr(row, "id", None) for row in place[0]
    ]
    assert found.place[3] is not None and found.place[3].device_id == device_id
    assert [p.id for p in found.periods] == [p.id for p in place[1]]
    assert len(found.periods) == 2
    assert found.token is not None and found.token.id == token.id
    assert found.user is not None and found.user.welder_id == welder.id
    certificates, employments, sessions = found.welder_rows
    apart = repo.welder_facts(welder.id, machine.id)
    assert [c.id for c in certificates] == [c.id for c in apart[0]] and len(certificates) == 2
    assert [e.id for e in employments] == [e.id for e in apart[1]] and len(employments) == 2
    assert [s.id for s in sessions] == [s.id for s in apart[2]]
    assert {s.id for s in sessions} == {here.id, elsewhere.id}

    # No live token: the machine, its periods and its open session, no account.
    for stale in ("not-a-token", None):
        if stale is None:
            token.revoked_at = NOW - timedelta(minutes=1)
            db.commit()
        anonymous = repo.scan_read(machine.code, hash_token(stale or raw), NOW)
        assert anonymous is not None
        assert (anonymous.token, anonymous.user) == (None, None)
        assert len(anonymous.periods) == 2
        assert ([c for c in anonymous.welder_rows[0]], anonymous.welder_rows[1]) == ([], [])
        assert [s.id for s in anonymous.welder_rows[2]] == [here.id]
    assert repo.scan_read("WGNOSUCH01", hash_token(raw), NOW) is None


def test_the_scan_page_reads_once_before_it_writes(
    db: Session, settings: Settings, world: World
) -> None:
    """The page's scan (scan_signed_in): one read (the place, the account, the
    welder's facts), then the writes; a denial, one read and its record."""
    machine, _, _ = live_machine(db, settings, world)
    other, _, _ = live_machine(db, settings, world)
    raw, token = _token(db, settings, "welder_one")
    # The label's page, opened just before, has marked the token used: no touch.
    token.last_used_at = NOW - timedelta(seconds=20)
    db.commit()
    signer = signer_for(settings)
    service = ScanService(db, settings, claim_for_bus=True)
    with statements(db) as allowed:
        result = service.scan_signed_in(
            raw, machine.code, signer.sign(machine.code), NEAR, None, NOW
        )
    assert result is not None and result.allowed and result.unlock is not None
    assert allowed == ["SELECT", *allowed_writes(db)], allowed
    db.commit()
    with statements(db) as denied:
        refused = service.scan_signed_in(raw, other.code, signer.sign(other.code), NEAR, None, NOW)
    assert refused is not None and not refused.allowed
    assert refused.decision is not None
    assert [c.value for c in refused.decision.codes] == ["BUSY_ELSEWHERE"]
    assert denied == ["SELECT", "INSERT"], denied


def test_scan_signed_in_needs_a_welder_signed_in(
    db: Session, settings: Settings, world: World
) -> None:
    """No live token, a deactivated account or another role's: None (the page asks
    to sign in), nothing written. A bad label or an unknown machine with a welder
    signed in: recorded as the label's, as scan() records it."""
    machine, _, _ = live_machine(db, settings, world)
    signer = signer_for(settings)
    sig = signer.sign(machine.code)
    service = ScanService(db, settings)
    assert service.scan_signed_in("no-such-token", machine.code, sig, NEAR, None, NOW) is None
    inspector_raw, _ = _token(db, settings, "insp_xinjing")
    assert service.scan_signed_in(inspector_raw, machine.code, sig, NEAR, None, NOW) is None
    raw, _ = _token(db, settings, "welder_one")
    account = user(db, "welder_one")
    account.is_active = False
    db.commit()
    assert service.scan_signed_in(raw, machine.code, sig, NEAR, None, NOW) is None
    assert service.scan_signed_in(raw, machine.code, "forged", NEAR, None, NOW) is None
    assert db.scalar(select(func.count()).select_from(ScanRecord)) == 0

    account.is_active = True
    db.commit()
    forged = service.scan_signed_in(raw, machine.code, "forged", NEAR, None, NOW)
    assert forged is not None and forged.record.outcome == "invalid_label"
    unknown = service.scan_signed_in(raw, "WGNOSUCH01", signer.sign("WGNOSUCH01"), NEAR, None, NOW)
    assert unknown is not None and unknown.record.outcome == "invalid_label"
    assert unknown.record.user_id == account.id


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
    """Reads: machine, place and special periods; certificates, employments and
    open sessions. Writes: the record, the unlock (written already claimed for the
    bus), the session, in one statement on PostgreSQL. A denial: the reads and its
    record."""
    machine, _, _ = live_machine(db, settings, world)
    other, _, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    signer = signer_for(settings)
    service = ScanService(db, settings, claim_for_bus=True)
    with statements(db) as allowed:
        result = service.scan(welder, machine.code, signer.sign(machine.code), NEAR, None, NOW)
    assert result.allowed and result.unlock is not None and result.unlock.claimed
    assert allowed == ["SELECT", "SELECT", *allowed_writes(db)], allowed
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
    assert denied == ["SELECT", "SELECT", "INSERT"], denied


def test_scan_place_reads_the_periods_special_periods_over_reads(
    db: Session, settings: Settings, world: World
) -> None:
    """The periods joined into the scan's first query: over the enterprise's area
    or an area above it and not ended, nothing of a sibling area."""
    machine, _, _ = live_machine(db, settings, world)
    area = world.enterprises["A"].area_path
    parts = [p for p in area.split("/") if p]
    sibling = "/".join([*parts[:-1], "999999"]) + "/"

    def period(title: str, area_path: str, ends: timedelta) -> SpecialPeriod:
        return _period(world, title, area_path, ends)

    db.add_all(
        [
            period("全市", "/".join(parts[:2]) + "/", timedelta(hours=2)),
            period("本街道", area, timedelta(hours=1)),
            period("已结束", area, -timedelta(minutes=1)),
            period("邻街道", sibling, timedelta(hours=1)),
        ]
    )
    db.commit()
    repo = ScanRepository(db)
    found = repo.scan_place(machine.code, NOW)
    assert found is not None
    (got, _enterprise, _site, chip, state), periods = found
    assert got.id == machine.id and chip is not None and state is not None
    assert sorted(p.title for p in periods) == ["全市", "本街道"]
    assert {p.id for p in periods} == {p.id for p in repo.special_periods_over(area, NOW)}
    assert repo.scan_place("WGNOSUCH01", NOW) is None


def test_an_unlock_is_queued_when_the_chip_has_a_command_in_flight(
    db: Session, settings: Settings, world: World
) -> None:
    """The bus may publish only a command it claimed: with a ``time`` command out,
    the in-flight index turns the unlock into an ordinary queued one (the
    dispatcher sends it after), and the transaction goes on."""
    machine, device_id, _ = live_machine(db, settings, world)
    chip = db.scalars(select(Chip).where(Chip.device_id == device_id)).one()
    service = ScanService(db, settings, claim_for_bus=True)
    time_command = service.commands.issue_time(chip, NOW)
    assert time_command is not None
    time_command.status = "sent"
    db.commit()
    welder = user(db, "welder_one")
    signer = signer_for(settings)
    result = service.scan(welder, machine.code, signer.sign(machine.code), NEAR, None, NOW)
    assert result.allowed and result.unlock is not None and not result.unlock.claimed
    db.commit()
    unlock = db.get(DeviceCommand, result.unlock.command_id)
    assert unlock is not None and (unlock.status, unlock.attempts) == ("queued", 0)
    work = db.get(WorkSession, result.session.id)  # type: ignore[union-attr]
    assert work is not None and work.status == "starting"
    assert (work.unlock_command_id, work.scan_id) == (unlock.id, result.record.id)
    assert db.get(ScanRecord, result.record.id).session_id == work.id  # type: ignore[union-attr]


def test_two_welders_racing_for_a_machine_get_one_session_and_one_unlock(
    db: Session,
    settings: Settings,
    world: World,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two transactions read the machine free at once, then write. On PostgreSQL
    the loser's unlock waits on the in-flight index and its session on the open
    session index until the winner commits; it then answers 焊机使用中 with no
    session and no unlock left behind."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no two transactions overlap")
    from weldguard.auth.scope import Scope
    from weldguard.welder.identity import IdentityVault
    from weldguard.welder.service import WelderService

    machine, _, _ = live_machine(db, settings, world)
    other = world.welders["B"]
    WelderService(db, IdentityVault(settings.resolved_secret_key())).employ(
        Scope(role="admin", user_id=0, everything=True),
        other,
        world.enterprises["A"].id,
        NOW.date() - timedelta(days=10),
    )
    db.commit()
    first_user = user(db, "welder_one")
    # The same account standing in for a second welder of the enterprise.
    second_user = User(
        username="welder_two_race",
        display_name="焊工二",
        password_hash=first_user.password_hash,
        role=first_user.role,
        welder_id=other.id,
    )
    db.add(second_user)
    db.commit()
    both_read = threading.Barrier(2, timeout=10)
    add_started = ScanRepository.add_started

    def after_both_read(self: ScanRepository, *args: Any) -> int:
        both_read.wait()  # both decided "free" before either writes
        return add_started(self, *args)

    monkeypatch.setattr(ScanRepository, "add_started", after_both_read)
    signer = signer_for(settings)

    def scan_as(account: User) -> tuple[str, str | None]:
        with session_factory() as session:
            result = ScanService(session, settings, claim_for_bus=True).scan(
                session.merge(account), machine.code, signer.sign(machine.code), NEAR, None, NOW
            )
            outcome = (result.record.outcome, result.session.id if result.session else None)
            session.commit()
            return outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(scan_as, [first_user, second_user]))
    assert sorted(o[0] for o in outcomes) == ["allowed", "blocked"], outcomes
    db.expire_all()
    sessions = db.scalars(select(WorkSession).where(WorkSession.machine_id == machine.id)).all()
    unlocks = db.scalars(select(DeviceCommand).where(DeviceCommand.machine_id == machine.id)).all()
    assert len(sessions) == 1 and len(unlocks) == 1
    assert sessions[0].unlock_command_id == unlocks[0].id and unlocks[0].status == "sent"
    blocked = db.scalars(
        select(ScanRecord).where(
            ScanRecord.machine_id == machine.id, ScanRecord.outcome == "blocked"
        )
    ).one()
    assert blocked.reason_codes == ["MACHINE_IN_USE"] and blocked.session_id is None
