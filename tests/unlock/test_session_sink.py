"""The work-session sink on both databases (tests/conftest.py): accrual, replays, the
chip's lock edges, picking up sessions the web process started, requeueing, the
AlarmSink's session check; and one run end to end through a real broker, the ingest
worker and the reference chip."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from tests.device import test_command_delivery as delivery
from tests.device.conftest import Broker
from tests.device.test_command_delivery import (
    Chip,
    Platform,
    run,
    start_chip,
    until,
)
from tests.factories import NOW, World
from weldguard.config import Settings
from weldguard.db import make_engine, transaction, utcnow
from weldguard.device.alarms import AlarmSink
from weldguard.device.commands import CommandService, to_ms, unlock_args
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.protocol import UpKind
from weldguard.unlock.models import WorkSession
from weldguard.unlock.session_sink import SessionSink, SessionWork

# The delivery tests' fixture (pytest registers it by its own name): a chip with its
# key fitted to machine B.
chip = delivery.chip

FITTED = "WGC000001"  # the chip tests/factories.py fits to machine A (rated 400 A)
T0 = to_ms(NOW) + 3_600_000
AT0 = NOW + timedelta(hours=1)


def add_session(
    db: Session,
    world: World,
    session_id: str = "S-1",
    *,
    status: str = "active",
    started: datetime = AT0,
    machine: str = "A",
    device_id: str = FITTED,
    **extra: Any,
) -> str:
    enterprise = world.enterprises[machine]
    extra.setdefault("valid_until", started + timedelta(hours=8))
    extra.setdefault("unlocked_at", started if status == "active" else None)
    db.add(
        WorkSession(
            id=session_id,
            machine_id=world.machines[machine].id,
            device_id=device_id,
            welder_id=world.welders[machine].id,
            enterprise_id=enterprise.id,
            area_path=enterprise.area_path,
            status=status,
            started_at=started,
            **extra,
        )
    )
    db.commit()
    return session_id


def row(factory: sessionmaker[Session], session_id: str = "S-1") -> WorkSession:
    with factory() as s:
        found = s.get(WorkSession, session_id)
        assert found is not None
        return found


def tel(
    seq: int,
    start: int,
    *,
    dur: int = 10_000,
    sess: str | None = "S-1",
    i_max: int = 1800,
    e_j: int = 36_000,
    arc: bool = True,
) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": seq,
        "ts": start + dur,
        "arc": arc,
        "sess": sess,
        "start_ts": start,
        "dur_ms": dur,
        "i_avg_da": min(i_max, 1500),
        "i_max_da": i_max,
        "u_avg_dv": 260,
        "e_j": e_j,
    }


def hb(seq: int, ts: int, *, sess: str | None = "S-1", lat: int = 31_220_400) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": seq,
        "ts": ts,
        "interval_s": 30,
        "lock": "unlocked" if sess else "locked",
        "sess": sess,
        "rssi": -70,
        "gps": {"lat": lat, "lon": 121_424_500, "acc_m": 5, "fix_ts": ts},
        "vin": 229_000,
    }


def evt(seq: int, ts: int, etype: str, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "seq": seq, "ts": ts, "type": etype, **extra}


def feed(
    sink: Any,
    kind: str,
    message: dict[str, Any],
    now: int,
    *,
    device_id: str = FITTED,
    live: bool = True,
) -> None:
    state = DeviceLive(online=True, lock_state="unlocked", vin_mv=229_000)
    change = StateChange(device_id, kind, live, False, False, False)
    sink.observe(device_id, UpKind(kind), message, change, state, now)


def flush(sink: SessionSink, engine: Engine, now: int) -> SessionWork | None:
    work = sink.drain(now)
    if work is not None:
        sink.write(engine, work, now)
    return work


def started(engine: Engine, now: int = T0, **kwargs: Any) -> SessionSink:
    sink = SessionSink(**kwargs)
    sink.start(engine, now)
    return sink


# ---------------------------------------------------------------------- accrual


def test_telemetry_accrues_onto_its_session_in_one_update_per_flush(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    # An arc of 25.5 s in three windows, then a short one.
    feed(sink, "tel", tel(1, T0, dur=0, e_j=0), T0)
    feed(sink, "tel", tel(2, T0, i_max=2260), T0 + 10_000)
    feed(sink, "tel", tel(3, T0 + 10_000), T0 + 20_000)
    feed(sink, "tel", tel(4, T0 + 20_000, dur=5_500, arc=False, e_j=18_000), T0 + 25_500)
    work = flush(sink, engine, T0 + 26_000)
    assert work is not None and len(work.updates) == 1
    r = row(session_factory)
    assert r.arc_seconds == 25
    assert r.energy_wh == pytest.approx((36_000 * 2 + 18_000) / 3600)
    assert r.peak_current_a == 226.0
    assert r.last_arc_at == AT0 + timedelta(milliseconds=25_500)
    # Later windows add to it; the half second left over is not lost.
    feed(sink, "tel", tel(5, T0 + 60_000, dur=2_500, arc=False, i_max=1900), T0 + 62_500)
    flush(sink, engine, T0 + 63_000)
    r = row(session_factory)
    assert r.arc_seconds == 28
    assert r.peak_current_a == 226.0
    assert r.last_arc_at == AT0 + timedelta(milliseconds=62_500)


def test_current_below_the_machines_threshold_is_not_welding(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    # 19.9 A on a 400 A machine: below its 5 % threshold.
    feed(sink, "tel", tel(1, T0, i_max=199), T0 + 10_000)
    flush(sink, engine, T0 + 11_000)
    r = row(session_factory)
    assert (r.arc_seconds, r.energy_wh, r.peak_current_a, r.last_arc_at) == (0, 0.0, None, None)


def test_replays_accrue_and_a_window_delivered_twice_counts_once(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    feed(sink, "tel", tel(50, T0 + 600_000), T0 + 610_000)
    # The chip's buffer from an outage earlier in the session, replayed twice.
    for _ in range(2):
        for k in range(3):
            feed(sink, "tel", tel(10 + k, T0 + k * 10_000), T0 + 620_000, live=False)
    flush(sink, engine, T0 + 621_000)
    r = row(session_factory)
    assert r.arc_seconds == 40
    assert r.energy_wh == pytest.approx(4 * 36_000 / 3600)
    # The newest arc stays the last one.
    assert r.last_arc_at == AT0 + timedelta(milliseconds=610_000)


def test_heartbeats_give_the_position_newest_fix_first(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    feed(sink, "hb", hb(1, T0 + 30_000, lat=31_220_400), T0 + 30_000)
    feed(sink, "hb", hb(2, T0, lat=30_000_000), T0 + 31_000, live=False)  # older fix
    feed(sink, "hb", hb(3, T0 + 60_000, sess=None, lat=29_000_000), T0 + 60_000)  # locked
    flush(sink, engine, T0 + 61_000)
    r = row(session_factory)
    assert r.last_lat == pytest.approx(31.2204) and r.last_lon == pytest.approx(121.4245)


def test_other_devices_and_unknown_sessions_accrue_nothing(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    feed(sink, "tel", tel(1, T0), T0 + 10_000, device_id="WGOTHER01")
    feed(sink, "tel", tel(2, T0, sess="S-NOPE"), T0 + 10_000)
    feed(sink, "tel", tel(3, T0, sess=None), T0 + 10_000)
    work = sink.drain(T0 + 10_001)
    assert work is None or work.updates == []
    assert sink.unknown_sessions == 2
    assert row(session_factory).arc_seconds == 0


# ---------------------------------------------------------------------- edges


def test_the_chips_unlocked_makes_a_starting_session_active(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world, status="starting")
    sink = started(engine)
    feed(sink, "evt", evt(1, T0 + 900, "unlocked", sess="S-1", cmd_id="c-1"), T0 + 1000)
    flush(sink, engine, T0 + 1000)
    r = row(session_factory)
    assert r.status == "active"
    assert r.unlocked_at == AT0 + timedelta(seconds=1)


def test_the_ack_path_got_there_first_and_keeps_its_time(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world, status="starting")
    sink = started(engine)
    db.execute(
        update(WorkSession)
        .where(WorkSession.id == "S-1")
        .values(status="active", unlocked_at=AT0 + timedelta(milliseconds=300))
    )
    db.commit()
    feed(sink, "evt", evt(1, T0 + 900, "unlocked", sess="S-1", cmd_id="c-1"), T0 + 1000)
    flush(sink, engine, T0 + 1000)
    assert row(session_factory).unlocked_at == AT0 + timedelta(milliseconds=300)


def test_the_chips_locked_ends_the_session_and_replays_still_accrue(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    feed(sink, "tel", tel(1, T0), T0 + 10_000)
    feed(sink, "evt", evt(2, T0 + 20_000, "locked", sess="S-1", reason="until"), T0 + 20_000)
    flush(sink, engine, T0 + 20_000)
    r = row(session_factory)
    assert (r.status, r.end_reason) == ("ended", "lock_event")
    assert r.ended_at == AT0 + timedelta(seconds=20)
    assert r.arc_seconds == 10
    assert sink.open_session(FITTED) is None
    # Known still: no current_without_session for its last windows, and a late
    # replay from the chip's buffer accrues onto the ended session.
    assert sink.session_known(FITTED, "S-1")
    feed(sink, "tel", tel(9, T0 + 12_000, dur=5_000), T0 + 30_000, live=False)
    flush(sink, engine, T0 + 30_000)
    assert row(session_factory).arc_seconds == 15


def test_a_session_the_welder_ended_first_keeps_its_reason(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    ended_at = AT0 + timedelta(seconds=5)
    db.execute(
        update(WorkSession)
        .where(WorkSession.id == "S-1")
        .values(status="ended", end_reason="welder", ended_at=ended_at)
    )
    db.commit()
    feed(sink, "evt", evt(1, T0 + 9_000, "locked", sess="S-1", cmd_id="c"), T0 + 9_000)
    flush(sink, engine, T0 + 9_000)
    r = row(session_factory)
    assert (r.status, r.end_reason, r.ended_at) == ("ended", "welder", ended_at)


def test_a_reboot_lock_does_not_end_the_session(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world)
    sink = started(engine)
    feed(sink, "evt", evt(1, T0, "locked", sess="S-1", reason="boot"), T0)
    flush(sink, engine, T0 + 1)
    assert row(session_factory).status == "active"
    assert sink.open_session(FITTED) is not None


# ---------------------------------------------------------------------- knowing sessions


def test_sessions_started_by_the_web_process_are_picked_up_at_the_next_flush(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine, refresh_ms=1000)
    assert not sink.session_known(FITTED, "S-NEW")
    add_session(db, world, "S-NEW", status="starting", started=AT0 + timedelta(seconds=1))
    assert flush(sink, engine, T0 + 500) is None  # not due yet: nothing to do
    flush(sink, engine, T0 + 1000)
    assert sink.session_known(FITTED, "S-NEW")
    assert not sink.session_known("WGOTHER01", "S-NEW")
    feed(sink, "tel", tel(1, T0 + 2000, sess="S-NEW"), T0 + 12_000)
    flush(sink, engine, T0 + 12_000)
    assert row(session_factory, "S-NEW").arc_seconds == 10


def test_an_unlocked_naming_an_unknown_session_reads_at_once(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine, refresh_ms=60_000)
    add_session(db, world, "S-NEW", status="starting")
    feed(sink, "evt", evt(1, T0 + 100, "unlocked", sess="S-NEW", cmd_id="c"), T0 + 100)
    flush(sink, engine, T0 + 200)  # the read
    assert sink.session_known(FITTED, "S-NEW")
    # The activation the edge asked for came before the session was known: the
    # acknowledgement path (or the supervisor) settles it; the session is known.
    assert row(session_factory, "S-NEW").status == "starting"


def test_sessions_closed_elsewhere_are_closed_at_the_full_read(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_session(db, world, "S-1")
    add_session(db, world, "S-B", machine="B", device_id="WGB0000001", status="starting")
    sink = started(engine, full_refresh_ms=60_000)
    assert sink.open_session("WGB0000001") is not None
    db.execute(
        update(WorkSession)
        .where(WorkSession.id == "S-1")
        .values(status="ended", end_reason="welder", ended_at=AT0 + timedelta(minutes=1))
    )
    db.execute(
        update(WorkSession)
        .where(WorkSession.id == "S-B")
        .values(status="failed", failure="x", ended_at=AT0 + timedelta(minutes=1))
    )
    db.commit()
    flush(sink, engine, T0 + 60_000)
    assert sink.open_session(FITTED) is None and sink.open_session("WGB0000001") is None
    # Ended: still known (late replays); failed: the chip never had it.
    assert sink.session_known(FITTED, "S-1")
    assert not sink.session_known("WGB0000001", "S-B")


def test_a_restarted_sink_knows_open_and_recently_ended_sessions(
    world: World, db: Session, engine: Engine
) -> None:
    add_session(db, world, "S-OLD", status="ended", started=AT0 - timedelta(days=3),
                ended_at=AT0 - timedelta(days=2), end_reason="idle")  # fmt: skip
    add_session(db, world, "S-RECENT", status="ended", started=AT0 - timedelta(hours=3),
                ended_at=AT0 - timedelta(hours=2), end_reason="idle")  # fmt: skip
    add_session(db, world, "S-1")
    sink = started(engine)
    assert sink.session_known(FITTED, "S-1")
    assert sink.session_known(FITTED, "S-RECENT")
    assert not sink.session_known(FITTED, "S-OLD")
    open_one = sink.open_session(FITTED)
    assert open_one is not None and open_one.id == "S-1"
    # Past the retention, forgotten (at the next full read).
    sink.drain(T0 + 23 * 3_600_000)
    assert not sink.session_known(FITTED, "S-RECENT")


def test_the_alarm_sink_raises_welding_under_a_session_the_platform_does_not_know(
    world: World, db: Session, engine: Engine
) -> None:
    add_session(db, world)
    sessions = started(engine)
    alarms = AlarmSink(session_known=sessions.session_known)
    alarms.start(engine, T0)
    for sink in (sessions, alarms):
        feed(sink, "tel", tel(1, T0), T0 + 10_000)
    assert FITTED not in alarms.conditions
    for sink in (sessions, alarms):
        feed(sink, "tel", tel(2, T0 + 10_000, sess="S-FORGED"), T0 + 20_000)
    assert set(alarms.conditions[FITTED].open) == {"current_without_session"}


# ---------------------------------------------------------------------- failures


def test_a_failed_write_is_requeued_and_nothing_is_counted_twice_or_lost(
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    add_session(db, world)
    sink = started(engine)
    feed(sink, "tel", tel(1, T0, dur=10_500), T0 + 10_500)
    feed(sink, "evt", evt(2, T0 + 11_000, "locked", sess="S-1"), T0 + 11_000)
    work = sink.drain(T0 + 12_000)
    assert work is not None
    broken = make_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")
    try:
        with pytest.raises(Exception, match="work_session"):
            sink.write(broken, work, T0 + 12_000)
    finally:
        broken.dispose()
    sink.requeue(work)
    # Meanwhile a replay arrived.
    feed(sink, "tel", tel(3, T0 - 20_000, dur=1_000), T0 + 12_500, live=False)
    flush(sink, engine, T0 + 13_000)
    r = row(session_factory)
    assert r.arc_seconds == 11  # 10.5 s + 1 s
    assert r.energy_wh == pytest.approx(72_000 / 3600)
    assert (r.status, r.end_reason) == ("ended", "lock_event")
    assert r.last_arc_at == AT0 + timedelta(milliseconds=10_500)
    assert flush(sink, engine, T0 + 13_001) is None


# ---------------------------------------------------------------------- end to end


def test_a_session_from_unlock_to_the_chips_lock_end_to_end(
    broker: Broker,
    chip: Chip,
    world: World,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    """The reference chip unlocked for a session welds; its telemetry accrues onto
    the session; a lock ends it (lock_event, from the chip's ``locked``)."""
    session_id = str(uuid.uuid4())
    now = utcnow()
    add_session(
        db, world, session_id, status="starting", started=now, machine="B",
        device_id=chip.device_id,
    )  # fmt: skip
    # Telemetry every second, so that a few seconds of welding make several windows.
    transport = start_chip(broker, chip, tel_s=1)

    async def scenario() -> None:
        platform = Platform(broker, engine, session_factory, settings)
        sessions = SessionSink(refresh_ms=100)
        platform.ingest.sinks = (*platform.ingest.sinks, sessions)
        async with platform.running():
            transport.start()
            await until(lambda: platform.sink.hellos >= 1)

            def issue(cmd: str, args: dict[str, Any]) -> str:
                with transaction(session_factory) as s:
                    service = CommandService(s, platform.secrets)
                    command = service.issue(
                        service.resolve_target(chip.device_id), cmd, args, now=utcnow(),
                        reason=session_id,
                    )  # fmt: skip
                    if cmd == "unlock":
                        s.execute(
                            update(WorkSession)
                            .where(WorkSession.id == session_id)
                            .values(unlock_command_id=command.id)
                        )
                    return command.id

            unlock = unlock_args(session_id, "wd-E2E01", utcnow() + timedelta(hours=1))
            await asyncio.to_thread(issue, "unlock", unlock)
            platform.dispatcher.wake()
            # Active from the chip's own unlocked event (nobody else settles it here).
            await until(lambda: row(session_factory, session_id).status == "active")
            await until(lambda: row(session_factory, session_id).arc_seconds >= 2)
            await asyncio.to_thread(issue, "lock", {"reason": "end of work"})
            platform.dispatcher.wake()
            await until(lambda: row(session_factory, session_id).status == "ended")
            assert platform.ingest.stats()["sink_errors"] == {}

        r = row(session_factory, session_id)
        assert r.end_reason == "lock_event"
        assert r.unlocked_at is not None and r.ended_at is not None
        assert r.ended_at >= r.unlocked_at
        assert r.arc_seconds >= 2 and r.energy_wh > 0
        assert r.peak_current_a is not None and r.peak_current_a >= 20
        assert r.last_arc_at is not None

    try:
        run(scenario)
    finally:
        transport.stop()
