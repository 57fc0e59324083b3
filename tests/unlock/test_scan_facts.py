"""Gathering a scan's facts from the database (both backends), and the policy
from the Settings."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.unlock.test_scan_service import NEAR, live_machine, user
from weldguard.config import Settings
from weldguard.device.models import DeviceState
from weldguard.device.views_repository import STATE_FLUSH_SLACK, is_online
from weldguard.domain.authorization import SpecialPeriodKind
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.enterprise.models import Site
from weldguard.unlock.facts import (
    authorization_policy,
    candidate_permits,
    declared_mobile_jobs,
    gather_scan_facts,
    session_limit,
)
from weldguard.unlock.models import SpecialPeriod, WorkSession
from weldguard.unlock.repository import area_prefixes
from weldguard.welder.models import Certificate


def test_policy_comes_from_the_settings(settings: Settings) -> None:
    policy = authorization_policy(
        settings.model_copy(
            update={
                "scan_max_distance_m": 300.0,
                "scan_require_position": True,
                "scan_refuse_busy_elsewhere": False,
            }
        )
    )
    assert (policy.max_distance_m, policy.require_position) == (300.0, True)
    assert policy.refuse_when_busy_elsewhere is False
    default = authorization_policy(settings)
    assert (default.max_distance_m, default.require_position) == (500.0, False)
    assert default.refuse_when_busy_elsewhere is True


def test_session_limit_is_the_decisions_capped_by_the_default(settings: Settings) -> None:
    assert session_limit(None, NOW, settings) == NOW + timedelta(hours=8)
    soon = NOW + timedelta(hours=2)
    assert session_limit(soon, NOW, settings) == soon
    assert session_limit(NOW + timedelta(days=3), NOW, settings) == NOW + timedelta(hours=8)


def test_area_prefixes() -> None:
    assert area_prefixes("310000/310100/310105/") == [
        "310000/",
        "310000/310100/",
        "310000/310100/310105/",
    ]
    assert area_prefixes("") == []


def test_facts_of_a_welder_and_a_live_machine(
    db: Session, settings: Settings, world: World
) -> None:
    machine, device_id, _ = live_machine(db, settings, world)
    welder = user(db, "welder_one")
    cert = db.scalars(
        select(Certificate).where(Certificate.welder_id == world.welders["A"].id)
    ).one()
    facts = gather_scan_facts(db, welder, machine, NEAR, NOW)
    request = facts.request

    assert request.welder.id == world.welders["A"].id and request.welder.active
    [held] = request.certificates
    assert held.kind is CertificateKind.SPECIAL_OPERATION and held.id == cert.id
    assert held.status is CertificateStatus.VALID and held.number_masked == cert.number_masked
    [employment] = request.employments
    assert employment.enterprise_id == world.enterprises["A"].id
    assert request.machine.chip_bound and request.machine.chip_online
    assert request.machine.locked is True and request.machine.session_welder_id is None
    assert request.machine.position is not None
    assert request.machine.position.latitude == 31.22
    enterprise = world.enterprises["A"]
    assert (request.place.enterprise_id, request.place.sector) == (enterprise.id, "工贸")
    assert request.place.area_path == enterprise.area_path
    assert request.place.opening_hours is None and request.place.production_status == "在产"
    assert request.mobile_jobs == () and request.permits == ()
    assert request.phone_position == NEAR and request.now == NOW
    assert facts.place.chip is not None and facts.place.chip.device_id == device_id

    # Today's status: an expired certificate is expired in the facts.
    cert.expiry_date = date(2026, 11, 1)
    db.commit()
    again = gather_scan_facts(db, welder, machine, None, NOW)
    assert again.request.certificates[0].status is CertificateStatus.EXPIRED


def test_chip_state_and_site_position(db: Session, settings: Settings, world: World) -> None:
    machine, device_id, _ = live_machine(db, settings, world, position=None, lock="unlocked")
    site = Site(
        enterprise_id=machine.enterprise_id, name="一号车间", latitude=31.21, longitude=121.41
    )
    db.add(site)
    db.flush()
    machine.site_id = site.id
    state = db.get(DeviceState, device_id)
    assert state is not None
    # Flagged online, but past its deadline: a stopped ingest must not keep it alive.
    state.offline_deadline = NOW - STATE_FLUSH_SLACK - timedelta(seconds=1)
    db.commit()
    facts = gather_scan_facts(db, user(db, "welder_one"), machine, None, NOW)
    assert facts.request.machine.chip_online is False
    assert facts.request.machine.locked is False
    assert facts.request.machine.chip_position is None
    assert facts.request.machine.position is not None
    assert facts.request.machine.position.latitude == 31.21
    assert facts.place.site is not None and facts.place.site.name == "一号车间"


def test_machine_without_chip(db: Session, world: World) -> None:
    facts = gather_scan_facts(db, user(db, "welder_one"), world.machines["C"], None, NOW)
    assert facts.request.machine.chip_bound is False
    assert facts.request.machine.chip_online is False
    assert facts.request.place.sector == "人员密集场所"
    assert facts.request.place.crowded_subtype == "商场（市场）"


def test_special_periods_of_the_area_and_above(
    db: Session, settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    enterprise = world.enterprises["A"]
    prefixes = area_prefixes(enterprise.area_path)
    other = world.enterprises["Z"]

    def period(title: str, path: str, start: int, end: int, **extra: object) -> None:
        db.add(
            SpecialPeriod(
                title=title,
                jurisdiction_id=enterprise.jurisdiction_id,
                area_path=path,
                starts_at=NOW + timedelta(hours=start),
                ends_at=NOW + timedelta(hours=end),
                declared_at=NOW - timedelta(days=1),
                **{"kind": "ban_hot_work", "sectors": None, **extra},
            )
        )

    period("全市", prefixes[0], -1, 5)
    period("本街道，建筑工地", enterprise.area_path, -1, 5, sectors=["施工工地"])
    period("明天", prefixes[-2], 20, 30, kind="require_permit")
    period("已结束", enterprise.area_path, -5, -1)
    period("郑州", other.area_path, -1, 5)
    period("未知种类", enterprise.area_path, -1, 5, kind="whatever")
    db.commit()

    facts = gather_scan_facts(db, user(db, "welder_one"), machine, None, NOW)
    titles = {p.title: p for p in facts.request.special_periods}
    assert set(titles) == {"全市", "本街道，建筑工地", "明天"}
    assert titles["本街道，建筑工地"].sectors == frozenset({"施工工地"})
    assert titles["明天"].kind is SpecialPeriodKind.REQUIRE_PERMIT


def test_open_sessions_here_and_elsewhere(db: Session, settings: Settings, world: World) -> None:
    here, _, _ = live_machine(db, settings, world)
    there, there_device, _ = live_machine(db, settings, world)
    welder_id = world.welders["A"].id
    db.add(
        WorkSession(
            id="s-there",
            machine_id=there.id,
            device_id=there_device,
            welder_id=welder_id,
            enterprise_id=there.enterprise_id,
            area_path=world.enterprises["A"].area_path,
            status="active",
            started_at=NOW - timedelta(hours=1),
            valid_until=NOW + timedelta(hours=1),
        )
    )
    db.commit()
    facts = gather_scan_facts(db, user(db, "welder_one"), here, None, NOW)
    assert facts.request.other_session_machine_ids == frozenset({there.id})
    assert facts.open_session_here is None
    assert [s.id for s in facts.welder_sessions] == ["s-there"]
    on_there = gather_scan_facts(db, user(db, "welder_one"), there, None, NOW)
    assert on_there.request.machine.session_welder_id == welder_id
    assert on_there.request.other_session_machine_ids == frozenset()


def test_permits_and_mobile_jobs_are_empty_until_the_permit_issue(
    db: Session, world: World
) -> None:
    machine = world.machines["A"]
    assert declared_mobile_jobs(db, 1, machine, NOW) == ()
    assert candidate_permits(db, 1, machine, NOW) == ()


def test_a_deadline_just_passed_waits_for_the_ingest_flush() -> None:
    """The ingest worker flushes live state about once a second (later under load):
    a chip whose heartbeat arrived in time but is not flushed yet is still online;
    past the slack, a stale flag no longer counts."""
    state = DeviceState(device_id="WGX1", online=True, offline_deadline=NOW)
    assert is_online(state, NOW - timedelta(seconds=1))
    assert is_online(state, NOW + STATE_FLUSH_SLACK - timedelta(seconds=1))
    assert not is_online(state, NOW + STATE_FLUSH_SLACK + timedelta(seconds=1))
    state.online = False
    assert not is_online(state, NOW - timedelta(seconds=1))
    assert not is_online(None, NOW)
