"""The unlock fast path against a real broker (the embedded amqtt broker always,
Mosquitto too when WELDGUARD_TEST_MQTT_URL is set): a scan's unlock goes out
through the CommandBus and the reference chip (weldguard.sim) acknowledges it."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.device.conftest import Broker, free_port
from tests.device.test_command_delivery import (
    Chip,
    Platform,
    run,
    start_chip,
    until,
)
from tests.factories import World
from tests.unlock.test_scan_service import NEAR, live_machine, user
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.commands import AckOutcome, CommandRepository, CommandService
from weldguard.device.registry import DeviceSecrets
from weldguard.unlock.command_bus import CommandBus, deliver_command, start_command_bus
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import WorkSession
from weldguard.unlock.service import ScanService, complete_lock, complete_unlock


def scan_now(
    session_factory: sessionmaker[Session],
    settings: Settings,
    machine_code: str,
    claim_for_bus: bool = False,
) -> tuple[str, object]:
    """welder_one scans, with the real clock (the chip checks exp with its own)."""
    with transaction(session_factory) as session:
        result = ScanService(session, settings, claim_for_bus=claim_for_bus).scan(
            user(session, "welder_one"),
            machine_code,
            signer_for(settings).sign(machine_code),
            NEAR,
            None,
            utcnow(),
        )
        assert result.allowed and result.session is not None and result.unlock is not None
        return result.session.id, result.unlock


def session_row(session_factory: sessionmaker[Session], session_id: str) -> WorkSession:
    with session_factory() as session:
        row = session.get(WorkSession, session_id)
        assert row is not None
        return row


def test_unlock_and_lock_through_the_bus(
    broker: Broker,
    db: Session,
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    world: World,
) -> None:
    now = utcnow()
    machine, device_id, secret = live_machine(db, settings, world, now=now)
    transport = start_chip(broker, Chip(device_id, secret, machine.id))

    async def scenario() -> None:
        # The whole platform runs beside the bus: its ingest sink records every ack
        # a second time, and its dispatcher must not publish what the bus sent.
        platform = Platform(broker, engine, session_factory, settings)
        bus = await start_command_bus(settings, session_factory, mqtt_url=broker.url, wait_s=10)
        try:
            async with platform.running():
                assert bus.connected and bus.nodelay() is True
                transport.start()
                await until(lambda: transport.connected and platform.sink.hellos >= 1)
                # The hello's time command goes first; while it is in flight the bus
                # would leave the unlock to the dispatcher (one in flight per device).
                time_command = (await platform.commands_of(device_id))[0]
                await platform.settled(time_command.id)

                session_id, unlock = await asyncio.to_thread(
                    scan_now, session_factory, settings, machine.code
                )
                started = time.perf_counter()
                status = await complete_unlock(
                    bus,
                    session_factory,
                    settings,
                    session_id,
                    unlock,  # type: ignore[arg-type]
                )
                elapsed = time.perf_counter() - started
                assert status == "active"
                # Far below the dispatcher's poll and the sink's flush.
                assert elapsed < 0.5, elapsed
                assert transport.core.lock == "unlocked" and transport.core.sess == session_id
                assert bus.published == 1 and bus.fallbacks == 0

                row = await asyncio.to_thread(session_row, session_factory, session_id)
                assert row.unlocked_at is not None
                command = await platform.command(row.unlock_command_id or "")
                assert (command.status, command.ack_code, command.attempts) == ("acked", 0, 1)
                # The ingest sink records the same ack again, harmlessly. Which of the
                # two commits first is a race (the sink's batch is 20 ms, the bus
                # records in a thread), so count the ack either way: the time
                # command's and the unlock's.
                await until(lambda: platform.sink.acks + platform.sink.duplicate_acks >= 2)
                assert (await platform.command(command.id)).status == "acked"
                assert platform.dispatcher.published <= 1  # only the hello's time command

                def end() -> object:
                    with transaction(session_factory) as session:
                        ended = ScanService(session, settings).end_session(
                            user(session, "welder_one"), session_id, utcnow()
                        )
                        return ended.lock

                lock = await asyncio.to_thread(end)
                ack = await complete_lock(bus, session_factory, settings, lock)  # type: ignore[arg-type]
                assert ack is not None and ack.ok and ack.state == "locked"
                assert transport.core.lock == "locked"
                ended = await asyncio.to_thread(session_row, session_factory, session_id)
                assert (ended.status, ended.end_reason) == ("ended", "welder")
        finally:
            await bus.stop()

    try:
        run(scenario)
    finally:
        transport.stop()


def test_a_chip_that_never_answers_fails_the_session(
    broker: Broker,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    world: World,
) -> None:
    machine, _, _ = live_machine(db, settings, world, now=utcnow())
    quick = settings.model_copy(update={"unlock_wait_s": 0.5})

    async def scenario() -> None:
        bus = await start_command_bus(quick, session_factory, mqtt_url=broker.url, wait_s=10)
        try:
            # Claimed in the scan's own transaction, as the scan page does.
            session_id, unlock = await asyncio.to_thread(
                scan_now, session_factory, quick, machine.code, True
            )
            assert unlock.claimed  # type: ignore[attr-defined]
            status = await complete_unlock(bus, session_factory, quick, session_id, unlock)  # type: ignore[arg-type]
            assert status == "failed"
            row = await asyncio.to_thread(session_row, session_factory, session_id)
            assert row.failure is not None and "芯片无响应" in row.failure
            with session_factory() as session:
                command = CommandRepository(session).get(row.unlock_command_id or "")
                assert command is not None and command.status == "expired"
                assert command.attempts == 1 and command.first_sent_at is not None
            assert bus.published == 1 and bus.lost_claims == 0
        finally:
            await bus.stop()

    run(scenario)


def test_without_a_connection_the_dispatchers_are_used(
    db: Session, session_factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world, now=utcnow())

    async def scenario() -> None:
        bus = CommandBus(
            session_factory=session_factory,
            device_secrets=DeviceSecrets(settings.resolved_secret_key()),
            port=free_port(),  # nothing listens
        )
        await bus.start()
        try:
            _session_id, unlock = await asyncio.to_thread(
                scan_now, session_factory, settings, machine.code
            )
            ack = await deliver_command(bus, session_factory, unlock, 0.3)  # type: ignore[arg-type]
            assert ack is None and bus.fallbacks == 1 and bus.published == 0
            assert bus.nodelay() is None
            # No bus at all: the same fallback.
            assert await deliver_command(None, session_factory, unlock, 0.2) is None  # type: ignore[arg-type]
        finally:
            await bus.stop()

    run(scenario)


def test_an_ack_recorded_twice_keeps_the_first(
    db: Session, session_factory: sessionmaker[Session], settings: Settings, world: World
) -> None:
    machine, device_id, _ = live_machine(db, settings, world, now=utcnow())
    _session_id, unlock = scan_now(session_factory, settings, machine.code)
    command_id = unlock.command_id  # type: ignore[attr-defined]
    secrets = DeviceSecrets(settings.resolved_secret_key())
    at = utcnow()
    with transaction(session_factory) as session:
        assert CommandRepository(session).claim_first_send(
            command_id, 0, at, at + timedelta(seconds=2)
        )
    outcomes = []
    for code in (0, 9):  # the bus's record, then the sink's (or a stray second answer)
        with transaction(session_factory) as session:
            outcomes.append(
                CommandService(session, secrets).record_ack(
                    device_id, {"id": command_id, "code": code, "state": "unlocked"}, at
                )
            )
    assert outcomes == [AckOutcome.RECORDED, AckOutcome.DUPLICATE]
    with session_factory() as session:
        command = CommandRepository(session).get(command_id)
        assert command is not None and (command.status, command.ack_code) == ("acked", 0)
