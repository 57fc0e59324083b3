"""Commands end to end against a real broker (the embedded amqtt broker always,
Mosquitto too when WELDGUARD_TEST_MQTT_URL is set): a registered chip run by the
reference chip (weldguard.sim), an ingest worker with the CommandSink, and the
dispatcher. The chip verifies every command from the spec alone."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from tests.device.cancellation import cancel_after_turns
from tests.device.conftest import Broker, free_port
from tests.factories import World
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.broker import start_embedded_broker
from weldguard.device.broker_auth import platform_mqtt_credentials
from weldguard.device.command_sink import CommandSink
from weldguard.device.commands import (
    CommandRepository,
    CommandService,
    to_ms,
    unlock_args,
    wait_for_result,
)
from weldguard.device.dispatcher import CommandDispatcher
from weldguard.device.ingest import IngestWorker
from weldguard.device.models import DeviceCommand
from weldguard.device.protocol import build_command, encode_command
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.sim.chip import ChipConfig, ChipCore
from weldguard.sim.transport import ChipTransport

WAIT_S = 15.0
# A cancelled ingest worker or dispatcher ends within its bounded shutdown.
STOP_S = 5.0


@dataclass
class Chip:
    device_id: str
    secret: str
    machine_id: int


@pytest.fixture
def chip(db: Session, settings: Settings, world: World) -> Chip:
    """A registered chip fitted to machine B. The id is unique per test: a shared
    Mosquitto carries every parallel test's topics."""
    n = uuid.uuid4().int % 10**13
    device_id = f"WGE{uuid.uuid4().hex[:10].upper()}"
    registry = DeviceRegistry(db, DeviceSecrets(settings.resolved_secret_key()))
    registered, secret = registry.register(
        ChipInput(device_id, f"86{n:013d}", f"8986{n:016d}"), utcnow()
    )
    registry.bind(world.machines["B"].code, registered.device_id, "测试", utcnow())
    db.commit()
    return Chip(device_id, secret, world.machines["B"].id)


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 60) -> None:
    # A loop of its own on a thread of its own (see test_ingest.run).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, asyncio.wait_for(scenario(), timeout)).result()


