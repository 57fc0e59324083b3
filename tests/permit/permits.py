"""Helpers of the hot-work permit tests: the people of enterprise B (a construction
site, where a permit is required) and a permit that goes through its steps.

The world's NOW is Sunday 2026-11-22 12:00 in Shanghai: a rest day, so a 二级
permit is managed at 一级 (approved by the safety department or the leader)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import NOW, PASSWORD, World
from weldguard.auth.models import User
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.device.registry import DeviceSecrets
from weldguard.permit.models import Permit
from weldguard.permit.service import PermitInput, PermitService, PersonInput, WelderEntry

# Near the world's chip fixes in 上海市长宁区 (tests/unlock/test_scan_service.HERE).
HOT_SPOT = (31.2200, 121.4200)
PHOTO = ["photos/" + "1" * 32 + ".jpg"]  # the shape of a stored photo's key


@dataclass
class People:
    applicant: User  # safety_b: safety officer of B, also the fire watch
    boss: User  # enterprise admin of B: the leader, approves
    welder: User  # welder B's account: the lead and the welder on the permit


def user(db: Session, username: str) -> User:
    return db.scalars(select(User).where(User.username == username)).one()


def people(db: Session, settings: Settings, world: World) -> People:
    auth = AuthService(db, settings)
    code = world.enterprises["B"].credit_code
    if db.scalar(select(User.id).where(User.username == "boss_b")) is None:
        auth.create_user(
            NewUser("boss_b", PASSWORD, "enterprise_admin", "李总", enterprise_credit_code=code)
        )
        auth.create_user(
            NewUser("welder_b", PASSWORD, "welder", "焊工B", welder_id=world.welders["B"].id)
        )
        db.commit()
    return People(user(db, "safety_b"), user(db, "boss_b"), user(db, "welder_b"))


def scope_of(db: Session, settings: Settings, who: User) -> Scope:
    return AuthService(db, settings).scope_for(who)


def permit_input(world: World, p: People, **changes: Any) -> PermitInput:
    data: dict[str, Any] = {
        "place_description": "3号楼钢结构焊接",
        "hot_spot_lat": HOT_SPOT[0],
        "hot_spot_lon": HOT_SPOT[1],
        "methods": ["electric_welding"],
        "base_level": "second",
        "level": "first",
        "starts_at": NOW,
        "ends_at": NOW + timedelta(hours=6),
        "welders": [WelderEntry(world.welders["B"].id)],
        "machine_ids": [world.machines["B"].id],
        "lead": PersonInput("焊工B", p.welder.id, world.welders["B"].id),
        "fire_watch": PersonInput("安全员", p.applicant.id),
        "fire_watch_trained": True,
        "hazards": ["高处焊接火花飞溅"],
    }
    data.update(changes)
    return PermitInput(**data)


class Steps:
    """Drives one permit through the service, committing each step like a request."""

    def __init__(self, db: Session, settings: Settings, p: People, permit_id: int) -> None:
        self.db, self.settings, self.p, self.id = db, settings, p, permit_id
        self.service = PermitService(
            db, device_secrets=DeviceSecrets(settings.resolved_secret_key())
        )

    def do(self, who: User, kind: str, at: datetime, **data: Any) -> Permit:
        self.service.apply(scope_of(self.db, self.settings, who), who, self.id, kind, data, at)
        self.db.commit()
        row = self.db.get(Permit, self.id)
        assert row is not None
        return row

    def to_approved(self, at: datetime = NOW) -> Permit:
        p = self.p
        self.do(p.applicant, "submit", at)
        self.do(p.boss, "site_survey", at, photos=PHOTO)
        self.do(p.welder, "confirm_risks", at)
        return self.do(p.boss, "approve", at)

    def to_started(self, at: datetime = NOW) -> Permit:
        p = self.p
        self.to_approved(at)
        for code in ("extinguishers", "welder_grounding", "risk_analysis"):
            self.do(p.applicant, "confirm_measure", at, code=code)
        self.do(p.applicant, "check_in", at, photos=PHOTO)
        self.do(p.applicant, "clear", at, photos=PHOTO)
        return self.do(p.welder, "start", at + timedelta(minutes=1), photos=PHOTO)


def create(db: Session, settings: Settings, world: World, p: People, **changes: Any) -> Steps:
    row = PermitService(db).create(
        scope_of(db, settings, p.applicant), p.applicant, permit_input(world, p, **changes), NOW
    )
    db.commit()
    return Steps(db, settings, p, row.id)
