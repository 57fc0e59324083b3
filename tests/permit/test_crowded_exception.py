"""The crowded-place exception path (营业时间动火) stored with the permit: requested
on the form, its two signed records before the approval, the approval at the
higher level, then work in opening hours (both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.factories import NOW, PASSWORD, World
from tests.permit.permits import HOT_SPOT, PHOTO, People, Steps, scope_of, user
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.errors import InvalidInput
from weldguard.permit.models import Permit, PermitMachine
from weldguard.permit.service import (
    PermitInput,
    PermitRefused,
    PermitService,
    PersonInput,
    WelderEntry,
)


@pytest.fixture
def hospital(db: Session, settings: Settings, world: World) -> Steps:
    """Enterprise C as a hospital open around the clock, its people, and a draft
    over the world's NOW (in opening hours) requesting the exception."""
    c = world.enterprises["C"]
    c.crowded_subtype = "医院"
    c.opening_hours = [{"days": [1, 2, 3, 4, 5, 6, 7], "open": "00:00", "close": "24:00"}]
    auth = AuthService(db, settings)
    auth.create_user(
        NewUser(
            "safety_c", PASSWORD, "safety_officer", "院安全员", enterprise_credit_code=c.credit_code
        )
    )
    auth.create_user(
        NewUser(
            "boss_c", PASSWORD, "enterprise_admin", "院长", enterprise_credit_code=c.credit_code
        )
    )
    auth.create_user(
        NewUser("welder_c", PASSWORD, "welder", "焊工C", welder_id=world.welders["C"].id)
    )
    db.commit()
    safety, boss, welder = user(db, "safety_c"), user(db, "boss_c"), user(db, "welder_c")
    row = PermitService(db).create(
        scope_of(db, settings, safety),
        safety,
        PermitInput(
            place_description="门诊楼管道井",
            hot_spot_lat=HOT_SPOT[0],
            hot_spot_lon=HOT_SPOT[1],
            methods=["electric_welding"],
            base_level="second",
            starts_at=NOW,
            ends_at=NOW + timedelta(hours=4),
            welders=[WelderEntry(world.welders["C"].id)],
            machine_ids=[world.machines["C"].id],
            lead=PersonInput("焊工C", welder.id, world.welders["C"].id),
            fire_watch=PersonInput("院安全员", safety.id),
            fire_watch_trained=True,
            hazards=["管道井内电缆"],
            crowded_exception=True,
        ),
        NOW,
    )
    db.commit()
    return Steps(db, settings, People(safety, boss, welder), row.id)


def test_the_exception_is_signed_then_approved_at_the_higher_level(
    db: Session, hospital: Steps
) -> None:
    p = hospital.p
    row = db.get(Permit, hospital.id)
    assert row is not None
    assert row.crowded_exception == {"risk_assessment": None, "fire_separation": None}
    # Opening hours without the two records: the submission is refused.
    with pytest.raises(PermitRefused) as refused:
        hospital.do(p.applicant, "submit", NOW)
    assert "CROWDED_EXCEPTION_INCOMPLETE" in refused.value.codes
    db.rollback()
    # A record needs its photo.
    with pytest.raises(InvalidInput) as bad:
        hospital.do(p.applicant, "crowded_risk_assessment", NOW, note="已评估")
    assert [d.field for d in bad.value.details] == ["photos"]
    db.rollback()
    hospital.do(p.applicant, "crowded_risk_assessment", NOW, photos=PHOTO, note="已评估")
    row = hospital.do(p.applicant, "crowded_fire_separation", NOW, photos=PHOTO)
    assert row.crowded_exception is not None
    assert row.crowded_exception["risk_assessment"]["by"]["name"] == "院安全员"
    assert row.crowded_exception["fire_separation"]["photos"] == PHOTO
    hospital.do(p.applicant, "submit", NOW)
    hospital.do(p.boss, "site_survey", NOW, photos=PHOTO)
    hospital.do(p.welder, "confirm_risks", NOW)
    # Sunday raises 二级 to 一级; the exception raises the approver once more: the
    # safety department may not sign it, the leader may.
    with pytest.raises(PermitRefused) as refused:
        hospital.do(p.applicant, "approve", NOW)
    assert "APPROVER_NOT_AUTHORISED" in refused.value.codes
    db.rollback()
    assert hospital.do(p.boss, "approve", NOW).status == "approved"
    # After the approval the exception's records are closed.
    with pytest.raises(PermitRefused):
        hospital.do(p.applicant, "crowded_fire_separation", NOW, photos=PHOTO)