async def until(check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def stop_tasks(*tasks: asyncio.Task[None]) -> None:
    """Cancels the tasks and waits for them to end, bounded. asyncio.wait, not
    `await task` under suppress(CancelledError): that also swallowed the
    cancellation of the scenario itself (run()'s timeout), which then went on
    with the tasks still running."""
    for task in tasks:
        task.cancel()
    _done, pending = await asyncio.wait(tasks, timeout=STOP_S)
    assert not pending, f"{sorted(t.get_name() for t in pending)} did not stop in {STOP_S} s"
    for task in tasks:
        assert task.cancelled() or task.exception() is None, task


class Platform:
    """The ingest worker with the CommandSink and a dispatcher, both on this loop."""

    def __init__(
        self,
        broker: Broker,
        engine: Engine,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        sync_clock_on_hello: bool = True,
    ) -> None:
        secret = settings.resolved_secret_key()
        self.secrets = DeviceSecrets(secret)
        self.factory = factory
        username, password = platform_mqtt_credentials(secret)
        self.dispatcher = CommandDispatcher(
            session_factory=factory,
            device_secrets=self.secrets,
            host=broker.host,
            port=broker.port,
            username=username,
            password=password,
            poll_s=0.2,
        )
        self.sink = CommandSink(
            self.secrets,
            sync_clock_on_hello=sync_clock_on_hello,
            on_written=self.dispatcher.wake,
        )
        self.ingest = IngestWorker(
            database=engine,
            host=broker.host,
            port=broker.port,
            username=username,
            password=password,
            client_id=f"test-cmd-ingest-{uuid.uuid4().hex[:10]}",
            batch_ms=20,
            state_flush_ms=100,
            offline_check_ms=100,
            # amqtt speaks MQTT 3.1.1 only.
            mqtt_version=4 if broker.kind == "embedded" else 5,
            sinks=[self.sink],
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Platform]:
        tasks = [asyncio.create_task(self.ingest.run()), asyncio.create_task(self.dispatcher.run())]
        try:
            await self.ingest.wait_ready(10)
            await self.dispatcher.wait_connected(10)
            yield self
        finally:
            await stop_tasks(*tasks)

    async def issue(self, chip: Chip, cmd: str, args: dict[str, object], ttl_s: int = 60) -> str:
        def work() -> str:
            with transaction(self.factory) as session:
                service = CommandService(session, self.secrets)
                target = service.resolve_target(chip.device_id)
                return service.issue(target, cmd, args, now=utcnow(), ttl_s=ttl_s).id

        command_id = await asyncio.to_thread(work)
        self.dispatcher.wake()  # what serve does after a commit
        return command_id

    async def command(self, command_id: str) -> DeviceCommand:
        def read() -> DeviceCommand:
            with self.factory() as session:
                command = CommandRepository(session).get(command_id)
                assert command is not None
                return command

        return await asyncio.to_thread(read)

    async def commands_of(self, device_id: str) -> list[DeviceCommand]:
        def read() -> list[DeviceCommand]:
            with self.factory() as session:
                return CommandRepository(session).for_device(device_id)

        return await asyncio.to_thread(read)

    async def settled(self, command_id: str) -> DeviceCommand:
        status = await wait_for_result(self.factory, command_id, WAIT_S)
        assert status != "pending", status
        return await self.command(command_id)


def start_chip(broker: Broker, chip: Chip, **config: object) -> ChipTransport:
    core = ChipCore(
        ChipConfig(device_id=chip.device_id, secret_hex=chip.secret, **config),  # type: ignore[arg-type]
        time.time_ns() // 1_000_000,
    )
    return ChipTransport(core, broker.url, tick_s=0.05, backoff_min_s=0.2, backoff_max_s=1.0)


def test_unlock_is_verified_executed_and_acked(
    broker: Broker,
    chip: Chip,
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    transport = start_chip(broker, chip)

    async def scenario() -> None:
        platform = Platform(broker, engine, session_factory, settings)
        async with platform.running():
            # Our end of the unlock round trip does not wait behind Nagle.
            assert platform.dispatcher.nodelay() is True
            transport.start()
            # The chip's hello is answered with a time command, which it accepts.
            await until(lambda: platform.sink.hellos >= 1)
            time_commands = await platform.commands_of(chip.device_id)
            assert [c.cmd for c in time_commands] == ["time"]
            assert (await platform.settled(time_commands[0].id)).status == "acked"

            until_at = utcnow() + timedelta(hours=2)
            command_id = await platform.issue(
                chip,
                "unlock",
                unlock_args("S-e2e-1", "wd-E2E01", until_at, (31_220_000, 121_420_000, 50)),
            )
            command = await platform.settled(command_id)
            assert (command.status, command.ack_code, command.ack_state) == (
                "acked",
                0,
                "unlocked",
            )
            assert command.machine_id == chip.machine_id
            assert transport.core.lock == "unlocked" and transport.core.sess == "S-e2e-1"
            assert transport.core.fence == {"lat": 31_220_000, "lon": 121_420_000, "r_m": 50}

            lock_id = await platform.issue(chip, "lock", {"reason": "end of shift"})
            locked = await platform.settled(lock_id)
            assert (locked.status, locked.ack_state) == ("acked", "locked")
            assert transport.core.lock == "locked"
            if broker.kind == "embedded":
                # (A shared Mosquitto also carries other test processes' acks.)
                assert platform.sink.unknown_acks == 0

    try:
        run(scenario)
    finally:
        transport.stop()


def test_forged_and_expired_commands_are_refused_and_recorded_failed(
    broker: Broker,
    chip: Chip,
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    # The chip's clock runs two minutes ahead: a 60 s command has expired for it.
    transport = start_chip(broker, chip, clock_skew_ms=120_000)

    async def scenario() -> None:
        platform = Platform(broker, engine, session_factory, settings, sync_clock_on_hello=False)
        async with platform.running():
            transport.start()
            await until(lambda: transport.connected and platform.sink.hellos >= 1)

            expired_id = await platform.issue(chip, "ping", {}, ttl_s=60)
            expired = await platform.settled(expired_id)
            assert (expired.status, expired.ack_code) == ("failed", 2)

            # A forgery: what is published is signed with another key. The row is
            # altered before any dispatcher can see it, as an attacker with write
            # access to the queue (but not the chip's key) would.
            def forge() -> str:
                now = utcnow()
                with transaction(session_factory) as session:
                    service = CommandService(session, platform.secrets)
                    command = service.issue(
                        service.resolve_target(chip.device_id),
                        "unlock",
                        unlock_args("S-forged", "wd-X", now + timedelta(hours=1)),
                        now=now + timedelta(minutes=2),  # valid by the chip's clock
                        ttl_s=120,
                    )
                    signed = build_command(
                        chip.device_id,
                        "unlock",
                        command.args,
                        "ab" * 32,
                        to_ms(now + timedelta(minutes=2)),
                        120_000,
                        command_id=command.id,
                    )
                    session.execute(
                        update(DeviceCommand)
                        .where(DeviceCommand.id == command.id)
                        .values(payload=encode_command(signed).decode(), next_attempt_at=now)
                    )
                    return command.id

            forged_id = await asyncio.to_thread(forge)
            platform.dispatcher.wake()
            forged = await platform.settled(forged_id)
            assert (forged.status, forged.ack_code) == ("failed", 1)
            assert transport.core.lock == "locked"

    try:
        run(scenario)
    finally:
        transport.stop()


def test_offline_device_gets_its_command_when_it_comes_back(
    broker: Broker,
    chip: Chip,
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    transport = start_chip(broker, chip)

    async def scenario() -> None:
        platform = Platform(broker, engine, session_factory, settings)
        async with platform.running():
            command_id = await platform.issue(
                chip, "unlock", unlock_args("S-late", "wd-L1", utcnow() + timedelta(hours=1))
            )
            # Nobody listens: the same bytes go out again on the back-off.
            await until(lambda: platform.dispatcher.published >= 2)
            waiting = await platform.command(command_id)
            assert waiting.status == "sent" and waiting.attempts >= 2
            assert waiting.ack_code is None
            transport.start()  # the chip comes online: hello → time → re-publish
            command = await platform.settled(command_id)
            assert (command.status, command.ack_code) == ("acked", 0)
            assert transport.core.sess == "S-late"
            cmds = [c.cmd for c in await platform.commands_of(chip.device_id)]
            assert sorted(cmds) == ["time", "unlock"]

    try:
        run(scenario)
    finally:
        transport.stop()


def test_dispatcher_waits_for_the_broker_and_reconnects(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    secret = settings.resolved_secret_key()
    username, password = platform_mqtt_credentials(secret)
    port = free_port()
    dispatcher = CommandDispatcher(
        session_factory=session_factory,
        device_secrets=DeviceSecrets(secret),
        host="127.0.0.1",
        port=port,
        username=username,
        password=password,
        poll_s=0.2,
    )

    def connected_times(expected: int) -> bool:
        return dispatcher.connects >= expected

    async def scenario() -> None:
        task = asyncio.create_task(dispatcher.run())
        try:
            # Nothing listens yet: it backs off and tries again, it does not die.
            await until(lambda: dispatcher.connect_failures >= 1)
            assert not task.done()
            for round_ in (1, 2):
                broker = await start_embedded_broker("127.0.0.1", port, session_factory, secret)
                try:
                    await until(functools.partial(connected_times, round_))
                    assert dispatcher.connected and dispatcher.nodelay() is True
                finally:
                    await broker.stop()
                await until(lambda: not dispatcher.connected)
        finally:
            await stop_tasks(task)

    run(scenario)


def test_a_dispatcher_cancelled_as_it_is_woken_stops(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """The dispatch loop waits for a wake-up or its poll. On Python 3.11
    asyncio.wait_for returned normally when cancelled just as the wake-up came
    (CPython gh-86296): the loop ran a cycle and went back to waiting, and run()
    never ended."""
    secret = settings.resolved_secret_key()

    async def scenario() -> None:
        for turns in range(6):
            # Nothing listens on the port: the link keeps trying, harmlessly.
            dispatcher = CommandDispatcher(
                session_factory=session_factory,
                device_secrets=DeviceSecrets(secret),
                host="127.0.0.1",
                port=free_port(),
                poll_s=60,
            )
            # Set, the first cycle runs at once; cleared, the loop waits for the next.
            dispatcher._wake.set()
            task = asyncio.create_task(dispatcher.run())
            await until(lambda: not dispatcher._wake.is_set())  # noqa: B023
            dispatcher._wake.set()
            await cancel_after_turns(task, turns, "the dispatcher", STOP_S)

    run(scenario)
