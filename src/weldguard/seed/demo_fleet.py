"""The demo's live chips: secrets issued for the chips fitted in one district's
machines, written to a devices file that ``weldguard serve --fleet`` (the fleet
simulator) reads, so the demo has machines that report, weld and misbehave.

The file holds device secrets in clear. It is for the demo only and lives in the
data directory, which is never committed."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from weldguard.auth.models import Role, User
from weldguard.auth.repository import UserRepository
from weldguard.auth.service import AuthService, NewUser
from weldguard.clock import local_today
from weldguard.config import Settings
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.machine.repository import MachineRepository
from weldguard.seed.demo import DEMO_PASSWORD, welders_with_valid_certificate
from weldguard.sim.fleet import DEVICE_FIELDS
from weldguard.welder.models import Welder

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
    settings: Settings | None = None,
) -> tuple[Path, int]:
    """Issues fresh secrets for up to ``size`` fitted chips of the area and writes
    the devices file; returns its path and the number of devices. Rewritten on
    every call: a secret exists only in the database and this file, and the two
    must agree. With ``settings``, one welder of each enterprise owning those
    machines also gets an account (username w + phone), so that the demo's
    welders can scan to unlock (see seed/demo_activity.py)."""
    area = JurisdictionRepository(session).by_code(area_code)
    if area is None:
        raise LookupError(f"no jurisdiction {area_code}: run weldguard seed demo first")
    registry = DeviceRegistry(session, keys)
    rows: list[list[object]] = []
    enterprise_ids: set[int] = set()
    for chip, binding, machine in MachineRepository(session).fitted_chips_in_area(area.path, size):
        enterprise_ids.add(machine.enterprise_id)
        _, secret = registry.register(
            ChipInput(chip.device_id, chip.imei, chip.iccid, chip.firmware), now, rotate=True
        )
        lat = binding.latitude if binding.latitude is not None else 31.2204
        lon = binding.longitude if binding.longitude is not None else 121.4245
        rows.append(
            [chip.device_id, secret, chip.imei, chip.iccid, machine.rated_current_a, lat, lon]
        )
    if settings is not None:
        ensure_demo_welders(session, settings, sorted(enterprise_ids), local_today(now))
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


def ensure_demo_welders(
    session: Session, settings: Settings, enterprise_ids: list[int], today: date
) -> dict[int, User]:
    """One welder account per enterprise (a welder with a valid certificate), made
    once; the demo password is the demo's. A welder without an account is taken
    first, so that the demo's own ``welder`` stays free for a person to try the
    scan page; failing that, a welder's existing account is the one used (a second
    would make their phone number name two accounts, and the scan page's phone
    sign-in refuse both). Enterprise id → account."""
    auth = AuthService(session, settings)
    users = UserRepository(session)
    accounts: dict[int, User] = {}
    for enterprise_id in enterprise_ids:
        # The first welder without an account (or with the demo's own "w" + phone);
        # else the first welder, with the account they have.
        chosen: tuple[Welder, User | None] | None = None
        for candidate in welders_with_valid_certificate(session, enterprise_id, today):
            linked = users.for_welder(candidate.id)
            if linked is None or linked.username == f"w{candidate.phone}":
                chosen = (candidate, linked)
                break
            chosen = chosen or (candidate, linked)
        if chosen is None or not chosen[0].phone:
            continue
        welder, user = chosen
        if user is None:
            user = auth.create_user(
                NewUser(
                    f"w{welder.phone}",
                    DEMO_PASSWORD,
                    Role.WELDER.value,
                    display_name=welder.name,
                    phone=welder.phone,
                    welder_id=welder.id,
                )
            )
        accounts[enterprise_id] = user
    return accounts
