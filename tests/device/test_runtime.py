"""The device side of `weldguard serve`: the demo fleet file, and the embedded
broker, ingest worker and simulated chips running together on one loop."""

from __future__ import annotations

import asyncio
import csv

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.device.conftest import LoopThread, free_port
from tests.factories import NOW, World
from weldguard.config import Settings
from weldguard.device.models import DeviceMessage, DeviceState
from weldguard.device.registry import DeviceSecrets
from weldguard.device.runtime import device_runtime
from weldguard.machine.repository import MachineRepository
from weldguard.seed.demo_fleet import prepare_demo_fleet
from weldguard.sim.fleet import DEVICE_FIELDS, load_devices


def test_demo_fleet_file_holds_the_secrets_the_platform_issued(
    world: World, db: Session, settings: Settings
) -> None:
    keys = DeviceSecrets(settings.resolved_secret_key())
    path, count = prepare_demo_fleet(db, keys, settings.data_dir, NOW)
    db.commit()
    assert count == 1  # the world's only fitted chip sits in 长宁区
    with path.open(encoding="utf-8") as f:
        assert tuple(next(csv.reader(f))) == DEVICE_FIELDS
    (device,) = load_devices(path)
    chip = MachineRepository(db).chip_by_device_id("WGC000001")
    assert chip is not None and device.device_id == chip.device_id
    assert keys.open(chip) == device.secret
    assert device.rated_a == world.machines["A"].rated_current_a
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    # Run again: a new secret, and the file follows it.
    prepare_demo_fleet(db, keys, settings.data_dir, NOW)
    db.commit()
    db.refresh(chip)
    (again,) = load_devices(path)
    assert again.secret != device.secret and keys.open(chip) == again.secret


def test_demo_fleet_needs_the_reference_data(db: Session, settings: Settings) -> None:
    with pytest.raises(LookupError, match="310105"):
        prepare_demo_fleet(
            db, DeviceSecrets(settings.resolved_secret_key()), settings.data_dir, NOW
        )


def test_serve_device_side_ingests_the_fleet(
    world: World,
    db: Session,
    settings: Settings,
    session_factory: sessionmaker[Session],
    loop_thread: LoopThread,
) -> None:
    path, _ = prepare_demo_fleet(
        db, DeviceSecrets(settings.resolved_secret_key()), settings.data_dir, NOW
    )
    db.commit()
    settings = settings.model_copy(update={"mqtt_listen_port": free_port(), "mqtt_url": None})
    lines: list[str] = []

    def stored() -> tuple[int, bool]:
        with session_factory() as s:
            messages = s.scalar(select(func.count()).select_from(DeviceMessage)) or 0
            online = s.scalar(
                select(DeviceState.online).where(DeviceState.device_id == "WGC000001")
            )
            return messages, bool(online)

    async def scenario() -> tuple[int, bool, dict[str, object]]:
        async with device_runtime(
            settings, session_factory, fleet_file=path, echo=lines.append
        ) as runtime:
            for _ in range(150):
                await asyncio.sleep(0.1)
                messages, online = await asyncio.get_running_loop().run_in_executor(None, stored)
                if messages and online:
                    break
            return messages, online, runtime.workers["ingest"].stats()

    messages, online, stats = loop_thread.run(scenario(), timeout=30)
    assert messages >= 1 and online, stats
    assert stats["bad"] == {}
    assert any("内置 MQTT 代理" in line for line in lines)
    assert any("模拟芯片：1 台" in line for line in lines)