def test_a_record_on_a_permit_without_the_exception_is_refused(
    db: Session, settings: Settings, hospital: Steps
) -> None:
    p = hospital.p
    service = PermitService(db)
    loaded = service.load(scope_of(db, settings, p.applicant), hospital.id, NOW)
    loaded.row.crowded_exception = None
    db.commit()
    with pytest.raises(PermitRefused) as refused:
        hospital.do(p.applicant, "crowded_risk_assessment", NOW, photos=PHOTO)
    assert "CROWDED_EXCEPTION_INCOMPLETE" in refused.value.codes


def test_an_edit_asks_for_the_records_again(
    db: Session, settings: Settings, world: World, hospital: Steps
) -> None:
    p = hospital.p
    hospital.do(p.applicant, "crowded_risk_assessment", NOW, photos=PHOTO)
    service = PermitService(db)
    row = service.get(scope_of(db, settings, p.applicant), hospital.id)
    data = PermitInput(
        place_description="门诊楼管道井（改）",
        hot_spot_lat=HOT_SPOT[0],
        hot_spot_lon=HOT_SPOT[1],
        methods=["electric_welding"],
        base_level="second",
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=4),
        welders=[WelderEntry(world.welders["C"].id)],
        machine_ids=[world.machines["C"].id],
        lead=PersonInput("焊工C", p.welder.id, world.welders["C"].id),
        fire_watch=PersonInput("院安全员", p.applicant.id),
        fire_watch_trained=True,
        hazards=["管道井内电缆"],
        crowded_exception=True,
    )
    service.edit(scope_of(db, settings, p.applicant), p.applicant, row.id, data, NOW)
    db.commit()
    db.refresh(row)
    assert row.crowded_exception == {"risk_assessment": None, "fire_separation": None}


def test_the_scan_in_opening_hours_is_allowed_only_under_the_taken_exception(
    db: Session, settings: Settings, world: World, hospital: Steps
) -> None:
    from tests.permit.test_permit_scan import SCAN_AT, _scan
    from tests.unlock.test_scan_service import live_machine

    p = hospital.p
    machine, _, _ = live_machine(db, settings, world, enterprise="C", now=SCAN_AT)
    db.execute(
        update(PermitMachine)
        .where(PermitMachine.permit_id == hospital.id)
        .values(machine_id=machine.id)
    )
    db.commit()
    refused = _scan(db, settings, p.welder, machine.code)
    assert not refused.allowed
    hospital.do(p.applicant, "crowded_risk_assessment", NOW, photos=PHOTO)
    hospital.do(p.applicant, "crowded_fire_separation", NOW, photos=PHOTO)
    hospital.to_approved()
    for code in ("extinguishers", "welder_grounding", "risk_analysis"):
        hospital.do(p.applicant, "confirm_measure", NOW, code=code)
    for location in ("entrance", "site"):
        hospital.do(p.applicant, "confirm_notice", NOW, location=location, photos=PHOTO)
    hospital.do(p.applicant, "check_in", NOW, photos=PHOTO)
    hospital.do(p.applicant, "clear", NOW, photos=PHOTO)
    hospital.do(p.welder, "start", NOW + timedelta(minutes=1), photos=PHOTO)
    allowed = _scan(db, settings, p.welder, machine.code)
    assert allowed.allowed, allowed.record.reasons
