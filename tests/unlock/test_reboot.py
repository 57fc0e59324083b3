"""A chip restarting under an active work session (docs/protocol.md § 6.5): the session
sink re-sends the unlock while the session is valid, ends it when it is not, and never
floods the chip; on both databases (tests/conftest.py), and once end to end with the
reference chip rebooting mid-session behind a real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.device import test_command_delivery as delivery
from tests.device.conftest import Broker
from tests.device.test_command_delivery import Chip, Platform, run, start_chip, until
from tests.factories import NOW, World
from tests.unlock.test_session_sink import AT0, T0, add_session, evt, row
from weldguard.config import Settings
from weldguard.db import make_engine, transaction, utcnow
from weldguard.device.commands import CommandService, from_ms, to_ms, unlock_args
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.models import DeviceCommand, DeviceState
from weldguard.device.protocol import UpKind
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.work_sessions import SessionPolicy
from weldguard.machine.models import ChipBinding, Machine
from weldguard.unlock.models import WorkSession
from weldguard.unlock.reboot import RebootRepository
from weldguard.unlock.service import welder_ref
from weldguard.unlock.session_sink import SessionSink

# The delivery tests' fixture: a chip with its key fitted to machine B.
chip = delivery.chip

SESS = "S-REBOOT"
BOOT = T0 + 2 * 3_600_000  # the chip restarts two hours into the session
HOURS = 8


@pytest.fixture
def secrets(settings: Settings) -> DeviceSecrets:
    return DeviceSecrets(settings.resolved_secret_key())


def open_session(
    db: Session,
    world: World,
    chip: Chip,
    secrets: DeviceSecrets,
    *,
    session_id: str = SESS,
    started: datetime = AT0,
    hours: float = HOURS,
) -> str:
    """An active session on machine B whose scan unlock the chip acknowledged."""
    valid_until = started + timedelta(hours=hours)
    machine = db.get(Machine, chip.machine_id)
    assert machine is not None
    welder_id = world.welders["B"].id
    command = CommandService(db, secrets).issue(
        machine,
        "unlock",
        unlock_args(session_id, welder_ref(welder_id), valid_until),
        now=started,
        ttl_s=30,
        reason=session_id,
    )
    command.status, command.attempts = "acked", 1
    command.first_sent_at = started + timedelta(milliseconds=50)
    command.finished_at = started + timedelta(milliseconds=100)
    db.flush()
    return add_session(
        db,
        world,
        session_id,
        started=started,
        machine="B",
        device_id=chip.device_id,
        valid_until=valid_until,
        unlocked_at=started + timedelta(milliseconds=100),
        unlock_command_id=command.id,
    )


def hello(seq: int, ts: int, *, boot: bool = True) -> dict[str, Any]:
    return {"v": 1, "seq": seq, "ts": ts, "fw": "wg-chip 1.4.2", "imei": "860000000000001",
            "iccid": "89860000000000000001", "rated_a": 400, "boot": boot,
            "buf_count": 3}  # fmt: skip


def feed(
    sink: SessionSink,
    device_id: str,
    kind: str,
    message: dict[str, Any],
    now: int,
    *,
    live: bool = True,
    boots: int = 1,
) -> None:
    """``boots``: the live state's boot count after the message (a live boot hello
    adds one)."""
    state = DeviceLive(online=True, lock_state="locked", boot_count=boots)
    change = StateChange(device_id, kind, live, False, False, False)
    sink.observe(device_id, UpKind(kind), message, change, state, now)


def restart(sink: SessionSink, device_id: str, at: int, *, boots: int, seq: int = 100) -> None:
    """What a restarted chip says: its boot hello, then (a replay from its buffer,
    stamped when it locked at power-on) ``locked``/``boot`` naming the session."""
    feed(sink, device_id, "hello", hello(seq, at - 500), at, boots=boots)
    locked = evt(seq + 1, at - 480, "locked", sess=SESS, reason="boot", buf=True)
    feed(sink, device_id, "evt", locked, at + 5, live=False, boots=boots)


class Woken:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def started_sink(
    engine: Engine, secrets: DeviceSecrets | None, woken: Woken | None = None, **kwargs: Any
) -> SessionSink:
    sink = SessionSink(device_secrets=secrets, on_commands=woken or Woken(), **kwargs)
    sink.start(engine, BOOT - 60_000)
    return sink


def flush(sink: SessionSink, engine: Engine, now: int) -> None:
    work = sink.drain(now)
    if work is not None:
        sink.write(engine, work, now)


def unlocks(factory: sessionmaker[Session], device_id: str) -> list[DeviceCommand]:
    with factory() as s:
        return list(
            s.scalars(
                select(DeviceCommand)
                .where(DeviceCommand.device_id == device_id, DeviceCommand.cmd == "unlock")
                .order_by(DeviceCommand.created_at, DeviceCommand.id)
            )
        )


def publish(
    factory: sessionmaker[Session], secrets: DeviceSecrets, command_id: str, at: int
) -> None:
    """What a dispatcher does: claim the command's first publish."""
    with transaction(factory) as s:
        service = CommandService(s, secrets)
        command = service.repo.get(command_id)
        assert command is not None
        assert service.claim(command, from_ms(at)) is not None


