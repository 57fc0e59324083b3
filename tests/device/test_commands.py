"""The command service and repository: issuing and validating, every delivery
transition, the § 13 back-off on a fake clock, one in flight per device, expiry,
every ack code, unknown and duplicate acks, the re-publish after a hello, and
claim safety with two dispatchers. No broker here (test_command_delivery.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import ADMIN_SCOPE, NOW, World
from weldguard.config import Settings
from weldguard.device.command_sink import CommandSink
from weldguard.device.commands import (
    PENDING,
    AckOutcome,
    CommandService,
    DispatchItem,
    retry_delay,
    to_ms,
    unlock_args,
    validate_args,
    wait_for_result,
)
from weldguard.device.dispatcher import CommandDispatcher
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.models import CommandStatus, DeviceCommand
from weldguard.device.protocol import UpKind
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.errors import Conflict, InvalidInput, NotFound
from weldguard.machine.models import Machine
from weldguard.machine.service import MachineService
from weldguard.sim.chip import verify

S = timedelta(seconds=1)


class Bench:
    """A machine with a registered, bound chip and a service on the test session."""

    def __init__(self, db: Session, settings: Settings, world: World, n: int = 1) -> None:
        self.db = db
        self.secrets = DeviceSecrets(settings.resolved_secret_key())
        registry = DeviceRegistry(db, self.secrets)
        self.machine: Machine = world.machines["B"]
        chip, self.secret = registry.register(
            ChipInput(f"WGT{n:06d}", f"87{n:013d}", f"8987{n:016d}"), NOW
        )
        registry.bind(self.machine.code, chip.device_id, "测试", NOW)
        self.chip = chip
        self.device_id = chip.device_id
        db.commit()
        self.service = CommandService(db, self.secrets)

    def issue(self, cmd: str = "ping", args: dict[str, Any] | None = None, **kw: Any) -> str:
        command = self.service.issue(self.machine, cmd, args or {}, now=kw.pop("now", NOW), **kw)
        self.db.commit()
        return command.id

    def get(self, command_id: str) -> DeviceCommand:
        self.db.expire_all()
        command = self.db.get(DeviceCommand, command_id)
        assert command is not None
        return command

    def dispatch(self, now: datetime) -> list[DispatchItem]:
        """One dispatcher cycle without MQTT: expire, then claim what is due."""
        self.service.expire_overdue(now)
        self.db.commit()
        claimed = []
        for command in self.service.due(now):
            item = self.service.claim(command, now)
            self.db.commit()
            if item is not None:
                claimed.append(item)
        return claimed

    def ack(self, command_id: str, code: int, at: datetime, state: str = "locked") -> AckOutcome:
        outcome = self.service.record_ack(
            self.device_id, {"id": command_id, "ok": code == 0, "code": code, "state": state}, at
        )
        self.db.commit()
        return outcome


@pytest.fixture
def bench(db: Session, settings: Settings, world: World) -> Bench:
    return Bench(db, settings, world)


def fields(error: InvalidInput) -> set[str]:
    return {d.field for d in error.details if d.field}


# ---------------------------------------------------------------------- issuing


def test_issue_signs_once_and_queues(bench: Bench) -> None:
    until = NOW + timedelta(hours=8)
    command_id = bench.issue(
        "unlock",
        unlock_args("S-1", "wd-7Q2K9X", until, (31_220_400, 121_424_500, 10)),
        ttl_s=90,
        requested_by=None,
        reason="scan",
    )
    command = bench.get(command_id)
    assert command.status == CommandStatus.QUEUED
    assert command.device_id == bench.device_id and command.machine_id == bench.machine.id
    assert command.next_attempt_at == NOW and command.attempts == 0
    assert command.expires_at == NOW + 90 * S
    payload = json.loads(command.payload)
    # The reference chip verifies with its own canonical form, from the spec alone.
    assert verify(payload, bench.secret)
    assert payload["id"] == command_id and payload["dev"] == bench.device_id
    assert payload["iat"] == to_ms(NOW) and payload["exp"] == to_ms(NOW) + 90_000
    assert payload["args"]["until"] == to_ms(until)
    assert payload["args"]["fence"] == {"lat": 31_220_400, "lon": 121_424_500, "r_m": 10}
    assert command.reason == "scan"


@pytest.mark.parametrize(
    ("cmd", "args", "bad"),
    [
        ("unlock", {"sess": "S", "until": 10**13}, "args.welder"),
        ("unlock", {"sess": "S", "welder": "w", "until": 1}, "args.until"),
        ("unlock", {"sess": "S 1", "welder": "w", "until": 10**13}, "args.sess"),
        ("unlock", {"sess": "S", "welder": "310105198503120011", "until": 10**13}, "args.welder"),
        (
            "unlock",
            {"sess": "S", "welder": "w", "until": 10**13, "fence": {"lat": 1, "lon": 2, "r_m": 0}},
            "args.fence.r_m",
        ),
        ("unlock", {"sess": "S", "welder": "w", "until": 10**13, "extra": 1}, "args.extra"),
        ("lock", {"reason": "x" * 65}, "args.reason"),
        ("config", {}, "args"),
        ("config", {"hb_s": 5}, "args.hb_s"),
        ("config", {"tel_s": True}, "args.tel_s"),
        ("ping", {"x": 1}, "args.x"),
        ("time", {"now": 1}, "cmd"),
        ("reboot", {}, "cmd"),
    ],
)
def test_bad_arguments_name_the_field(
    bench: Bench, cmd: str, args: dict[str, Any], bad: str
) -> None:
    assert bad in {d.field for d in validate_args(cmd, args, to_ms(NOW))}
    with pytest.raises(InvalidInput) as caught:
        bench.service.issue(bench.machine, cmd, args, now=NOW)
    assert bad in fields(caught.value)
    bench.db.rollback()


def test_ttl_is_bounded(bench: Bench) -> None:
    for ttl in (0, 601):
        with pytest.raises(InvalidInput) as caught:
            bench.service.issue(bench.machine, "ping", {}, now=NOW, ttl_s=ttl)
        assert fields(caught.value) == {"ttl_s"}


def test_machine_without_chip_or_chip_without_secret(
    db: Session, settings: Settings, world: World
) -> None:
    service = CommandService(db, DeviceSecrets(settings.resolved_secret_key()))
    with pytest.raises(Conflict, match="未安装芯片"):
        service.issue(world.machines["C"], "ping", {}, now=NOW)
    # Machine A's chip was fitted but never registered: it has no secret.
    with pytest.raises(Conflict, match="尚未签发密钥"):
        service.issue(world.machines["A"], "ping", {}, now=NOW)


def test_a_moved_chip_no_longer_counts_and_retired_machines_take_none(
    bench: Bench, world: World
) -> None:
    registry = DeviceRegistry(bench.db, bench.secrets)
    registry.bind(world.machines["C"].code, bench.device_id, "测试", NOW + S)
    bench.db.commit()
    with pytest.raises(Conflict, match="未安装芯片"):
        bench.service.issue(bench.machine, "ping", {}, now=NOW + S)
    command = bench.service.issue(world.machines["C"], "ping", {}, now=NOW + S)
    assert command.device_id == bench.device_id and command.machine_id == world.machines["C"].id
    MachineService(bench.db).retire(ADMIN_SCOPE, world.machines["C"].id, NOW + S)
    with pytest.raises(InvalidInput) as caught:
        bench.service.issue(world.machines["C"], "ping", {}, now=NOW + S)
    assert fields(caught.value) == {"machine"}


def test_target_by_code_or_device_id(bench: Bench) -> None:
    assert bench.service.resolve_target(bench.machine.code.lower()) is bench.machine
    chip = bench.service.resolve_target(bench.device_id)
    command = bench.service.issue(chip, "ping", {}, now=NOW)
    assert command.machine_id == bench.machine.id
    with pytest.raises(NotFound):
        bench.service.resolve_target("nothing-here")


# ---------------------------------------------------------------------- delivery


def test_backoff_2_4_8_then_every_15_seconds_same_bytes(bench: Bench) -> None:
    command_id = bench.issue(ttl_s=600)
    payload = bench.get(command_id).payload.encode()
    sent_at: list[datetime] = []
    clock = NOW
    # Walk the fake clock second by second and record every publish.
    while clock <= NOW + 60 * S:
        for item in bench.dispatch(clock):
            assert item.command_id == command_id
            assert item.payload == payload  # byte for byte on every retry
            assert item.attempt == len(sent_at) + 1
            sent_at.append(clock)
        clock += S
    gaps = [int((b - a) / S) for a, b in itertools.pairwise(sent_at)]
    assert gaps == [2, 4, 8, 15, 15, 15]
    command = bench.get(command_id)
    assert command.status == CommandStatus.SENT
    assert command.first_sent_at == NOW and command.last_sent_at == sent_at[-1]
    assert [retry_delay(n) / S for n in range(1, 7)] == [2, 4, 8, 15, 15, 15]


def test_one_command_in_flight_per_device(bench: Bench) -> None:
    first = bench.issue("lock")
    second = bench.issue("ping", now=NOW + S)
    assert [i.command_id for i in bench.dispatch(NOW + S)] == [first]
    # The second waits while the first is in flight, retries or not.
    assert [i.command_id for i in bench.dispatch(NOW + 3 * S)] == [first]
    assert bench.get(second).status == CommandStatus.QUEUED
    assert bench.ack(first, 0, NOW + 4 * S) is AckOutcome.RECORDED
    assert [i.command_id for i in bench.dispatch(NOW + 4 * S)] == [second]
    assert bench.get(second).status == CommandStatus.SENT


def test_acked(bench: Bench) -> None:
    command_id = bench.issue("lock")
    bench.dispatch(NOW)
    bench.ack(command_id, 0, NOW + S, state="locked")
    command = bench.get(command_id)
    assert (command.status, command.ack_code, command.ack_state) == ("acked", 0, "locked")
    assert command.finished_at == NOW + S
    assert bench.dispatch(NOW + 10 * S) == []


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 9, 42, 255])
def test_refusals_fail(bench: Bench, code: int) -> None:
    command_id = bench.issue()
    bench.dispatch(NOW)
    bench.ack(command_id, code, NOW + S)
    command = bench.get(command_id)
    assert (command.status, command.ack_code) == ("failed", code)
    assert command.finished_at == NOW + S
    assert bench.dispatch(NOW + 30 * S) == []


def test_busy_is_retried_until_exp(bench: Bench) -> None:
    command_id = bench.issue(ttl_s=20)
    assert len(bench.dispatch(NOW)) == 1
    bench.ack(command_id, 7, NOW + S)
    command = bench.get(command_id)
    assert (command.status, command.ack_code) == ("sent", 7)
    assert [i.attempt for i in bench.dispatch(NOW + 2 * S)] == [2]
    bench.ack(command_id, 7, NOW + 3 * S)
    assert [i.attempt for i in bench.dispatch(NOW + 6 * S)] == [3]
    assert [i.attempt for i in bench.dispatch(NOW + 14 * S)] == [4]
    assert bench.dispatch(NOW + 20 * S) == []
    assert bench.get(command_id).status == CommandStatus.EXPIRED


def test_clock_unsynced_sends_time_first_then_the_same_command(bench: Bench) -> None:
    command_id = bench.issue("lock", ttl_s=120)
    original = bench.dispatch(NOW)[0]
    bench.ack(command_id, 8, NOW + S)
    assert bench.get(command_id).status == CommandStatus.QUEUED
    first = bench.dispatch(NOW + S)
    assert len(first) == 1
    time_cmd = bench.get(first[0].command_id)
    assert time_cmd.cmd == "time" and time_cmd.status == CommandStatus.SENT
    sent_time = json.loads(time_cmd.payload)
    assert sent_time["args"] == {"now": to_ms(NOW + S)} and sent_time["iat"] == to_ms(NOW + S)
    assert sent_time["exp"] - sent_time["iat"] == 30_000
    assert verify(sent_time, bench.secret)
    # Another unsynced answer does not pile up time commands.
    bench.ack(command_id, 8, NOW + S)
    assert sum(c.cmd == "time" for c in bench.service.repo.for_device(bench.device_id)) == 1
    bench.ack(time_cmd.id, 0, NOW + 2 * S)
    again = bench.dispatch(NOW + 2 * S)
    assert [i.command_id for i in again] == [command_id]
    assert again[0].payload == original.payload and again[0].attempt == 2
    bench.ack(command_id, 0, NOW + 3 * S)
    assert bench.get(command_id).status == CommandStatus.ACKED


def test_expiry_of_sent_and_queued(bench: Bench) -> None:
    in_flight = bench.issue(ttl_s=10)
    waiting = bench.issue(ttl_s=5, now=NOW + S / 10)
    bench.dispatch(NOW)
    assert bench.get(waiting).status == CommandStatus.QUEUED
    bench.dispatch(NOW + 5 * S)
    bench.dispatch(NOW + 6 * S)
    assert bench.get(waiting).status == CommandStatus.EXPIRED
    assert bench.get(waiting).first_sent_at is None
    bench.dispatch(NOW + 10 * S)
    command = bench.get(in_flight)
    assert command.status == CommandStatus.EXPIRED and command.finished_at == NOW + 10 * S
    assert bench.service.due(NOW + 11 * S) == []


def test_ack_after_exp_is_still_recorded(bench: Bench) -> None:
    executed = bench.issue(ttl_s=5)
    bench.dispatch(NOW)
    bench.dispatch(NOW + 5 * S)
    assert bench.ack(executed, 0, NOW + 6 * S) is AckOutcome.RECORDED
    command = bench.get(executed)
    assert (command.status, command.ack_code, command.finished_at) == ("acked", 0, NOW + 6 * S)
    refused = bench.issue(ttl_s=5, now=NOW + 6 * S)
    bench.dispatch(NOW + 6 * S)
    bench.dispatch(NOW + 11 * S)
    bench.ack(refused, 2, NOW + 12 * S)
    command = bench.get(refused)
    assert (command.status, command.ack_code) == ("expired", 2)


def test_unknown_and_duplicate_acks(bench: Bench) -> None:
    command_id = bench.issue()
    bench.dispatch(NOW)
    assert bench.ack("no-such-command", 0, NOW) is AckOutcome.UNKNOWN
    # Another chip cannot answer for this one.
    outcome = bench.service.record_ack("WGOTHER1", {"id": command_id, "code": 0}, NOW)
    assert outcome is AckOutcome.UNKNOWN
    assert bench.get(command_id).status == CommandStatus.SENT
    assert bench.ack(command_id, 0, NOW + S) is AckOutcome.RECORDED
    assert bench.ack(command_id, 0, NOW + 2 * S) is AckOutcome.DUPLICATE
    assert bench.ack(command_id, 3, NOW + 3 * S) is AckOutcome.DUPLICATE
    command = bench.get(command_id)
    assert (command.status, command.ack_code, command.finished_at) == ("acked", 0, NOW + S)


def test_hello_republishes_at_once(bench: Bench) -> None:
    bench.issue(ttl_s=120)
    bench.dispatch(NOW)
    bench.dispatch(NOW + 2 * S)  # second attempt, next one due at +6 s
    assert bench.dispatch(NOW + 3 * S) == []
    bench.service.device_said_hello(bench.device_id, NOW + 3 * S, sync_clock=False)
    bench.db.commit()
    assert [i.attempt for i in bench.dispatch(NOW + 3 * S)] == [3]


def test_hello_sends_time_first(bench: Bench) -> None:
    command_id = bench.issue("lock", ttl_s=120)
    bench.dispatch(NOW)
    bench.service.device_said_hello(bench.device_id, NOW + S)
    bench.db.commit()
    first = bench.dispatch(NOW + S)
    assert len(first) == 1 and bench.get(first[0].command_id).cmd == "time"
    assert bench.get(command_id).status == CommandStatus.QUEUED
    bench.ack(first[0].command_id, 0, NOW + S)
    assert [i.command_id for i in bench.dispatch(NOW + S)] == [command_id]


def test_claim_lost_to_another_dispatcher(
    bench: Bench, session_factory: sessionmaker[Session]
) -> None:
    command_id = bench.issue()
    other = CommandService(session_factory(), bench.secrets)
    mine = bench.service.due(NOW)
    theirs = other.due(NOW)
    assert [c.id for c in mine] == [c.id for c in theirs] == [command_id]
    assert other.claim(theirs[0], NOW) is not None
    other.session.commit()
    other.session.close()
    assert bench.service.claim(mine[0], NOW) is None
    assert bench.get(command_id).attempts == 1


def test_two_dispatchers_never_send_the_same_attempt(
    bench: Bench, session_factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    """Two dispatchers claim concurrently from threads over 8 devices x 3 commands;
    every publish is claimed by exactly one of them and a device never has two
    commands in flight."""
    devices = [bench.chip] + [Bench(bench.db, settings, world, n).chip for n in range(2, 9)]
    service = CommandService(bench.db, bench.secrets)
    ids = []
    for chip in devices:
        for k in range(3):
            ids.append(service.issue(chip, "ping", {}, now=NOW + k * S / 10).id)
    bench.db.commit()
    dispatchers = [
        CommandDispatcher(session_factory=session_factory, device_secrets=bench.secrets)
        for _ in range(2)
    ]
    barrier = threading.Barrier(2)
    claimed: list[list[DispatchItem]] = [[], []]

    def run(index: int) -> None:
        for step in range(6):
            barrier.wait()
            claimed[index].extend(dispatchers[index]._claim(NOW + step * S))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    everything = claimed[0] + claimed[1]
    attempts = [(i.command_id, i.attempt) for i in everything]
    assert len(attempts) == len(set(attempts))
    with session_factory() as s:
        sent = s.scalars(select(DeviceCommand).where(DeviceCommand.status == "sent")).all()
    assert len(sent) == len({c.device_id for c in sent}) == len(devices)
    # Only the first command of each device went out: at 0 s and, after 2 s, again.
    assert {i.command_id for i in everything} == {c.id for c in sent}
    assert sorted(a for _, a in attempts) == sorted([1, 2] * len(devices))


# ---------------------------------------------------------------------- sink


def _change(device_id: str, kind: str, live: bool = True) -> StateChange:
    return StateChange(device_id, kind, live, False, False, False)


def test_sink_records_acks_and_hellos_in_one_batch(bench: Bench) -> None:
    woken: list[int] = []
    sink = CommandSink(bench.secrets, sync_clock_on_hello=False, on_written=lambda: woken.append(1))
    command_id = bench.issue()
    bench.dispatch(NOW)
    state = DeviceLive()
    now = to_ms(NOW + S)
    assert sink.drain(now) is None
    hello = {"v": 1, "seq": 1, "ts": now, "boot": False}
    sink.observe(
        bench.device_id, UpKind.HELLO, hello, _change(bench.device_id, "hello"), state, now
    )
    # A hello replayed from the buffer is history: no re-publish.
    sink.observe(
        bench.device_id, UpKind.HELLO, hello, _change(bench.device_id, "hello", False), state, now
    )
    for ack_id in (command_id, "unknown-id"):
        ack = {"v": 1, "seq": 2, "ts": now, "id": ack_id, "ok": True, "code": 0, "state": "locked"}
        sink.observe(bench.device_id, UpKind.ACK, ack, _change(bench.device_id, "ack"), state, now)
    heartbeat = {"v": 1, "seq": 3}
    sink.observe(bench.device_id, UpKind.HB, heartbeat, _change(bench.device_id, "hb"), state, now)
    work = sink.drain(now)
    assert work is not None and len(work) == 3
    engine = bench.db.get_bind()
    # A failed write gives the work back, in order, for the next flush.
    sink.requeue(work)
    work = sink.drain(now)
    assert work is not None and len(work) == 3
    sink.write(engine, work, now)  # type: ignore[arg-type]
    assert sink.stats() == {"acks": 1, "duplicate_acks": 0, "unknown_acks": 1, "hellos": 1}
    assert bench.get(command_id).status == CommandStatus.ACKED
    assert woken == [1]


# ---------------------------------------------------------------------- waiting


def _run(coro: Callable[[], Any]) -> Any:
    # A loop of its own on a thread of its own (see test_ingest.run).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro()).result(30)


def test_wait_for_result(bench: Bench, session_factory: sessionmaker[Session]) -> None:
    command_id = bench.issue()
    assert _run(lambda: wait_for_result(session_factory, command_id, 0.2)) == PENDING

    async def answered_meanwhile() -> str:
        waiting = asyncio.create_task(wait_for_result(session_factory, command_id, 20))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(bench.ack, command_id, 0, NOW)
        return await waiting

    assert _run(answered_meanwhile) == "acked"
    with pytest.raises(NotFound):
        _run(lambda: wait_for_result(session_factory, "missing", 1))


# ---------------------------------------------------------------------- CLI


def test_cli_queues_and_waits(
    bench: Bench, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from weldguard.cli import app
    from weldguard.config import get_settings

    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", settings.resolved_secret_key())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        unlock = ["device", "command", bench.machine.code, "unlock", "--welder", "wd-1"]
        fence = ["--fence-lat", "31.2204", "--fence-lon", "121.4245", "--fence-r", "30"]
        queued = runner.invoke(app, [*unlock, "--until", "+2h", *fence, "--wait", "0.2"])
        by_device = runner.invoke(
            app, ["device", "command", bench.device_id, "lock", "--reason", "停工"]
        )
        refused = runner.invoke(app, ["device", "command", bench.machine.code, "config"])
        half_fence = runner.invoke(
            app, ["device", "command", bench.device_id, "unlock", "--welder", "w", "--fence-r", "5"]
        )
    finally:
        get_settings.cache_clear()
    assert queued.exit_code == 3, queued.output  # still on its way after --wait
    assert "已排队命令" in queued.output and "pending" in queued.output
    assert by_device.exit_code == 0, by_device.output
    assert refused.exit_code == 1 and "args" in refused.output
    assert half_fence.exit_code == 2  # a usage error, nothing queued
    commands = bench.service.repo.for_device(bench.device_id)
    assert [c.cmd for c in commands] == ["unlock", "lock"]
    unlocked, locked = commands
    assert unlocked.args["fence"] == {"lat": 31_220_400, "lon": 121_424_500, "r_m": 30}
    assert unlocked.args["welder"] == "wd-1" and unlocked.reason == "cli"
    assert locked.args == {"reason": "停工"}


def test_dispatcher_logs_in_as_the_platform_unless_the_url_says_otherwise() -> None:
    from weldguard.device.broker_auth import platform_mqtt_credentials
    from weldguard.device.mqtt_url import mqtt_login

    embedded = mqtt_login("mqtt://127.0.0.1:1884", "platform-secret")
    assert (embedded.host, embedded.port, embedded.tls) == ("127.0.0.1", 1884, False)
    assert (embedded.username, embedded.password) == platform_mqtt_credentials("platform-secret")
    operator = mqtt_login("mqtts://ops:p%40ss@broker.example", "platform-secret")
    assert (operator.port, operator.tls, operator.username, operator.password) == (
        8883,
        True,
        "ops",
        "p@ss",
    )


def test_a_fleet_of_hellos_takes_a_handful_of_statements(
    db: Session, settings: Settings, world: World
) -> None:
    """A whole fleet reconnecting: one batch of hellos is answered with a fixed
    number of statements, each chip gets its one time command, and a chip with
    one open already gets no second."""
    from sqlalchemy import event

    from tests.unlock.test_scan_service import live_machine

    chips = [live_machine(db, settings, world)[1] for _ in range(6)]
    service = CommandService(db, DeviceSecrets(settings.resolved_secret_key()))
    service.devices_said_hello(chips[:1], NOW)
    db.commit()
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2].split(None, 1)[0].upper())

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        service.devices_said_hello([*chips, "WGNOSUCHCHIP"], NOW + S)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    db.commit()
    assert len(seen) <= 5, seen
    times = db.scalars(
        select(DeviceCommand).where(DeviceCommand.cmd == "time", DeviceCommand.device_id.in_(chips))
    ).all()
    assert sorted(c.device_id for c in times) == sorted(chips)


def test_a_batch_of_acks_is_read_at_once_and_flushed_once(bench: Bench) -> None:
    """The ingest sink's batch: one read and one flush for all its acks, each with
    the outcome it gets alone, in order (the second answer to a command in the
    same batch is a duplicate; another chip's answer or an unknown id changes
    nothing)."""
    from sqlalchemy import event

    first, second, third = bench.issue("lock"), bench.issue("ping"), bench.issue("ping")
    bench.service.expire_overdue(NOW)
    batch = [
        (bench.device_id, {"id": first, "code": 0, "state": "locked"}, NOW + S),
        (bench.device_id, {"id": "no-such-command", "code": 0}, NOW + S),
        ("WGOTHER1", {"id": second, "code": 0}, NOW + S),
        (bench.device_id, {"id": second, "code": 3}, NOW + 2 * S),
        (bench.device_id, {"id": first, "code": 5}, NOW + 3 * S),
    ]
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2].split(None, 1)[0].upper())

    engine = bench.db.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        outcomes = bench.service.record_acks(batch)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    bench.db.commit()
    assert outcomes == [
        AckOutcome.RECORDED,
        AckOutcome.UNKNOWN,
        AckOutcome.UNKNOWN,
        AckOutcome.RECORDED,
        AckOutcome.DUPLICATE,
    ]
    # One read; the flush updates the two commands answered (one executemany on
    # PostgreSQL).
    assert seen[0] == "SELECT" and set(seen[1:]) == {"UPDATE"} and len(seen) <= 3, seen
    assert (bench.get(first).status, bench.get(first).ack_code) == ("acked", 0)
    assert (bench.get(second).status, bench.get(second).ack_code) == ("failed", 3)
    assert bench.get(third).status == "queued"
    assert bench.service.record_acks([]) == []
