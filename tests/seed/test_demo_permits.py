"""The demo's hot-work side: permits in the intended states made through the
services, the accounts they need, mobile jobs and filings, idempotent, and the
demo welder's scans at the permit enterprise's fleet machines allowed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from weldguard.auth.models import Role, User
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.device.models import DeviceState
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.geo import GeoPoint
from weldguard.domain.permits import PermitStatus, covers
from weldguard.filing.models import SmallWorkFiling
from weldguard.machine.models import Chip, ChipBinding
from weldguard.permit import models as pm
from weldguard.permit.mobile_models import MobileJob
from weldguard.permit.service import PermitService
from weldguard.photos import photo_file
from weldguard.seed.demo import DEMO_PASSWORD, seed_demo
from weldguard.seed.demo_activity import DemoActivity
from weldguard.seed.demo_fleet import prepare_demo_fleet
from weldguard.seed.demo_permits import chem_enterprise, fleet_machines, keep_fire_watch
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import ScanRecord, SessionStatus, WorkSession
from weldguard.unlock.service import ScanService
from weldguard.welder.identity import IdentityVault

# Sunday noon in Shanghai: a rest day, so the 二级 permits are managed at 一级.
TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
S = PermitStatus


def _count(db: Session, model: type[Any]) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_demo_permits(
    db: Session,
    settings: Settings,
    vault: IdentityVault,
    session_factory: sessionmaker[Session],
) -> None:
    summary = seed_demo(db, settings, vault, TODAY, NOW)
    db.commit()
    assert any(line.startswith("作业票 ") for line in summary.lines())

    chem = chem_enterprise(db)
    assert chem is not None and chem.sector == "危化" and chem.address.startswith("上海市长宁区")
    fleet = [(m, lat, lon) for m, lat, lon in fleet_machines(db) if m.enterprise_id == chem.id]
    hot_spots = {(round(lat or 0, 6), round(lon or 0, 6)) for _, lat, lon in fleet}

    # --- the permits, in their states -------------------------------------
    permits = list(db.scalars(select(pm.Permit)))
    states = Counter(p.status for p in permits)
    assert states == {
        S.IN_PROGRESS: len(hot_spots),
        S.SUBMITTED: 1,
        S.APPROVED: 1,
        S.DRAFT: 1,
        S.SUSPENDED: 1,
        S.CLOSED: 2,
    }
    assert {p.level for p in permits if p.starts_at.date() == TODAY} == {"first"}  # Sunday
    events = Counter((e.permit_id, e.kind) for e in db.scalars(select(pm.PermitEventRow)))
    for closed in (p for p in permits if p.status == S.CLOSED):
        assert closed.ends_at < NOW
        for kind in ("approve", "clear", "start", "check_in", "end", "dispose", "close"):
            assert events[(closed.id, kind)] >= 1, kind
    suspended = next(p for p in permits if p.status == S.SUSPENDED)
    assert events[(suspended.id, "suspend")] == 1
    photos = {k for e in db.scalars(select(pm.PermitEventRow)) for k in e.photos}
    assert photos and all(photo_file(settings.data_dir, k) is not None for k in photos)

    # --- accounts -----------------------------------------------------------
    usernames = {u for u, _, _ in summary.accounts}
    assert {"chem_admin", "chem_safety", "chem_unit", "site_admin", "site_unit"} <= usernames
    auth = AuthService(db, settings)
    unit = auth.authenticate("chem_unit", DEMO_PASSWORD, NOW)
    assert unit.role == Role.UNIT_HEAD.value and unit.enterprise_id == chem.id

    # --- mobile jobs and small-works filings ---------------------------------
    jobs = list(db.scalars(select(MobileJob)))
    assert len(jobs) == 3
    assert sum(j.starts_at <= NOW < j.ends_at for j in jobs) == 1
    assert all(j.area_path.startswith("310000/310100/310105/") for j in jobs)
    filings = list(db.scalars(select(SmallWorkFiling)))
    assert len(filings) == 3 and Counter(f.status for f in filings)["checked"] == 1

    # --- seeding again creates nothing --------------------------------------
    models = (pm.Permit, pm.PermitEventRow, MobileJob, SmallWorkFiling, User)
    before = {m: _count(db, m) for m in models}
    seed_demo(db, settings, vault, TODAY, NOW)
    db.commit()
    assert {m: _count(db, m) for m in models} == before

    # --- the in-progress permits cover the demo's scans there ---------------
    prepare_demo_fleet(
        db, DeviceSecrets(settings.resolved_secret_key()), settings.data_dir, NOW, settings=settings
    )
    db.commit()
    devices = {}
    for machine, lat, lon in fleet:
        assert lat is not None and lon is not None
        device_id = db.scalar(
            select(Chip.device_id)
            .join(ChipBinding, ChipBinding.chip_id == Chip.id)
            .where(ChipBinding.machine_id == machine.id, ChipBinding.removed_at.is_(None))
        )
        assert device_id is not None
        devices[device_id] = machine
        # The chip reports its fix a couple of metres from where it was fitted.
        db.add(
            DeviceState(
                device_id=device_id,
                online=True,
                last_seen_at=NOW,
                offline_deadline=NOW + timedelta(seconds=34),
                lock_state="locked",
                lat_e6=round(lat * 1e6) + 15,
                lon_e6=round(lon * 1e6) - 20,
            )
        )
    db.commit()
    activity = DemoActivity(settings, session_factory, list(devices), lambda: None, seed=1)
    activity._load_welders()
    assert set(activity.welders) == {chem.id}
    welder = db.get(User, activity.welders[chem.id])
    assert welder is not None and welder.welder_id is not None

    # Every fleet machine there is named, with the demo welder, on a running permit
    # whose hot spot holds the machine's fix.
    service = PermitService(db)
    scope = auth.scope_for(welder)
    running = [service.load(scope, p.id, NOW).permit for p in permits if p.status == S.IN_PROGRESS]
    for machine, lat, lon in fleet:
        assert lat is not None and lon is not None
        position = GeoPoint((round(lat * 1e6) + 15) / 1e6, (round(lon * 1e6) - 20) / 1e6)
        assert any(not covers(p, welder.welder_id, machine.id, position, NOW) for p in running), (
            machine.code
        )

    # One round of the demo activity: the scan is allowed under the permit.
    assert activity._start_one(NOW) is not None
    (record,) = db.scalars(select(ScanRecord)).all()
    assert record.outcome == "allowed", record
    # And so is the demo welder's scan of every other fleet machine there (each
    # session failed at once, as when the chip never answers, to free the welder).
    for machine in devices.values():
        db.execute(update(WorkSession).values(status=SessionStatus.FAILED.value))
        db.commit()
        if machine.id == record.machine_id:
            continue
        result = ScanService(db, settings).scan(
            welder, machine.code, signer_for(settings).sign(machine.code), None, None, NOW
        )
        db.commit()
        assert result.session is not None, (machine.code, result)
    outcomes = Counter(r.outcome for r in db.scalars(select(ScanRecord)))
    assert outcomes == {"allowed": len(devices)}
    # Without a running permit (after its window) the same scan is refused.
    db.execute(update(WorkSession).values(status=SessionStatus.FAILED.value))
    db.commit()
    code = next(iter(devices.values())).code
    sig = signer_for(settings).sign(code)
    later = ScanService(db, settings).scan(welder, code, sig, None, None, NOW + timedelta(hours=9))
    db.commit()
    assert later.session is None

    # The fire watch keeps checking in while the demo runs.
    assert keep_fire_watch(db, settings, NOW + timedelta(minutes=27)) == len(running)
    db.commit()
    assert keep_fire_watch(db, settings, NOW + timedelta(minutes=28)) == 0
