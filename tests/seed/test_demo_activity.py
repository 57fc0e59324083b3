"""The demo's welders scan through the real scan path, and end their work."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import (
    ADMIN_SCOPE,
    NOW,
    PASSWORD,
    TODAY,
    World,
    id_number,
    welding_certificate,
)
from weldguard.auth.repository import UserRepository
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.device.models import DeviceState
from weldguard.device.registry import ChipInput, DeviceRegistry, DeviceSecrets
from weldguard.seed.demo import DEMO_PASSWORD
from weldguard.seed.demo_activity import DemoActivity
from weldguard.seed.demo_fleet import ensure_demo_welders
from weldguard.unlock.models import ScanRecord, SessionStatus, WorkSession
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Welder
from weldguard.welder.service import WelderInput, WelderService


def test_a_demo_welder_scans_a_free_machine_and_ends_the_work(
    world: World, db: Session, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    # The demo fleet's chips have secrets (seed demo issues them).
    DeviceRegistry(db, DeviceSecrets(settings.resolved_secret_key())).register(
        ChipInput("WGC000001", "860000000000001", "89860000000000000001"), NOW, rotate=True
    )
    db.add(
        DeviceState(
            device_id="WGC000001",
            online=True,
            last_seen_at=NOW,
            offline_deadline=NOW + timedelta(seconds=34),
            lock_state="locked",
            lat_e6=31_220_400,
            lon_e6=121_424_500,
        )
    )
    db.commit()
    activity = DemoActivity(settings, session_factory, ["WGC000001"], lambda: None, seed=1)
    activity._load_welders()
    assert set(activity.welders) == {world.enterprises["A"].id}
    started = activity._start_one(NOW)
    assert started is not None
    session_id, unlock = started
    work = db.get(WorkSession, session_id)
    assert work is not None and work.status == SessionStatus.STARTING.value
    (record,) = db.scalars(select(ScanRecord)).all()
    assert record.outcome == "allowed" and record.session_id == session_id
    # The machine is taken now: nothing more to start on it.
    assert activity._start_one(NOW) is None

    work.status = SessionStatus.ACTIVE.value
    db.commit()
    assert activity._end_due(NOW + timedelta(minutes=2)) == []
    (lock,) = activity._end_due(NOW + timedelta(minutes=9))
    db.expire_all()
    ended = db.get(WorkSession, session_id)
    assert ended is not None and ended.status == SessionStatus.ENDED.value
    assert ended.end_reason == "welder" and lock is not None
    assert unlock.command_id != lock.command_id


def test_demo_welder_accounts_are_made_once(world: World, db: Session, settings: Settings) -> None:
    ids = [world.enterprises["A"].id, world.enterprises["B"].id]
    first = ensure_demo_welders(db, settings, ids, NOW.date())
    second = ensure_demo_welders(db, settings, ids, NOW.date())
    assert set(first) == set(ids)
    assert {e: u.id for e, u in first.items()} == {e: u.id for e, u in second.items()}
    # One account per welder, so that the phone signs in: a welder without one
    # gets "w" + phone; only where every welder has an account (enterprise A's
    # welder_one) is that account used.
    auth = AuthService(db, settings)
    for account in first.values():
        assert account.username in ("welder_one", f"w{account.phone}")
        assert UserRepository(db).for_welder(account.welder_id) is account  # type: ignore[arg-type]
        welder = db.get(Welder, account.welder_id)
        assert welder is not None and welder.phone
        password = PASSWORD if account.username == "welder_one" else DEMO_PASSWORD
        assert auth.authenticate_phone(welder.phone, password, NOW) is account


def test_demo_activity_leaves_the_demo_welder_free(
    world: World, db: Session, settings: Settings, vault: IdentityVault
) -> None:
    """Where the enterprise has a welder without an account, the activity's account
    is that welder's, so a person trying the scan page as the demo's own welder
    (welder_one here) is never 正在使用其他焊机 because of the activity."""
    welders = WelderService(db, vault)
    number = id_number(99)
    second = welders.register(
        WelderInput(name="焊工A2", id_number=number, phone="13900000099"), TODAY
    )
    welders.upsert_certificate(second, welding_certificate(number), id_number=number)
    welders.employ(ADMIN_SCOPE, second, world.enterprises["A"].id, TODAY - timedelta(days=30))
    db.commit()
    enterprise = world.enterprises["A"].id
    account = ensure_demo_welders(db, settings, [enterprise], NOW.date())[enterprise]
    assert (account.username, account.welder_id) == ("w13900000099", second.id)
    again = ensure_demo_welders(db, settings, [enterprise], NOW.date())[enterprise]
    assert again.id == account.id