def ack(
    factory: sessionmaker[Session], secrets: DeviceSecrets, device_id: str, command_id: str, at: int
) -> None:
    with transaction(factory) as s:
        body = {"id": command_id, "ok": True, "code": 0, "state": "unlocked"}
        CommandService(s, secrets).record_ack(device_id, body, from_ms(at))


# ---------------------------------------------------------------------- re-sending


def test_a_restart_under_a_valid_session_re_sends_its_unlock(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    woken = Woken()
    sink = started_sink(engine, secrets, woken)
    restart(sink, chip.device_id, BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    original, resent = unlocks(session_factory, chip.device_id)
    # The same session, welder and until; a new command (id, nonce, signature).
    assert resent.args == {
        "sess": SESS,
        "welder": f"wd-{world.welders['B'].id}",
        "until": to_ms(AT0 + timedelta(hours=HOURS)),
    }
    assert resent.id != original.id and resent.payload != original.payload
    assert (resent.status, resent.reason, resent.machine_id) == ("queued", SESS, chip.machine_id)
    assert resent.created_at == from_ms(BOOT + 20)
    r = row(session_factory, SESS)
    assert (r.status, r.unlock_command_id, r.ended_at) == ("active", resent.id, None)
    assert sink.unlocks_resent == 1 and sink.reboots_seen == 1 and woken.count == 1
    # The chip takes it: acknowledged, unlocked again under the same session.
    publish(session_factory, secrets, resent.id, BOOT + 100)
    ack(session_factory, secrets, chip.device_id, resent.id, BOOT + 400)
    unlocked = evt(103, BOOT + 350, "unlocked", sess=SESS, cmd_id=resent.id)
    feed(sink, chip.device_id, "evt", unlocked, BOOT + 400)
    flush(sink, engine, BOOT + 1_000)
    assert [u.status for u in unlocks(session_factory, chip.device_id)] == ["acked", "acked"]
    assert row(session_factory, SESS).status == "active"
    known = sink.open_session(chip.device_id)
    assert known is not None and known.id == SESS and known.status == "active"


def test_the_two_signals_of_one_restart_in_separate_flushes_send_one_unlock(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    feed(sink, chip.device_id, "hello", hello(100, BOOT - 500), BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    (_, resent) = unlocks(session_factory, chip.device_id)
    publish(session_factory, secrets, resent.id, BOOT + 100)
    locked = evt(101, BOOT - 480, "locked", sess=SESS, reason="boot", buf=True)
    feed(sink, chip.device_id, "evt", locked, BOOT + 200, live=False, boots=1)
    flush(sink, engine, BOOT + 300)
    assert len(unlocks(session_factory, chip.device_id)) == 2
    # A second worker (or this one restarted) without the memory of the first
    # signal: the database says the unlock is on its way.
    other = started_sink(engine, secrets)
    feed(other, chip.device_id, "evt", locked, BOOT + 200, live=False, boots=1)
    flush(other, engine, BOOT + 300)
    assert len(unlocks(session_factory, chip.device_id)) == 2
    assert other.reboots_seen == 1 and other.unlocks_resent == 0


def test_a_reboot_loop_queues_one_unlock(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    """Restarts faster than the unlock goes out: the one queued serves them all."""
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    for n in range(5):
        restart(sink, chip.device_id, BOOT + n * 3_000, boots=n + 1, seq=100 + 10 * n)
        flush(sink, engine, BOOT + n * 3_000 + 20)
    _original, resent = unlocks(session_factory, chip.device_id)
    assert resent.status == "queued"
    assert row(session_factory, SESS).unlock_command_id == resent.id
    assert sink.reboots_seen == 5 and sink.unlocks_resent == 1


def test_a_chip_restarting_after_each_unlock_gets_a_fresh_one_until_the_cap(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    """A relay that pulls the supply down restarts the chip whenever it unlocks: one
    unlock at a time, the one published before the restart given up, and the session
    ended after ``max_resends``."""
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets, policy=SessionPolicy(max_resends=2))
    for n in range(2):
        at = BOOT + n * 10_000
        restart(sink, chip.device_id, at, boots=n + 1, seq=100 + 10 * n)
        flush(sink, engine, at + 20)
        latest = unlocks(session_factory, chip.device_id)[-1]
        publish(session_factory, secrets, latest.id, at + 100)
    statuses = [u.status for u in unlocks(session_factory, chip.device_id)]
    assert statuses == ["acked", "expired", "sent"]
    restart(sink, chip.device_id, BOOT + 20_000, boots=3, seq=120)
    flush(sink, engine, BOOT + 20_020)
    # Nothing new, and the unlock still on its way must not unlock after the end.
    statuses = [u.status for u in unlocks(session_factory, chip.device_id)]
    assert statuses == ["acked", "expired", "expired"]
    r = row(session_factory, SESS)
    assert (r.status, r.end_reason) == ("ended", "lock_event")
    assert r.ended_at == from_ms(BOOT + 20_000)
    assert sink.open_session(chip.device_id) is None
    assert sink.ended_after_reboot == 1


# ---------------------------------------------------------------------- not re-sending


def test_a_restart_after_valid_until_ends_the_session_and_sends_nothing(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets, hours=2)  # valid until BOOT
    woken = Woken()
    sink = started_sink(engine, secrets, woken)
    restart(sink, chip.device_id, BOOT + 5_000, boots=1)
    flush(sink, engine, BOOT + 5_020)
    assert len(unlocks(session_factory, chip.device_id)) == 1
    r = row(session_factory, SESS)
    assert (r.status, r.end_reason, r.ended_at) == ("ended", "time_limit", from_ms(BOOT))
    assert sink.open_session(chip.device_id) is None and woken.count == 0


def test_a_restart_in_the_last_minute_ends_the_session(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets, hours=2)
    sink = started_sink(engine, secrets)
    restart(sink, chip.device_id, BOOT - 30_000, boots=1)
    flush(sink, engine, BOOT - 29_980)
    assert len(unlocks(session_factory, chip.device_id)) == 1
    r = row(session_factory, SESS)
    assert (r.status, r.end_reason, r.ended_at) == (
        "ended",
        "lock_event",
        from_ms(BOOT - 30_000),
    )


def test_a_session_the_welder_ended_meanwhile_is_left_as_it_is(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    ended_at = from_ms(BOOT - 1_000)
    db.execute(
        update(WorkSession)
        .where(WorkSession.id == SESS)
        .values(status="ended", end_reason="welder", ended_at=ended_at)
    )
    db.commit()
    restart(sink, chip.device_id, BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    assert len(unlocks(session_factory, chip.device_id)) == 1
    r = row(session_factory, SESS)
    assert (r.status, r.end_reason, r.ended_at) == ("ended", "welder", ended_at)


@pytest.mark.parametrize("change", ["retired", "chip_removed"])
def test_a_retired_machine_or_a_removed_chip_ends_the_session(
    change: str,
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    if change == "retired":
        db.execute(update(Machine).where(Machine.id == chip.machine_id).values(status="retired"))
    else:
        db.execute(
            update(ChipBinding)
            .where(ChipBinding.machine_id == chip.machine_id, ChipBinding.removed_at.is_(None))
            .values(removed_at=NOW)
        )
    db.commit()
    restart(sink, chip.device_id, BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    assert len(unlocks(session_factory, chip.device_id)) == 1
    r = row(session_factory, SESS)
    assert (r.status, r.end_reason) == ("ended", "lock_event")


@pytest.mark.parametrize("reason", ["local", "until", "alarm", None])
def test_any_other_lock_still_ends_the_session(
    reason: str | None,
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    restart(sink, chip.device_id, BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    (_, resent) = unlocks(session_factory, chip.device_id)
    extra = {} if reason is None else {"reason": reason}
    feed(sink, chip.device_id, "evt", evt(120, BOOT + 60_000, "locked", sess=SESS, **extra),
         BOOT + 60_000, boots=1)  # fmt: skip
    flush(sink, engine, BOOT + 60_020)
    r = row(session_factory, SESS)
    assert (r.status, r.end_reason, r.ended_at) == ("ended", "lock_event", from_ms(BOOT + 60_000))
    assert [u.id for u in unlocks(session_factory, chip.device_id)][-1] == resent.id


def test_a_lock_in_the_same_flush_as_the_restart_wins(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    restart(sink, chip.device_id, BOOT, boots=1)
    locked = evt(103, BOOT + 900, "locked", sess=SESS, reason="alarm")
    feed(sink, chip.device_id, "evt", locked, BOOT + 900, boots=1)
    flush(sink, engine, BOOT + 1_000)
    assert len(unlocks(session_factory, chip.device_id)) == 1
    assert row(session_factory, SESS).end_reason == "lock_event"


def test_a_restart_while_the_unlock_is_still_starting_sends_nothing_more(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    """The scan's unlock is still on its way; the hello makes it due again."""
    add_session(db, world, SESS, status="starting", started=from_ms(BOOT - 2_000),
                machine="B", device_id=chip.device_id)  # fmt: skip
    sink = started_sink(engine, secrets)
    restart(sink, chip.device_id, BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    assert unlocks(session_factory, chip.device_id) == []
    assert row(session_factory, SESS).status == "starting"
    assert sink.reboots_seen == 0


def test_without_device_secrets_a_restart_is_left_alone(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, None)
    restart(sink, chip.device_id, BOOT, boots=1)
    flush(sink, engine, BOOT + 20)
    assert len(unlocks(session_factory, chip.device_id)) == 1
    assert row(session_factory, SESS).status == "active"


# ---------------------------------------------------------------------- failures, races


def test_a_failed_write_keeps_the_restart_for_the_next_flush(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
    tmp_path: Path,
) -> None:
    open_session(db, world, chip, secrets)
    sink = started_sink(engine, secrets)
    restart(sink, chip.device_id, BOOT, boots=1)
    work = sink.drain(BOOT + 20)
    assert work is not None and len(work.reboots) == 1
    broken = make_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")
    try:
        with pytest.raises(Exception, match="work_session"):
            sink.write(broken, work, BOOT + 20)
    finally:
        broken.dispose()
    sink.requeue(work)
    flush(sink, engine, BOOT + 40)
    assert len(unlocks(session_factory, chip.device_id)) == 2
    assert sink.unlocks_resent == 1


def test_the_claim_names_the_unlock_it_replaces(
    world: World,
    db: Session,
    session_factory: sessionmaker[Session],
    chip: Chip,
    secrets: DeviceSecrets,
) -> None:
    open_session(db, world, chip, secrets)
    (original,) = unlocks(session_factory, chip.device_id)
    with transaction(session_factory) as s:
        repo = RebootRepository(s)
        assert not repo.claim_resend(SESS, "someone-else", "new-1")
        assert repo.claim_resend(SESS, original.id, "new-1")
        assert not repo.claim_resend(SESS, original.id, "new-2")
    assert row(session_factory, SESS).unlock_command_id == "new-1"


# ---------------------------------------------------------------------- end to end


def test_a_chip_rebooting_mid_session_is_unlocked_again_end_to_end(
    broker: Broker,
    chip: Chip,
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    """The reference chip, unlocked for a session, loses power: it comes back locked,
    says so (boot hello, then ``locked``/``boot``), and the platform's re-sent unlock
    (after the clock sync the restart calls for) unlocks it again under the same
    session, which never stopped being active."""
    session_id = str(uuid.uuid4())
    now = utcnow()
    add_session(
        db, world, session_id, status="starting", started=now, machine="B",
        device_id=chip.device_id,
    )  # fmt: skip
    transport = start_chip(broker, chip)

    def state() -> tuple[str | None, str | None]:
        with session_factory() as s:
            found = s.get(DeviceState, chip.device_id)
            return (None, None) if found is None else (found.lock_state, found.session_id)

    def unlock_ids() -> list[str]:
        return [u.id for u in unlocks(session_factory, chip.device_id)]

    async def scenario() -> None:
        platform = Platform(broker, engine, session_factory, settings)
        sessions = SessionSink(
            refresh_ms=100,
            device_secrets=platform.secrets,
            on_commands=platform.dispatcher.wake,
        )
        platform.ingest.sinks = (*platform.ingest.sinks, sessions)
        async with platform.running():
            transport.start()
            await until(lambda: platform.sink.hellos >= 1)

            def issue_unlock() -> str:
                with transaction(session_factory) as s:
                    service = CommandService(s, platform.secrets)
                    args = unlock_args(
                        session_id,
                        welder_ref(world.welders["B"].id),
                        utcnow() + timedelta(hours=1),
                    )
                    command = service.issue(
                        service.resolve_target(chip.device_id), "unlock", args, now=utcnow(),
                        reason=session_id,
                    )  # fmt: skip
                    s.execute(
                        update(WorkSession)
                        .where(WorkSession.id == session_id)
                        .values(unlock_command_id=command.id)
                    )
                    return command.id

            first = await asyncio.to_thread(issue_unlock)
            platform.dispatcher.wake()
            await until(lambda: row(session_factory, session_id).status == "active")
            await until(lambda: state() == ("unlocked", session_id))

            transport.reboot()
            # Back, locked, then unlocked again by a new command for the same session.
            await until(lambda: len(unlock_ids()) == 2)
            resent = unlock_ids()[-1]
            assert resent != first
            await until(lambda: transport.core.lock == "unlocked")
            assert transport.core.sess == session_id
            await until(lambda: state() == ("unlocked", session_id))
            command = await platform.settled(resent)
            assert command.status == "acked"
            r = row(session_factory, session_id)
            assert (r.status, r.unlock_command_id) == ("active", resent)
            assert sessions.unlocks_resent == 1
            assert transport.core.boots == 2
            assert platform.ingest.stats()["sink_errors"] == {}

    try:
        run(scenario)
    finally:
        transport.stop()
