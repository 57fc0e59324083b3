"""The session supervisor on both databases (tests/conftest.py): time limit, idle,
unlocks that never got an answer, the long-session warning, and several supervisors
claiming the same sessions at once."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.device import test_command_delivery as delivery
from tests.device.test_command_delivery import Chip, run, until
from tests.factories import World
from tests.unlock.test_session_sink import add_session, row
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.commands import CommandService, unlock_args
from weldguard.device.models import CommandStatus, DeviceAlarm, DeviceCommand
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.work_sessions import SessionPolicy
from weldguard.unlock.models import WorkSession
from weldguard.unlock.supervisor import (
    UNLOCK_NOT_ACKNOWLEDGED,
    SessionSupervisor,
    policy_from_settings,
)

# The delivery tests' fixtures (pytest registers them by their own names): a chip
# with its key fitted to machine B.
chip = delivery.chip

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=utcnow().tzinfo)


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def supervisor(
    factory: sessionmaker[Session], settings: Settings, **kwargs: Any
) -> tuple[SessionSupervisor, Wakes]:
    wakes = Wakes()
    sup = SessionSupervisor(
        session_factory=factory,
        device_secrets=DeviceSecrets(settings.resolved_secret_key()),
        policy=kwargs.pop("policy", SessionPolicy()),
        on_locked=wakes,
        **kwargs,
    )
    return sup, wakes


def on_b(db: Session, world: World, chip: Chip, session_id: str = "S-1", **kw: Any) -> str:
    return add_session(db, world, session_id, machine="B", device_id=chip.device_id, **kw)


def commands(factory: sessionmaker[Session], device_id: str) -> list[DeviceCommand]:
    with factory() as s:
        return list(
            s.scalars(
                select(DeviceCommand)
                .where(DeviceCommand.device_id == device_id)
                .order_by(DeviceCommand.created_at)
            )
        )


def alarms(factory: sessionmaker[Session], device_id: str) -> list[DeviceAlarm]:
    with factory() as s:
        return list(
            s.scalars(
                select(DeviceAlarm)
                .where(DeviceAlarm.device_id == device_id)
                .order_by(DeviceAlarm.id)
            )
        )


def test_settings_make_the_policy(settings: Settings) -> None:
    p = policy_from_settings(settings)
    assert (p.idle_ms, p.long_ms, p.unlock_timeout_ms) == (30 * 60_000, 24 * 3_600_000, 30_000)
    tuned = settings.model_copy(update={"session_idle_minutes": 10, "session_long_hours": 12})
    assert policy_from_settings(tuned).idle_ms == 600_000
    assert policy_from_settings(tuned).long_ms == 12 * 3_600_000
    assert SessionSupervisor.from_settings(settings, sessionmaker()).interval_s == 5.0


# ---------------------------------------------------------------------- ending


def test_a_session_past_its_time_limit_ends_and_the_machine_is_locked(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    on_b(db, world, chip, started=NOW - timedelta(hours=8), last_arc_at=NOW - timedelta(minutes=1))
    sup, wakes = supervisor(session_factory, settings)
    # Not yet: valid until NOW exactly (half-open).
    assert sup.run_once(NOW - timedelta(milliseconds=1)).changed == 0
    report = sup.run_once(NOW)
    assert report.ended == {"time_limit": 1} and len(report.locks) == 1
    r = row(session_factory)
    assert (r.status, r.end_reason, r.ended_at) == ("ended", "time_limit", NOW)
    (lock,) = commands(session_factory, chip.device_id)
    assert r.lock_command_id == lock.id
    assert (lock.cmd, lock.args, lock.reason, lock.status) == (
        "lock",
        {"reason": "time_limit"},
        "S-1",
        "queued",
    )
    # The longest lifetime a command may have: a chip briefly away still gets it.
    assert lock.expires_at == NOW + timedelta(minutes=10)
    assert wakes.count == 1
    # Done: the next cycle finds nothing.
    assert sup.run_once(NOW + timedelta(seconds=5)).changed == 0
    assert wakes.count == 1


def test_idle_ends_the_session_after_the_idle_time_without_arcs(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    on_b(db, world, chip, started=NOW - timedelta(hours=1), last_arc_at=NOW - timedelta(minutes=30))
    sup, _ = supervisor(session_factory, settings)
    assert sup.run_once(NOW - timedelta(seconds=1)).changed == 0
    report = sup.run_once(NOW)
    assert report.ended == {"idle": 1}
    r = row(session_factory)
    assert (r.status, r.end_reason) == ("ended", "idle")
    (lock,) = commands(session_factory, chip.device_id)
    assert lock.args == {"reason": "idle"}


def test_an_unlock_still_on_its_way_is_given_up_when_the_session_ends(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    """An unlock re-sent after the chip restarted (unlock/reboot.py) and not delivered
    yet would go out before the lock: it is expired with the end."""
    on_b(db, world, chip, started=NOW - timedelta(hours=1), last_arc_at=NOW - timedelta(minutes=30))
    with transaction(session_factory) as s:
        service = CommandService(s, DeviceSecrets(settings.resolved_secret_key()))
        args = unlock_args("S-1", "wd-1", NOW + timedelta(hours=1))
        resent = service.issue(
            service.resolve_target(chip.device_id),
            "unlock",
            args,
            now=NOW - timedelta(seconds=1),
            reason="S-1",
        )
        s.execute(update(WorkSession).values(unlock_command_id=resent.id))
    sup, _ = supervisor(session_factory, settings)
    assert sup.run_once(NOW).ended == {"idle": 1}
    unlock, lock = commands(session_factory, chip.device_id)
    assert (unlock.id, unlock.status) == (resent.id, "expired")
    assert (lock.cmd, lock.status) == ("lock", "queued")


def test_idle_counts_from_the_unlock_when_nobody_welded(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    on_b(db, world, chip, started=NOW - timedelta(minutes=10))
    sup, _ = supervisor(session_factory, settings, policy=SessionPolicy(idle_ms=10 * 60_000))
    assert sup.run_once(NOW).ended == {"idle": 1}


def test_an_arc_written_between_the_read_and_the_claim_keeps_the_session(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    on_b(db, world, chip, started=NOW - timedelta(hours=1), last_arc_at=NOW - timedelta(minutes=40))
    sup, _ = supervisor(session_factory, settings)
    read = sup.candidates

    def read_then_weld(now: datetime) -> Any:
        found = read(now)
        # The ingest sink writes a fresh arc meanwhile.
        db.execute(update(WorkSession).values(last_arc_at=now - timedelta(seconds=3)))
        db.commit()
        return found

    sup.candidates = read_then_weld  # type: ignore[method-assign]
    report = sup.run_once(NOW)
    assert report.ended == {} and report.lost_claims == 1
    assert row(session_factory).status == "active"
    assert commands(session_factory, chip.device_id) == []


def test_a_machine_without_a_chip_still_ends_its_session(
    world: World, db: Session, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    add_session(db, world, machine="C", device_id="WGGONE0001", started=NOW - timedelta(hours=9))
    sup, wakes = supervisor(session_factory, settings)
    report = sup.run_once(NOW)
    assert report.ended == {"time_limit": 1} and report.locks == []
    r = row(session_factory)
    assert (r.status, r.lock_command_id) == ("ended", None)
    # When the chip locked itself (at valid_until), however late the cycle ran.
    assert r.ended_at == NOW - timedelta(hours=1)
    assert wakes.count == 0


# ---------------------------------------------------------------------- starting


def unlock_command(factory: sessionmaker[Session], settings: Settings, at: datetime) -> str:
    with transaction(factory) as s:
        service = CommandService(s, DeviceSecrets(settings.resolved_secret_key()))
        machine = service.resolve_target(row(factory).device_id)
        command = service.issue(
            machine, "unlock", unlock_args("S-1", "wd-1", at + timedelta(hours=1)), now=at,
            ttl_s=30, reason="S-1",
        )  # fmt: skip
        s.execute(update(WorkSession).values(unlock_command_id=command.id))
        return command.id


def test_an_unlock_never_acknowledged_fails_after_its_lifetime(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    started = NOW - timedelta(seconds=30)
    on_b(db, world, chip, status="starting", started=started)
    command_id = unlock_command(session_factory, settings, started)
    sup, _ = supervisor(session_factory, settings)
    assert sup.run_once(NOW - timedelta(milliseconds=1)).changed == 0
    assert sup.run_once(NOW).failed == 1
    r = row(session_factory)
    assert (r.status, r.failure, r.ended_at) == ("failed", UNLOCK_NOT_ACKNOWLEDGED, NOW)
    # No retry may unlock the machine later.
    (command,) = commands(session_factory, chip.device_id)
    assert command.id == command_id and command.status == "expired"


def test_an_unlock_acknowledged_but_not_settled_makes_the_session_active(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    started = NOW - timedelta(minutes=1)
    on_b(db, world, chip, status="starting", started=started)
    command_id = unlock_command(session_factory, settings, started)
    acked_at = started + timedelta(milliseconds=800)
    db.execute(
        update(DeviceCommand)
        .where(DeviceCommand.id == command_id)
        .values(status=CommandStatus.ACKED.value, finished_at=acked_at)
    )
    db.commit()
    sup, _ = supervisor(session_factory, settings)
    assert sup.run_once(NOW).activated == 1
    r = row(session_factory)
    assert (r.status, r.unlocked_at) == ("active", acked_at)


# ---------------------------------------------------------------------- long sessions


def test_more_than_a_day_on_warns_once_and_clears_when_the_session_ends(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    on_b(
        db, world, chip, started=NOW - timedelta(hours=25),
        last_arc_at=NOW - timedelta(minutes=2), valid_until=NOW + timedelta(hours=5),
    )  # fmt: skip
    sup, wakes = supervisor(session_factory, settings)
    assert sup.run_once(NOW).warned == 1
    assert sup.run_once(NOW + timedelta(seconds=5)).warned == 0
    (alarm,) = alarms(session_factory, chip.device_id)
    enterprise = world.enterprises["B"]
    assert (alarm.kind, alarm.severity, alarm.cleared_at) == ("long_session", "warning", None)
    assert (alarm.machine_id, alarm.enterprise_id, alarm.jurisdiction_id) == (
        chip.machine_id,
        enterprise.id,
        enterprise.jurisdiction_id,
    )
    assert alarm.detail["session_id"] == "S-1" and alarm.detail["hours"] == 25.0
    assert row(session_factory).long_running_warned is True
    assert row(session_factory).status == "active" and wakes.count == 0
    # The welder ends the session: the warning clears at the next cycle.
    db.execute(update(WorkSession).values(status="ended", end_reason="welder", ended_at=NOW))
    db.commit()
    assert sup.run_once(NOW + timedelta(seconds=10)).cleared_warnings == 1
    (alarm,) = alarms(session_factory, chip.device_id)
    assert alarm.cleared_at == NOW + timedelta(seconds=10)


# ---------------------------------------------------------------------- concurrency


def test_two_supervisors_at_once_end_each_session_once(
    world: World, db: Session, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    from weldguard.device.registry import ChipInput, DeviceRegistry

    registry = DeviceRegistry(db, DeviceSecrets(settings.resolved_secret_key()))
    keys = ["A", "B", "C", "Z"]
    for n, key in enumerate(keys):
        device_id = f"WGSUP{n:05d}"
        registry.register(ChipInput(device_id, f"86{n + 100:013d}", f"8986{n + 100:016d}"), NOW)
        if key != "A":  # A has its chip from the factories
            registry.bind(world.machines[key].code, device_id, "测试", NOW)
        db.commit()
        add_session(
            db, world, f"S-{key}", machine=key,
            device_id=device_id if key != "A" else "WGC000001",
            started=NOW - timedelta(hours=9),
        )  # fmt: skip
    sups = [supervisor(session_factory, settings)[0] for _ in range(2)]
    barrier = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def cycle(sup: SessionSupervisor) -> None:
        barrier.wait()
        try:
            reports.append(sup.run_once(NOW))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=cycle, args=(s,)) for s in sups]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and all(not s.errors for s in sups), [s.errors for s in sups]
    assert sum(r.ended.get("time_limit", 0) for r in reports) == len(keys)
    with session_factory() as s:
        ended = list(s.scalars(select(WorkSession)))
        locks = list(s.scalars(select(DeviceCommand).where(DeviceCommand.cmd == "lock")))
    assert all(w.status == "ended" for w in ended)
    # One lock per session that has a chip with a key (A's factory chip has none).
    assert sorted(c.reason for c in locks) == ["S-B", "S-C", "S-Z"]
    assert sum(len(r.locks) for r in reports) == 3


# ---------------------------------------------------------------------- the loop


def test_the_loop_runs_cycles_until_cancelled(
    world: World,
    db: Session,
    chip: Chip,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    on_b(db, world, chip, started=utcnow() - timedelta(hours=9))
    sup, _ = supervisor(session_factory, settings, interval_s=0.05)

    async def scenario() -> None:
        task = asyncio.create_task(sup.run())
        try:
            await until(lambda: row(session_factory).status == "ended")
            await until(lambda: sup.cycles >= 2)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(scenario)
    assert sup.totals["ended_time_limit"] == 1 and not sup.errors


def test_a_chip_unlocked_without_an_open_session_is_locked_once_a_minute(
    world: World,
    db: Session,
    settings: Settings,
    session_factory: sessionmaker[Session],
    chip: Chip,
) -> None:
    from weldguard.device.models import DeviceState

    # The chip acknowledged an unlock after the scan page had given up on it.
    db.add(
        DeviceState(
            device_id=chip.device_id,
            online=True,
            lock_state="unlocked",
            session_id="S-gone",
            last_seen_at=NOW,
            offline_deadline=NOW + timedelta(seconds=34),
        )
    )
    db.commit()
    sup, wakes = supervisor(session_factory, settings)
    report = sup.run_once(NOW)
    (lock,) = commands(session_factory, chip.device_id)
    assert report.locks == [lock.id] and wakes.count == 1
    assert (lock.cmd, lock.args) == ("lock", {"reason": "no_session"})
    # Not again while the first lock is fresh.
    assert sup.run_once(NOW + timedelta(seconds=30)).locks == []
    # A chip working under an open session is left alone.
    on_b(db, world, chip, "S-2", started=NOW + timedelta(minutes=4), last_arc_at=None)
    assert sup.run_once(NOW + timedelta(minutes=5)).locks == []
