"""The demo's live chips: secrets issued for the chips fitted in one district's
machines, written to a devices file that ``weldguard serve --fleet`` (the fleet
simulator) reads, so the demo has machines that report, weld and misbehave.

The file holds device secrets in clear. It is for the demo only and lives in the
data directory, which is never committed."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.machine.repository import MachineRepository
from weldguard.sim.fleet import DEVICE_FIELDS

DEMO_FLEET_FILE = "demo-devices.csv"
# 上海市长宁区: the district the demo accounts look at first.
DEMO_FLEET_AREA_CODE = "310105"
DEMO_FLEET_SIZE = 120


def demo_fleet_path(data_dir: Path) -> Path:
    return data_dir / DEMO_FLEET_FILE


def prepare_demo_fleet(
    session: Session,
    keys: DeviceSecrets,
    data_dir: Path,
    now: datetime,
    *,
    area_code: str = DEMO_FLEET_AREA_CODE,
    size: int = DEMO_FLEET_SIZE,
) -> tuple[Path, int]:
    """Issues fresh secrets for up to ``size`` fitted chips of the area and writes
    the devices file; returns its path and the number of devices. Rewritten on
    every call: a secret exists only in the database and this file, and the two
    must agree."""
    area = JurisdictionRepository(session).by_code(area_code)
    if area is None:
        raise LookupError(f"no jurisdiction {area_code}: run weldguard seed demo first")
    registry = DeviceRegistry(session, keys)
    rows: list[list[object]] = []
    for chip, binding, machine in MachineRepository(session).fitted_chips_in_area(area.path, size):
        _, secret = registry.register(
            ChipInput(chip.device_id, chip.imei, chip.iccid, chip.firmware), now, rotate=True
        )
        lat = binding.latitude if binding.latitude is not None else 31.2204
        lon = binding.longitude if binding.longitude is not None else 121.4245
        rows.append(
            [chip.device_id, secret, chip.imei, chip.iccid, machine.rated_current_a, lat, lon]
        )
    path = demo_fleet_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(DEVICE_FIELDS)
        writer.writerows(rows)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path, len(rows)
