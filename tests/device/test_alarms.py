"""The alarm sink and repository on both databases (tests/conftest.py), one run
end to end through a real broker and the ingest worker, the reference chip's
misbehaviours through the rules, and who may read which alarms."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.device.test_ingest import BROKERS, broker, make_worker, publish, run, running, until
from tests.factories import NOW, World
from tests.web.test_home_stats import scope_of
from weldguard.config import Settings
from weldguard.db import make_engine
from weldguard.device.alarms import AlarmFilter, AlarmRepository, AlarmSink, AlarmWork
from weldguard.device.ingest_repository import arc_threshold_da
from weldguard.device.live_state import DeviceLive, LiveStates, StateChange
from weldguard.device.models import AlarmKind, DeviceAlarm
from weldguard.device.protocol import UpKind, build_command, encode_command
from weldguard.domain.device_alarms import AlarmPolicy
from weldguard.machine.models import Machine
from weldguard.machine.service import MachineService
from weldguard.sim.chip import ChipConfig, ChipCore, Misbehaviour

FITTED = "WGC000001"  # the chip tests/factories.py fits to machine A
T0 = int(NOW.timestamp() * 1000) + 3_600_000
NO_HOLD = AlarmPolicy(arc_clear_hold_ms=0)


def tel(
    seq: int, *, arc: bool = True, sess: str | None = None, i_max_da: int = 1800
) -> dict[str, Any]:
    return {
        "v": 1,
        "seq": seq,
        "ts": T0 + seq,
        "arc": arc,
        "sess": sess,
        "start_ts": T0,
        "dur_ms": 1000,
        "i_avg_da": min(1500, i_max_da),
        "i_max_da": i_max_da,
        "u_avg_dv": 260,
        "e_j": 40_000,
    }


def feed(
    sink: AlarmSink,
    device_id: str,
    kind: str,
    message: dict[str, Any],
    now: int,
    *,
    lock: str | None = "locked",
    live: bool = True,
) -> None:
    state = DeviceLive(online=True, lock_state=lock, vin_mv=229_000)
    change = StateChange(device_id, kind, live, False, False, False)
    sink.observe(device_id, UpKind(kind), message, change, state, now)


def flush(sink: AlarmSink, engine: Engine, now: int) -> AlarmWork | None:
    work = sink.drain(now)
    if work is not None:
        sink.write(engine, work, now)
    return work


def started(engine: Engine, **kwargs: Any) -> AlarmSink:
    sink = AlarmSink(**kwargs)
    sink.start(engine, T0)
    return sink


def alarms(factory: sessionmaker[Session], device_id: str = FITTED) -> list[DeviceAlarm]:
    with factory() as s:
        return list(
            s.scalars(
                select(DeviceAlarm)
                .where(DeviceAlarm.device_id == device_id)
                .order_by(DeviceAlarm.id)
            )
        )


# ---------------------------------------------------------------------- the sink


def test_one_alarm_per_condition_however_many_messages_repeat_it(
    world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine)
    for seq in range(1, 6):
        feed(sink, FITTED, "tel", tel(seq), T0 + seq)
    work = flush(sink, engine, T0 + 10)
    # Five messages, one statement.
    assert work is not None and len(work.operations) == 1
    (alarm,) = alarms(session_factory)
    machine = world.machines["A"]
    enterprise = world.enterprises["A"]
    assert alarm.kind == AlarmKind.CURRENT_WHILE_LOCKED
    assert alarm.severity == "critical"
    assert alarm.repeats == 4
    assert (alarm.machine_id, alarm.enterprise_id, alarm.jurisdiction_id) == (
        machine.id,
        enterprise.id,
        enterprise.jurisdiction_id,
    )
    assert alarm.cleared_at is None
    assert alarm.raised_at == NOW + timedelta(hours=1, milliseconds=1)
    assert alarm.detail["i_max_da"] == 1800 and alarm.detail["source"] == "tel"
    # Later flushes add to the same row.
    for seq in range(6, 9):
        feed(sink, FITTED, "tel", tel(seq), T0 + seq)
    flush(sink, engine, T0 + 20)
    (alarm,) = alarms(session_factory)
    assert alarm.repeats == 7
    assert alarm.last_seen_at == NOW + timedelta(hours=1, milliseconds=8)


def test_the_condition_clears_and_the_next_occurrence_is_a_new_alarm(
    world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine, policy=NO_HOLD)
    feed(sink, FITTED, "tel", tel(1), T0 + 1)
    feed(sink, FITTED, "tel", tel(2, arc=False), T0 + 2)
    # Raised, repeated and cleared within one flush: applied in that order.
    flush(sink, engine, T0 + 3)
    (first,) = alarms(session_factory)
    assert first.repeats == 1
    assert first.cleared_at == NOW + timedelta(hours=1, milliseconds=3)
    feed(sink, FITTED, "tel", tel(3), T0 + 4)
    flush(sink, engine, T0 + 4)
    old, new = alarms(session_factory)
    assert old.id == first.id and old.cleared_at is not None
    assert new.cleared_at is None and new.repeats == 0
    assert sink.raised == 2 and sink.cleared == 1


def test_a_restarted_worker_repeats_and_clears_what_is_open(
    world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    first = started(engine, policy=NO_HOLD)
    feed(first, FITTED, "evt", {"v": 1, "seq": 1, "ts": T0, "type": "gas_alarm", "ppm": 900}, T0)
    feed(first, FITTED, "tel", tel(2), T0 + 1)
    flush(first, engine, T0 + 2)
    assert len(alarms(session_factory)) == 2

    second = started(engine, policy=NO_HOLD)
    assert set(second.conditions[FITTED].open) == {"gas", "current_while_locked"}
    feed(second, FITTED, "tel", tel(3), T0 + 3)
    flush(second, engine, T0 + 4)
    rows = {a.kind: a for a in alarms(session_factory)}
    assert len(rows) == 2
    assert rows["current_while_locked"].repeats == 1
    # The gas alarm loaded from the database still clears after its silence.
    feed(second, FITTED, "tel", tel(4, arc=False), T0 + 5)
    flush(second, engine, T0 + 180_000)
    rows = {a.kind: a for a in alarms(session_factory)}
    assert len(rows) == 2
    assert all(a.cleared_at is not None for a in rows.values())


def test_two_messages_milliseconds_apart_make_one_row(
    world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # Two workers, neither of which knows the other raised it, writing at once:
    # the partial unique index is the arbiter.
    sinks = [started(engine), started(engine)]
    for k, sink in enumerate(sinks):
        feed(sink, FITTED, "tel", tel(k + 1), T0 + k)
    works = [s.drain(T0 + 2) for s in sinks]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(sink: AlarmSink, work: AlarmWork | None) -> None:
        assert work is not None
        barrier.wait()
        try:
            sink.write(engine, work, T0 + 2)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(sinks, works, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    (alarm,) = alarms(session_factory)
    assert alarm.repeats == 1
    assert alarm.raised_at in (NOW + timedelta(hours=1), NOW + timedelta(hours=1, milliseconds=1))


def test_a_failed_write_is_requeued_in_order(
    world: World, engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    sink = started(engine, policy=NO_HOLD)
    feed(sink, FITTED, "tel", tel(1), T0 + 1)
    feed(sink, FITTED, "tel", tel(2, arc=False), T0 + 2)
    work = sink.drain(T0 + 3)
    assert work is not None
    broken = make_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")
    try:
        with pytest.raises(Exception, match=r"device_alarm|chip"):
            sink.write(broken, work, T0 + 3)
    finally:
        broken.dispose()
    sink.requeue(work)
    assert alarms(session_factory) == []
    # Meanwhile the condition came back: raised again after the requeued clear.
    feed(sink, FITTED, "tel", tel(3), T0 + 4)
    flush(sink, engine, T0 + 4)
    old, new = alarms(session_factory)
    assert old.cleared_at is not None and old.repeats == 1
    assert new.cleared_at is None


def test_offline_while_powered_and_back(
    world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine)
    sink.went_offline(FITTED, DeviceLive(online=False, vin_mv=229_000), T0)
    flush(sink, engine, T0)
    (alarm,) = alarms(session_factory)
    assert (alarm.kind, alarm.severity) == ("offline_powered", "warning")
    assert alarm.detail == {"source": "offline", "supply_mv": 229_000}
    hello = {"v": 1, "seq": 1, "ts": T0, "fw": "x", "imei": "860000000000001",
             "iccid": "89860000000000000001", "boot": False, "buf_count": 0}  # fmt: skip
    feed(sink, FITTED, "hello", hello, T0 + 60_000)
    flush(sink, engine, T0 + 60_000)
    (alarm,) = alarms(session_factory)
    assert alarm.cleared_at == NOW + timedelta(hours=1, minutes=1)
    assert FITTED not in sink.conditions


def test_an_unfitted_chip_raises_without_a_place_and_a_fresh_binding_is_found(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine)
    # Never fitted, and its going offline is no alarm.
    sink.went_offline("WGLOOSE01", DeviceLive(online=False), T0)
    tamper = {"v": 1, "seq": 1, "ts": T0, "type": "tamper", "what": "enclosure_open"}
    feed(sink, "WGLOOSE01", "evt", tamper, T0)
    flush(sink, engine, T0)
    (loose,) = alarms(session_factory, "WGLOOSE01")
    assert loose.kind == "tamper" and loose.machine_id is None and loose.enterprise_id is None
    # Fitted after the sink loaded its facts: looked up when the alarm is written.
    MachineService(db).fit_chip(
        world.machines["B"], "WGFRESH01", "860000000000002", "89860000000000000002", "装", NOW
    )
    db.commit()
    removed = {"v": 1, "seq": 1, "ts": T0, "type": "tamper", "what": "chip_removed"}
    feed(sink, "WGFRESH01", "evt", removed, T0 + 1)
    flush(sink, engine, T0 + 1)
    (fresh,) = alarms(session_factory, "WGFRESH01")
    assert (fresh.kind, fresh.severity) == ("chip_removed", "critical")
    assert fresh.machine_id == world.machines["B"].id
    assert fresh.enterprise_id == world.enterprises["B"].id


def test_tamper_clears_when_the_chip_is_refitted(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    sink = started(engine, facts_refresh_ms=1)
    removed = {"v": 1, "seq": 1, "ts": T0, "type": "tamper", "what": "chip_removed"}
    feed(sink, FITTED, "evt", removed, T0)
    flush(sink, engine, T0)
    # An installer refits the chip (here: into machine B) an hour later.
    MachineService(db).fit_chip(
        world.machines["B"],
        FITTED,
        "860000000000001",
        "89860000000000000001",
        "安装员",
        NOW + timedelta(hours=2),
    )
    db.commit()
    flush(sink, engine, T0 + 2 * 3_600_000)  # reloads the bindings
    flush(sink, engine, T0 + 2 * 3_600_000 + 1)  # ... and clears
    (alarm,) = alarms(session_factory)
    assert alarm.cleared_at is not None
    # The alarm stays where it was raised: a chip moved later does not move it.
    assert alarm.machine_id == world.machines["A"].id


def test_the_welding_threshold_is_each_machines_own(
    world: World, db: Session, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """The threshold ingest and the sessions apply: max(5.0 A, 5 % of the rating)."""
    sink = started(engine, facts_refresh_ms=60_000)
    assert sink.facts(FITTED).arc_threshold_da == arc_threshold_da(400) == 200
    # 15 A on machine A (400 A): below its threshold, not welding, no alarm.
    feed(sink, FITTED, "tel", tel(1, i_max_da=150), T0 + 1)
    assert FITTED not in sink.conditions
    feed(sink, FITTED, "tel", tel(2, i_max_da=200), T0 + 2)
    assert set(sink.conditions[FITTED].open) == {"current_while_locked"}
    # A rating corrected in the register applies from the next reload of the bindings.
    db.execute(
        update(Machine).where(Machine.id == world.machines["A"].id).values(rated_current_a=100)
    )
    db.commit()
    flush(sink, engine, T0 + 60_000)
    assert sink.facts(FITTED).arc_threshold_da == 50


def test_an_unfitted_chip_is_judged_by_the_rating_its_hello_gave(world: World) -> None:
    sink = AlarmSink()
    hello = {"v": 1, "seq": 1, "ts": T0, "fw": "x", "imei": "860000000000009",
             "iccid": "89860000000000000009", "rated_a": 400, "boot": True,
             "buf_count": 0}  # fmt: skip
    feed(sink, "WGLOOSE02", "hello", hello, T0)
    feed(sink, "WGLOOSE02", "tel", tel(2, i_max_da=150), T0 + 1)
    assert "WGLOOSE02" not in sink.conditions
    # Without a rating: the 5.0 A floor.
    feed(sink, "WGLOOSE03", "tel", tel(1, i_max_da=49), T0 + 1)
    assert "WGLOOSE03" not in sink.conditions
    feed(sink, "WGLOOSE03", "tel", tel(2, i_max_da=50), T0 + 2)
    assert set(sink.conditions["WGLOOSE03"].open) == {"current_while_locked"}


def test_a_fixed_threshold_still_applies_to_every_machine(world: World, engine: Engine) -> None:
    sink = started(engine, arc_threshold_da=100)
    feed(sink, FITTED, "tel", tel(1, i_max_da=150), T0 + 1)
    assert set(sink.conditions[FITTED].open) == {"current_while_locked"}


def test_drain_is_empty_when_nothing_happened(world: World, engine: Engine) -> None:
    sink = started(engine)
    assert sink.drain(T0 + 1) is None
    # Only the periodic refresh of the bindings.
    work = sink.drain(T0 + 60_000)
    assert work is not None and work.operations == [] and work.refresh_facts


def test_the_session_check_is_asked_about_sessions_in_telemetry() -> None:
    asked: list[tuple[str, str]] = []

    def known(device_id: str, sess: str) -> bool:
        asked.append((device_id, sess))
        return sess == "S-OK"

    sink = AlarmSink(session_known=known)
    feed(sink, "WGX0001", "tel", tel(1, sess="S-OK"), T0, lock="unlocked")
    feed(sink, "WGX0002", "tel", tel(1, sess="S-FORGED"), T0, lock="unlocked")
    assert asked == [("WGX0001", "S-OK"), ("WGX0002", "S-FORGED")]
    assert set(sink.conditions) == {"WGX0002"}
    assert set(sink.conditions["WGX0002"].open) == {"current_without_session"}


# ---------------------------------------------------------------------- the reference chip


def run_chip(flags: Misbehaviour, seconds: int, *, seed: int = 7) -> AlarmSink:
    """Drives the simulator's chip (connected throughout) through the live state
    and the sink, without a broker or a database."""
    secret = "00" * 32
    chip = ChipCore(ChipConfig("WGSIM0001", secret, seed=seed, misbehaviour=flags), T0)
    live = LiveStates()
    sink = AlarmSink()
    now = T0
    pending = chip.on_connect(now)
    for _ in range(seconds):
        for kind, message in pending:
            wire = orjson.loads(orjson.dumps(message))
            change = live.apply("WGSIM0001", kind, wire, now)
            if change is not None:
                state = live.states["WGSIM0001"]
                sink.observe("WGSIM0001", UpKind(kind), wire, change, state, now)
        now += 1000
        pending = chip.tick(now)
    return sink


def _raised(sink: AlarmSink) -> set[str]:
    work = sink.drain(T0)
    return set() if work is None else {o.kind for o in work.operations}


def test_the_reference_chip_welding_while_locked_raises_the_bypass_alarm() -> None:
    sink = run_chip(Misbehaviour(weld_while_locked=True), 600)
    assert "current_while_locked" in _raised(sink)


def test_the_reference_chip_tampering_raises_tamper() -> None:
    sink = run_chip(Misbehaviour(tamper=True), 180)
    assert _raised(sink) & {"tamper", "chip_removed"}


def test_the_reference_chip_over_its_rating_raises_over_current() -> None:
    sink = run_chip(Misbehaviour(weld_while_locked=True, overcurrent=True), 600)
    assert {"over_current", "current_while_locked"} <= _raised(sink)


def test_an_honest_reference_chip_raises_nothing() -> None:
    secret = "00" * 32
    chip = ChipCore(ChipConfig("WGSIM0002", secret, seed=3), T0)
    # Unlock it for a work session and let it weld for ten minutes.
    command = build_command(
        "WGSIM0002",
        "unlock",
        {"sess": "S-1", "welder": "wd-1", "until": T0 + 3_600_000},
        secret,
        T0,
        60_000,
    )
    live, sink, now = LiveStates(), AlarmSink(), T0
    pending = chip.on_connect(now) + chip.handle_command(encode_command(command), now)
    for _ in range(600):
        for kind, message in pending:
            wire = orjson.loads(orjson.dumps(message))
            change = live.apply("WGSIM0002", kind, wire, now)
            if change is not None:
                state = live.states["WGSIM0002"]
                sink.observe("WGSIM0002", UpKind(kind), wire, change, state, now)
        now += 1000
        pending = chip.tick(now)
    assert chip.lock == "unlocked"
    assert any(kind == "tel" for kind, _ in pending) or chip.arc_on or live.states
    assert _raised(sink) == set()


# ---------------------------------------------------------------------- end to end


@pytest.mark.parametrize("broker_kind", BROKERS)
def test_current_while_locked_end_to_end(
    broker_kind: str, world: World, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """A chip welds while locked: one open alarm with its machine, enterprise and
    area, however many windows report it; the arc stops and the alarm clears."""
    device = FITTED
    enterprise = world.enterprises["A"]

    def open_ones() -> list[DeviceAlarm]:
        return [a for a in alarms(session_factory, device) if a.cleared_at is None]

    async def scenario() -> None:
        async with broker(broker_kind) as (host, port):
            sink = AlarmSink(policy=NO_HOLD)
            worker = make_worker(engine, host, port, sinks=[sink], state_flush_ms=100)
            seq = 0

            def up(kind: str, body: dict[str, Any]) -> tuple[str, bytes]:
                nonlocal seq
                seq += 1
                now = _now_ms()
                return f"wg/v1/{device}/up/{kind}", orjson.dumps(
                    {"v": 1, "seq": seq, "ts": now, **body}
                )

            def window(arc: bool) -> dict[str, Any]:
                now = _now_ms()
                return {
                    "arc": arc,
                    "sess": None,
                    "start_ts": now - 1000,
                    "dur_ms": 1000,
                    "i_avg_da": 1500,
                    "i_max_da": 1800,
                    "u_avg_dv": 260,
                    "e_j": 39_000,
                }

            async with running(worker):
                burning = [
                    up(
                        "hb",
                        {
                            "interval_s": 30,
                            "lock": "locked",
                            "sess": None,
                            "rssi": -70,
                            "gps": None,
                            "vin": 229_000,
                        },
                    ),
                    up("evt", {"type": "arc_while_locked", "i_max_da": 1800, "sess": None}),
                    up("tel", window(True)),
                    up("tel", window(True)),
                    up("tel", window(True)),
                ]
                await asyncio.to_thread(publish, host, port, burning)
                await until(lambda: len(open_ones()) == 1 and open_ones()[0].repeats >= 3)
                (alarm,) = alarms(session_factory, device)
                assert alarm.kind == "current_while_locked" and alarm.severity == "critical"
                assert alarm.machine_id == world.machines["A"].id
                assert alarm.enterprise_id == enterprise.id
                assert alarm.jurisdiction_id == enterprise.jurisdiction_id
                assert alarm.repeats == 3
                await asyncio.to_thread(publish, host, port, [up("tel", window(False))])
                await until(lambda: open_ones() == [])
            assert worker.stats()["sink_errors"] == {}

        (alarm,) = alarms(session_factory, device)
        assert alarm.cleared_at is not None and alarm.repeats == 4

    run(scenario)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------- scope


def test_alarms_are_read_within_the_scope(
    world: World, db: Session, settings: Settings, engine: Engine
) -> None:
    at = NOW + timedelta(hours=1)
    for key in ("A", "B", "Z"):
        machine, enterprise = world.machines[key], world.enterprises[key]
        db.add(
            DeviceAlarm(
                device_id=f"WGDEV{key}01",
                kind="tamper",
                severity="warning",
                machine_id=machine.id,
                enterprise_id=enterprise.id,
                jurisdiction_id=enterprise.jurisdiction_id,
                raised_at=at,
                last_seen_at=at,
                repeats=0,
                detail={},
            )
        )
    db.add(
        DeviceAlarm(
            device_id="WGLOOSE02",
            kind="gas",
            severity="critical",
            raised_at=at,
            last_seen_at=at,
            cleared_at=at,
            repeats=0,
            detail={},
        )
    )
    db.commit()
    repo = AlarmRepository(db)
    p = world.personas
    expected = {
        p.admin: {"WGDEVA01", "WGDEVB01", "WGDEVZ01", "WGLOOSE02"},
        p.reg_changning: {"WGDEVA01", "WGDEVB01"},
        p.reg_changning_housing: {"WGDEVB01"},  # 住建: construction sites only
        p.reg_huayang: {"WGDEVA01"},
        p.reg_zhengzhou: {"WGDEVZ01"},
        p.inspector_xinjing: {"WGDEVB01"},
        p.ent_admin_a: {"WGDEVA01"},
        p.safety_b: {"WGDEVB01"},
    }
    for username, devices in expected.items():
        scope = scope_of(db, settings, username)
        page = repo.list_for_scope(scope, AlarmFilter(), page=1, size=50)
        assert {a.device_id for a in page.items} == devices, username
        assert page.total == len(devices)

    admin = scope_of(db, settings, p.admin)
    assert {a.device_id for a in repo.list_for_scope(admin, AlarmFilter(state="open")).items} == {
        "WGDEVA01",
        "WGDEVB01",
        "WGDEVZ01",
    }
    assert [a.device_id for a in repo.list_for_scope(admin, AlarmFilter(kind="gas")).items] == [
        "WGLOOSE02"
    ]
    machine_a = world.machines["A"].id
    assert [a.device_id for a in repo.for_machine(admin, machine_a)] == ["WGDEVA01"]
    assert [
        a.device_id for a in repo.for_machine(scope_of(db, settings, p.ent_admin_a), machine_a)
    ] == ["WGDEVA01"]
    assert repo.for_machine(scope_of(db, settings, p.safety_b), machine_a) == []
    assert repo.for_machine(scope_of(db, settings, p.reg_zhengzhou), machine_a) == []
