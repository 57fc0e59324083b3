"""Registering chips, issuing their secrets and binding them to machines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.factories import NOW, TEST_SECRET_FOR_DEVICES, World
from weldguard.cli import app
from weldguard.config import Settings, get_settings
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.errors import Conflict, InvalidInput, NotFound
from weldguard.machine.models import MachineStatus
from weldguard.machine.repository import MachineRepository


@pytest.fixture
def registry(db: Session) -> DeviceRegistry:
    return DeviceRegistry(db, DeviceSecrets(TEST_SECRET_FOR_DEVICES))


def chip(n: int) -> ChipInput:
    return ChipInput(f"WGT{n:06d}", f"87{n:013d}", f"8986{n:016d}", "1.0.0")


def test_register_issues_a_secret_kept_encrypted(registry: DeviceRegistry, world: World) -> None:
    registered, secret = registry.register(chip(1), NOW)
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert registered.secret_encrypted is not None
    assert secret.encode() not in registered.secret_encrypted
    assert registry.keys.open(registered) == secret


def test_second_registration_needs_rotate(registry: DeviceRegistry, world: World) -> None:
    _, first = registry.register(chip(2), NOW)
    with pytest.raises(Conflict):
        registry.register(chip(2), NOW)
    rotated, second = registry.register(chip(2), NOW, rotate=True)
    assert second != first and registry.keys.open(rotated) == second


def test_same_device_id_with_another_imei_is_refused(
    registry: DeviceRegistry, world: World
) -> None:
    registry.register(chip(3), NOW)
    other = ChipInput("WGT000003", "861234567890123", "89860000000000000003")
    with pytest.raises(Conflict):
        registry.register(other, NOW, rotate=True)
    # ...and so is a new device id with an IMEI already in use.
    clone = ChipInput("WGT000033", "870000000000003", "89860000000000000033")
    with pytest.raises(Conflict, match="IMEI"):
        registry.register(clone, NOW)


def test_bad_chip_fields_are_named(registry: DeviceRegistry, world: World) -> None:
    with pytest.raises(InvalidInput) as caught:
        registry.register(ChipInput("x", "123", "abc", "f" * 40), NOW)
    assert {d.field for d in caught.value.details} == {"device_id", "imei", "iccid", "firmware"}


def test_a_chip_fitted_before_registration_gets_its_secret(
    registry: DeviceRegistry, world: World
) -> None:
    # The world fits WGC000001 to machine A without registering it first.
    fitted = ChipInput("WGC000001", "860000000000001", "89860000000000000001")
    registered, secret = registry.register(fitted, NOW)
    assert registry.keys.open(registered) == secret


def test_bind_moves_a_chip_and_keeps_history(
    registry: DeviceRegistry, world: World, db: Session
) -> None:
    registry.register(chip(4), NOW)
    machine_b = world.machines["B"]
    registry.bind(machine_b.code.lower(), "WGT000004", "安装员甲", NOW, position=(31.22, 121.36))
    machines = MachineRepository(db)
    assert machines.current_chips([machine_b.id])[machine_b.id].device_id == "WGT000004"
    machine_c = world.machines["C"]
    registry.bind(machine_c.code, "WGT000004", "安装员乙", NOW)
    db.refresh(machine_b)
    assert machine_b.status == MachineStatus.REGISTERED.value
    history = machines.bindings_of(machine_b.id)
    assert len(history) == 1 and history[0][0].removed_at is not None
    with pytest.raises(NotFound):
        registry.bind("WGNOPE", "WGT000004", "x", NOW)
    with pytest.raises(NotFound):
        registry.bind(machine_c.code, "WGT999999", "x", NOW)


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("WELDGUARD_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("WELDGUARD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WELDGUARD_SECRET_KEY", TEST_SECRET_FOR_DEVICES)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_device_commands(cli: CliRunner, world: World, db: Session) -> None:
    result = cli.invoke(
        app,
        [
            "device",
            "register",
            "--device-id",
            "WGT000010",
            "--imei",
            "860000000000010",
            "--iccid",
            "89860000000000000010",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "设备密钥（仅显示一次）" in result.output
    again = cli.invoke(
        app,
        [
            "device",
            "register",
            "--device-id",
            "WGT000010",
            "--imei",
            "860000000000010",
            "--iccid",
            "89860000000000000010",
        ],
    )
    assert again.exit_code == 1 and "--rotate" in again.output
    machine = world.machines["Z"]
    bound = cli.invoke(
        app, ["device", "bind", "--machine", machine.code, "--device-id", "WGT000010"]
    )
    assert bound.exit_code == 0, bound.output
    db.refresh(machine)
    assert machine.status == MachineStatus.CHIP_FITTED.value
    unknown = cli.invoke(app, ["device", "bind", "--machine", "WGXXXX", "--device-id", "WGT000010"])
    assert unknown.exit_code == 1 and "未知的焊机编码" in unknown.output
