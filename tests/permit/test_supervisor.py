"""The permit supervisor: expiry, the fire watch's missed check-in (suspension,
sessions ended, machines locked, 监护人员离岗 raised once and cleared), the watch
after the work, 特级 without its continuous monitor, one bad permit in a pass, and
two supervisors at once (PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tests.factories import NOW, World
from tests.permit.permits import PHOTO, People, Steps, create, people
from tests.unlock.test_scan_service import NEAR, live_machine
from weldguard.cli import app
from weldguard.config import Settings, get_settings
from weldguard.device.models import DeviceCommand
from weldguard.domain.permits import Supervision, supervise
from weldguard.machine.models import Machine
from weldguard.permit.alarm_models import PermitAlarm, PermitMonitorReading
from weldguard.permit.models import Permit, PermitEventRow
from weldguard.permit.supervisor import PermitSupervisor
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import WorkSession
from weldguard.unlock.service import ScanService

STARTED = NOW + timedelta(minutes=1)
# The watch checked in at NOW with a 30 min interval: overdue one second after.
MISSED = NOW + timedelta(minutes=31)


def _supervisor(
    settings: Settings, session_factory: sessionmaker[Session], **kwargs: Any
) -> PermitSupervisor:
    return PermitSupervisor.from_settings(
        settings, session_factory, on_locked=lambda: None, **kwargs
    )


def _alarms(db: Session, permit_id: int) -> list[PermitAlarm]:
    db.expire_all()
    return list(
        db.scalars(
            select(PermitAlarm).where(PermitAlarm.permit_id == permit_id).order_by(PermitAlarm.id)
        )
    )


def _events(db: Session, permit_id: int) -> list[PermitEventRow]:
    db.expire_all()
    return list(
        db.scalars(
            select(PermitEventRow)
            .where(PermitEventRow.permit_id == permit_id)
            .order_by(PermitEventRow.id)
        )
    )


def _status(db: Session, permit_id: int) -> str:
    db.expire_all()
    row = db.get(Permit, permit_id)
    assert row is not None
    return row.status


def _working(
    db: Session, settings: Settings, world: World, p: People, machines: int = 1
) -> tuple[Steps, list[Machine], list[str]]:
    """A started permit with ``machines`` chipped machines, each with an active
    work session under it: the first unlocked by the welder's scan, the others
    (a welder works one machine at a time) as a second welder's would be."""
    fitted = [
        live_machine(db, settings, world, enterprise="B", now=STARTED) for _ in range(machines)
    ]
    steps = create(db, settings, world, p, machine_ids=[m.id for m, _, _ in fitted])
    steps.to_started()
    first, _, _ = fitted[0]
    signer = signer_for(settings)
    result: Any = ScanService(db, settings).scan(
        p.welder, first.code, signer.sign(first.code), NEAR, None, STARTED
    )
    db.commit()
    assert result.allowed, result.record.reasons
    work = db.get(WorkSession, result.session.id)
    assert work is not None
    work.status = "active"
    sessions = [work.id]
    for machine, device_id, _ in fitted[1:]:
        other = WorkSession(
            id=str(uuid.uuid4()),
            machine_id=machine.id,
            device_id=device_id,
            welder_id=work.welder_id,
            enterprise_id=work.enterprise_id,
            area_path=work.area_path,
            permit_id=steps.id,
            status="active",
            started_at=STARTED,
            unlocked_at=STARTED,
            valid_until=work.valid_until,
        )
        db.add(other)
        sessions.append(other.id)
    db.commit()
    return steps, [m for m, _, _ in fitted], sessions


