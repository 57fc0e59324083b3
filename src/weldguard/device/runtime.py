"""The device side of ``weldguard serve``: the broker (embedded unless
WELDGUARD_MQTT_URL names one), the ingest worker with its sinks (command acks,
device alarms), the command dispatcher, and for the demo a fleet of simulated
chips, all on the server's event loop next to the web application; also the daily
rollup of the scan statistics (unlock/scan_rollup.py) and the permit supervisor
(permit/supervisor.py).

A large installation runs ``weldguard ingest`` processes of its own against
Mosquitto instead (WELDGUARD_SERVE_DEVICE_WORKERS=false); this module is the
all-in-one shape for one machine and for the demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from weldguard.config import Settings
from weldguard.device.broker import EmbeddedBroker, start_embedded_broker
from weldguard.device.mqtt_url import MqttAddress
from weldguard.device.registry import DeviceSecrets
from weldguard.device.sinks import IngestSink

log = logging.getLogger(__name__)


@dataclass
class DeviceRuntime:
    address: MqttAddress
    # 4 for the embedded amqtt broker (MQTT 3.1.1 only); None: 5 with fallback.
    mqtt_version: int | None
    broker: EmbeddedBroker | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    workers: dict[str, Any] = field(default_factory=dict)


def _broker_address(settings: Settings, broker: EmbeddedBroker | None) -> MqttAddress:
    from weldguard.device.mqtt_url import mqtt_login

    url = broker.url if broker is not None else settings.mqtt_url
    assert url is not None
    return mqtt_login(url, settings.resolved_secret_key())


def ingest_sinks(settings: Settings) -> list[IngestSink]:
    """What every ingest worker feeds besides the message store: command acks
    (and the clock sync a hello calls for), work sessions (and the unlock re-sent
    after a chip's restart), and device alarms (which ask the sessions whether a
    chip's session is one the platform knows)."""
    from weldguard.device.alarms import AlarmSink
    from weldguard.device.command_sink import CommandSink
    from weldguard.unlock.session_sink import SessionSink

    secrets = DeviceSecrets(settings.resolved_secret_key())
    # The sessions sign the unlock they re-send after a chip's restart (§ 6.5).
    sessions = SessionSink(device_secrets=secrets, unlock_ttl_s=settings.unlock_command_ttl_s)
    return [
        CommandSink(secrets),
        sessions,
        AlarmSink(session_known=sessions.session_known),
    ]


def _watch(task: asyncio.Task[Any]) -> None:
    """A worker that dies must say so loudly; the web side keeps serving."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("device worker %s stopped: %r", task.get_name(), exc, exc_info=exc)


def _spawn(runtime: DeviceRuntime, coro: Any, name: str) -> None:
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_watch)
    runtime.tasks.append(task)


@contextlib.asynccontextmanager
async def device_runtime(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    fleet_file: Path | None = None,
    echo: Callable[[str], None] = print,
) -> AsyncIterator[DeviceRuntime]:
    broker = None
    if not settings.mqtt_url:
        broker = await start_embedded_broker(
            settings.mqtt_listen_host,
            settings.mqtt_listen_port,
            session_factory,
            settings.resolved_secret_key(),
        )
        echo(f"内置 MQTT 代理：{broker.url}")
    runtime = DeviceRuntime(
        address=_broker_address(settings, broker),
        mqtt_version=4 if broker is not None else None,
        broker=broker,
    )
    from weldguard.unlock.command_bus import start_command_bus

    # The unlock fast path: the scan page publishes the unlock itself and hears the
    # chip's ack directly instead of waiting for the dispatcher and the ingest flush.
    bus = await start_command_bus(
        settings, session_factory, mqtt_url=broker.url if broker is not None else None
    )
    runtime.workers["command_bus"] = bus
    try:
        if settings.serve_device_workers:
            _start_workers(runtime, settings, session_factory)
        _start_scan_rollup(runtime, session_factory)
        _start_permit_supervisor(runtime, settings, session_factory)
        if fleet_file is not None:
            ingest = runtime.workers.get("ingest")
            if ingest is not None:
                # The simulated chips publish their hello at once; a worker that
                # has not subscribed yet would never see it (a fresh client id
                # has no session on the broker to queue it in).
                await ingest.wait_ready(timeout=15)
            _start_fleet(runtime, settings, session_factory, fleet_file, echo)
        yield runtime
    finally:
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await bus.stop()
        if broker is not None:
            await broker.stop()


def _start_workers(
    runtime: DeviceRuntime, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    from weldguard.device.dispatcher import CommandDispatcher
    from weldguard.device.ingest import IngestWorker

    address = runtime.address
    ingest = IngestWorker(
        database=session_factory,
        host=address.host,
        port=address.port,
        username=address.username,
        password=address.password,
        share_group=settings.mqtt_share_group,
        mqtt_version=runtime.mqtt_version,
        sinks=ingest_sinks(settings),
    )
    dispatcher = CommandDispatcher(
        session_factory=session_factory,
        device_secrets=DeviceSecrets(settings.resolved_secret_key()),
        host=address.host,
        port=address.port,
        tls=address.tls,
        username=address.username,
        password=address.password,
    )
    from weldguard.unlock.supervisor import SessionSupervisor

    supervisor = SessionSupervisor.from_settings(settings, session_factory)
    runtime.workers["ingest"] = ingest
    runtime.workers["dispatcher"] = dispatcher
    runtime.workers["sessions"] = supervisor
    _spawn(runtime, ingest.run(), "ingest")
    _spawn(runtime, dispatcher.run(), "dispatcher")
    _spawn(runtime, supervisor.run(), "sessions")


def _start_scan_rollup(runtime: DeviceRuntime, session_factory: sessionmaker[Session]) -> None:
    """The daily rollup of the scan statistics, at start and every 10 minutes. Not a
    device worker: every ``serve`` runs it (its lease lets one process at a time do
    the work), also where ingest runs in processes of its own."""
    from weldguard.unlock.scan_rollup import ScanRollup

    rollup = ScanRollup(session_factory)
    runtime.workers["scan_rollup"] = rollup
    _spawn(runtime, rollup.run(), "scan-rollup")


def _start_permit_supervisor(
    runtime: DeviceRuntime, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """The permit supervisor (permit/supervisor.py), at start and every 30 s. Every
    ``serve`` runs it: each permit is claimed row by row, so several processes
    share the work without acting twice on one permit. It signs the locks of the
    machines of the permits it stops with the device secrets."""
    from weldguard.permit.supervisor import PermitSupervisor

    supervisor = PermitSupervisor.from_settings(settings, session_factory)
    runtime.workers["permit_supervisor"] = supervisor
    _spawn(runtime, supervisor.run(), "permit-supervisor")


def _start_fleet(
    runtime: DeviceRuntime,
    settings: Settings,
    session_factory: sessionmaker[Session],
    fleet_file: Path,
    echo: Callable[[str], None],
) -> None:
    from weldguard.seed.demo_activity import DemoActivity
    from weldguard.sim.fleet import Fleet, load_devices

    devices = load_devices(fleet_file)
    address = runtime.address
    # The simulated chips log in with their own credentials, as real ones do.
    fleet = Fleet(
        devices,
        f"mqtt://{address.host}:{address.port}",
        misbehaving=0.1,
        # The honest chips are unlocked by the platform when demo welders scan.
        self_unlock=0.0,
    )
    activity = DemoActivity(
        settings,
        session_factory,
        [d.device_id for d in devices],
        lambda: runtime.workers.get("command_bus"),
    )
    runtime.workers["fleet"] = fleet
    runtime.workers["demo_activity"] = activity
    echo(f"模拟芯片：{len(devices)} 台（{len(fleet.misbehaving)} 台异常）；演示焊工定时扫码开机")
    _spawn(runtime, fleet.run(), "fleet")
    _spawn(runtime, activity.run(), "demo-activity")