def test_a_missed_check_in_suspends_locks_and_raises_one_alarm(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps, machines, sessions = _working(db, settings, world, p, machines=2)
    supervisor = _supervisor(settings, session_factory)

    assert supervisor.run_once(NOW + timedelta(minutes=30)).changed == 0  # due, not missed
    report = supervisor.run_once(MISSED)
    assert report.suspended == [steps.id] and report.locked and not report.failed
    assert _status(db, steps.id) == "suspended"
    event = _events(db, steps.id)[-1]
    assert (event.kind, event.actor_user_id, event.person_name) == ("suspend", None, "系统")
    assert event.payload["cause"] == "fire_watch_absent"
    assert "未按时签到" in event.payload["note"]

    for session_id, machine in zip(sessions, machines, strict=True):
        work = db.get(WorkSession, session_id)
        assert work is not None
        assert (work.status, work.end_reason, work.ended_at) == ("ended", "permit", MISSED)
        lock = db.get(DeviceCommand, work.lock_command_id)
        assert lock is not None
        assert (lock.cmd, lock.machine_id, lock.reason) == ("lock", machine.id, session_id)

    (alarm,) = _alarms(db, steps.id)
    assert (alarm.kind, alarm.count, alarm.cleared_at) == ("fire_watch_absent", 1, None)
    assert alarm.message.startswith("监护人安全员未按时签到")
    assert (alarm.enterprise_id, alarm.area_path) == (
        world.enterprises["B"].id,
        world.enterprises["B"].area_path,
    )

    # The next pass: no second event, no second lock, the same alarm counted.
    later = MISSED + timedelta(seconds=30)
    assert supervisor.run_once(later).changed == 0
    assert [e.kind for e in _events(db, steps.id)].count("suspend") == 1
    locks = db.scalar(
        select(func.count()).select_from(DeviceCommand).where(DeviceCommand.cmd == "lock")
    )
    assert locks == 2
    (alarm,) = _alarms(db, steps.id)
    assert (alarm.count, alarm.last_seen_at, alarm.raised_at) == (2, later, MISSED)


def test_the_check_in_clears_the_alarm_and_the_work_goes_on(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_started()
    supervisor = _supervisor(settings, session_factory)
    supervisor.run_once(MISSED)
    assert _status(db, steps.id) == "suspended"

    back = MISSED + timedelta(minutes=2)
    steps.do(p.applicant, "check_in", back, photos=PHOTO)
    steps.do(p.boss, "reinstate", back + timedelta(minutes=1))
    report = supervisor.run_once(back + timedelta(minutes=2))
    assert report.alarms_cleared == 1
    (alarm,) = _alarms(db, steps.id)
    assert alarm.cleared_at == back + timedelta(minutes=2) and alarm.count == 1

    steps.do(p.welder, "resume", back + timedelta(minutes=3))
    assert supervisor.run_once(back + timedelta(minutes=4)).changed == 0
    assert _status(db, steps.id) == "in_progress"
    assert len(_alarms(db, steps.id)) == 1


def test_a_suspended_permit_keeps_its_alarm_until_the_watch_is_back(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_started()
    supervisor = _supervisor(settings, session_factory)
    supervisor.run_once(MISSED)
    supervisor.run_once(MISSED + timedelta(minutes=10))
    (alarm,) = _alarms(db, steps.id)
    assert (alarm.count, alarm.cleared_at) == (2, None)
    steps.do(p.applicant, "check_in", MISSED + timedelta(minutes=11), photos=PHOTO)
    supervisor.run_once(MISSED + timedelta(minutes=12))
    (alarm,) = _alarms(db, steps.id)
    assert alarm.cleared_at == MISSED + timedelta(minutes=12)


def test_the_watch_missing_after_the_work_is_an_alarm_without_an_event(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_started()
    steps.do(p.welder, "end", NOW + timedelta(minutes=10), photos=PHOTO)
    before = len(_events(db, steps.id))
    supervisor = _supervisor(settings, session_factory)
    report = supervisor.run_once(MISSED)
    assert report.changed == 0 and report.alarms_seen == 1
    assert _status(db, steps.id) == "watching" and len(_events(db, steps.id)) == before
    (alarm,) = _alarms(db, steps.id)
    assert alarm.kind == "fire_watch_absent" and alarm.cleared_at is None

    steps.do(p.applicant, "check_in", MISSED + timedelta(minutes=1), photos=PHOTO)
    supervisor.run_once(MISSED + timedelta(minutes=2))
    (alarm,) = _alarms(db, steps.id)
    assert alarm.cleared_at == MISSED + timedelta(minutes=2)


def test_expiry_ends_the_work_and_the_closure_clears_its_alarm(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps, _, sessions = _working(db, settings, world, p)
    # The watch keeps checking in: only the window matters here.
    ends = NOW + timedelta(hours=6)
    at = NOW
    while at + timedelta(minutes=25) < ends:
        at += timedelta(minutes=25)
        steps.do(p.applicant, "check_in", at, photos=PHOTO)
    supervisor = _supervisor(settings, session_factory)
    assert supervisor.run_once(ends - timedelta(seconds=1)).changed == 0

    report = supervisor.run_once(ends)
    assert report.expired == [steps.id]
    assert _status(db, steps.id) == "watching"
    event = _events(db, steps.id)[-1]
    assert (event.kind, event.person_name, event.status_before) == ("expire", "系统", "in_progress")
    work = db.get(WorkSession, sessions[0])
    assert work is not None and (work.status, work.end_reason) == ("ended", "permit")
    assert work.lock_command_id is not None
    (alarm,) = _alarms(db, steps.id)
    assert alarm.kind == "permit_expired" and "已于 2026-11-22 18:00 到期" in alarm.message

    # It stays open (not counted again) through the post-work watch ...
    steps.do(p.applicant, "check_in", ends + timedelta(minutes=1), photos=PHOTO)
    supervisor.run_once(ends + timedelta(minutes=2))
    (alarm,) = _alarms(db, steps.id)
    assert (alarm.count, alarm.cleared_at) == (1, None)
    # ... and clears when the permit is wound up.
    steps.do(p.applicant, "check_in", ends + timedelta(minutes=25), photos=PHOTO)
    steps.do(p.applicant, "dispose", ends + timedelta(minutes=31), no_embers=True, photos=PHOTO)
    steps.do(p.welder, "close", ends + timedelta(minutes=32), photos=PHOTO)
    supervisor.run_once(ends + timedelta(minutes=33))
    (alarm,) = _alarms(db, steps.id)
    assert alarm.cleared_at == ends + timedelta(minutes=33)


def test_a_permit_expiring_before_work_just_lapses(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_approved()
    draft = create(db, settings, world, p, machine_ids=[])
    report = _supervisor(settings, session_factory).run_once(NOW + timedelta(hours=6))
    assert report.expired == [steps.id]
    assert _status(db, steps.id) == "expired" and _alarms(db, steps.id) == []
    assert _status(db, draft.id) == "draft"  # the applicant may still change its dates


def _special(db: Session, settings: Settings, world: World, p: People) -> Steps:
    """A 一级 permit raised to 特级 (Sunday), started with a gas sample and the
    monitor's readings at NOW."""
    steps = create(db, settings, world, p, base_level="first", level="special")
    steps.to_approved()
    row = db.get(Permit, steps.id)
    assert row is not None
    for measure in row.measures:
        if measure["applicable"]:
            steps.do(p.applicant, "confirm_measure", NOW, code=measure["code"])
    steps.do(
        p.applicant,
        "gas_sample",
        NOW,
        taken_at=NOW.isoformat(),
        gas="甲烷",
        lel_percent=5.0,
        reading_percent=0.1,
    )
    _reading(db, steps.id, NOW)
    steps.do(p.applicant, "check_in", NOW, photos=PHOTO)
    steps.do(p.applicant, "clear", NOW, photos=PHOTO)
    steps.do(p.welder, "start", STARTED, photos=PHOTO)
    return steps


def _reading(db: Session, permit_id: int, at: datetime, percent: float = 0.1) -> None:
    db.add(
        PermitMonitorReading(
            permit_id=permit_id,
            taken_at=at,
            gas="甲烷",
            lel_percent=5.0,
            reading_percent=percent,
            device="M-1",
            received_at=at,
        )
    )
    db.commit()


def test_special_level_work_stops_when_the_monitor_falls_silent(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps = _special(db, settings, world, p)
    assert _status(db, steps.id) == "in_progress"
    supervisor = _supervisor(settings, session_factory)
    _reading(db, steps.id, NOW + timedelta(minutes=4))
    assert supervisor.run_once(NOW + timedelta(minutes=5)).changed == 0  # readings flow

    report = supervisor.run_once(NOW + timedelta(minutes=7))  # silent for 3 min
    assert report.suspended == [steps.id]
    assert _events(db, steps.id)[-1].payload["cause"] == "monitor_failed"
    (alarm,) = _alarms(db, steps.id)
    assert alarm.kind == "monitor_failed" and "连续气体监测已超过 2 分钟未上报" in alarm.message

    # The monitor is back and within the limit: the alarm clears.
    _reading(db, steps.id, NOW + timedelta(minutes=8))
    supervisor.run_once(NOW + timedelta(minutes=9))
    (alarm,) = _alarms(db, steps.id)
    assert alarm.cleared_at == NOW + timedelta(minutes=9)


def test_special_level_work_with_no_reading_at_all_is_suspended(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    p = people(db, settings, world)
    steps = _special(db, settings, world, p)
    db.query(PermitMonitorReading).delete()
    db.commit()
    _supervisor(settings, session_factory).run_once(NOW + timedelta(minutes=2))
    assert _status(db, steps.id) == "suspended"
    (alarm,) = _alarms(db, steps.id)
    assert alarm.kind == "monitor_failed" and "未收到监测数据" in alarm.message


def test_one_bad_permit_does_not_stop_the_pass(
    db: Session,
    settings: Settings,
    world: World,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = people(db, settings, world)
    bad = create(db, settings, world, p)
    bad.to_started()
    machine = live_machine(db, settings, world, enterprise="B", now=NOW)[0]
    good = create(db, settings, world, p, machine_ids=[machine.id])
    good.to_started()

    def flaky(permit: Any, *args: Any) -> Supervision:
        if permit.content.id == bad.id:
            raise RuntimeError("损坏的作业票" * 200)
        return supervise(permit, *args)

    monkeypatch.setattr("weldguard.permit.supervisor.supervise", flaky)
    report = _supervisor(settings, session_factory).run_once(MISSED)
    assert report.failed == [bad.id] and report.suspended == [good.id]
    assert _status(db, bad.id) == "in_progress"
    logged = [r.getMessage() for r in caplog.records if "损坏的作业票" in r.getMessage()]
    assert logged and all(len(m) < 400 for m in logged)


def test_two_supervisors_at_once_apply_each_event_once(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    """PostgreSQL: each permit is claimed with FOR UPDATE SKIP LOCKED, so the two
    passes never both act on one permit."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    p = people(db, settings, world)
    ids = []
    for _ in range(4):
        machine = live_machine(db, settings, world, enterprise="B", now=NOW)[0]
        steps = create(db, settings, world, p, machine_ids=[machine.id])
        steps.to_started()
        ids.append(steps.id)
    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run() -> None:
        supervisor = _supervisor(settings, session_factory)
        barrier.wait()
        reports.append(supervisor.run_once(MISSED))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(reports) == 2 and not any(r.failed for r in reports)
    assert sorted(i for r in reports for i in r.suspended) == ids
    for permit_id in ids:
        assert _status(db, permit_id) == "suspended"
        assert [e.kind for e in _events(db, permit_id)].count("suspend") == 1
        open_alarms = [a for a in _alarms(db, permit_id) if a.cleared_at is None]
        assert [a.kind for a in open_alarms] == ["fire_watch_absent"]


def test_the_command_runs_one_pass(
    db: Session, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``weldguard permits supervise --once``, on the wall clock (after the window
    of a permit of the world's day)."""
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_started()
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", settings.resolved_secret_key())
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["permits", "supervise", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "到期 1 张，暂停 0 张" in result.output
    assert _status(db, steps.id) == "watching"


def test_a_permit_held_by_a_step_is_left_to_the_next_pass(
    db: Session, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    """PostgreSQL: the pass does not wait for a permit someone holds (SKIP LOCKED)."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_started()
    holder = session_factory()
    try:
        holder.scalars(select(Permit).where(Permit.id == steps.id).with_for_update()).one()
        report = _supervisor(settings, session_factory).run_once(MISSED)
        assert (report.skipped, report.suspended) == (1, [])
    finally:
        holder.rollback()
        holder.close()
    assert _supervisor(settings, session_factory).run_once(MISSED).suspended == [steps.id]
