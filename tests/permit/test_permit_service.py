"""PermitService: hot-work permits stored and run through their steps (both backends)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, PASSWORD, World
from tests.permit.permits import PHOTO, create, people, permit_input, scope_of, user
from weldguard.auth.models import User
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.errors import InvalidInput, NotFound, PermissionDenied
from weldguard.permit.models import Permit, PermitEventRow
from weldguard.permit.service import PermitRefused, PermitService, WelderEntry
from weldguard.welder.models import Certificate


def codes(excinfo: pytest.ExceptionInfo[PermitRefused]) -> list[str]:
    return excinfo.value.codes


def test_happy_path_draft_to_closed_keeps_every_step(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    row = db.get(Permit, steps.id)
    assert row is not None and row.status == "draft"
    assert (
        row.number.startswith("DH-20261122-") and row.area_path == world.enterprises["B"].area_path
    )
    steps.to_started()
    t = NOW + timedelta(minutes=1)
    assert steps.do(p.welder, "pause", t + timedelta(minutes=10)).status == "paused"
    assert steps.do(p.welder, "resume", t + timedelta(minutes=20)).status == "in_progress"
    steps.do(p.applicant, "check_in", t + timedelta(minutes=25), photos=PHOTO)
    ended = t + timedelta(minutes=40)
    assert steps.do(p.welder, "end", ended).status == "watching"
    steps.do(p.applicant, "check_in", ended + timedelta(minutes=15), photos=PHOTO)
    steps.do(p.applicant, "check_in", ended + timedelta(minutes=31), photos=PHOTO)
    done = steps.do(
        p.applicant, "dispose", ended + timedelta(minutes=32), no_embers=True, photos=PHOTO
    )
    assert done.status == "disposed"
    closed = steps.do(p.welder, "close", ended + timedelta(minutes=33))
    assert closed.status == "closed"

    events = db.scalars(
        select(PermitEventRow)
        .where(PermitEventRow.permit_id == steps.id)
        .order_by(PermitEventRow.id)
    ).all()
    kinds = [e.kind for e in events]
    assert kinds[:6] == [
        "create",
        "submit",
        "site_survey",
        "confirm_risks",
        "approve",
        "confirm_measure",
    ]
    assert kinds[-2:] == ["dispose", "close"]
    approve = events[4]
    assert (approve.person_name, approve.person_role, approve.actor_user_id) == (
        "李总",
        "enterprise_leader",
        p.boss.id,
    )
    assert (approve.status_before, approve.status_after) == ("submitted", "approved")
    assert events[2].photos == PHOTO
    assert closed.last_event_id == events[-1].id and closed.version == len(events)
    # The domain permit is rebuilt from the log as it was recorded.
    loaded = PermitService(db).load(scope_of(db, settings, p.boss), steps.id, NOW)
    assert loaded.permit.status.value == "closed"
    assert loaded.permit.approval is not None and loaded.permit.approval.by.user_id == p.boss.id
    assert len(loaded.permit.pauses) == 1 and loaded.permit.pauses[0].until is not None


def test_a_step_out_of_order_is_refused_and_nothing_is_written(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    with pytest.raises(PermitRefused) as refused:
        steps.do(p.boss, "approve", NOW)
    assert codes(refused) == ["STEP_OUT_OF_ORDER"]
    assert refused.value.status_code == 409 and "待审批" in refused.value.details[0].reason
    db.rollback()
    assert db.scalar(select(func.count()).select_from(PermitEventRow)) == 1
    assert db.get(Permit, steps.id).status == "draft"  # type: ignore[union-attr]


def test_approval_refused_with_every_reason(db: Session, settings: Settings, world: World) -> None:
    """特级 needs the leader: the safety officer may not approve it; and the
    survey and the risk confirmation are missing."""
    p = people(db, settings, world)
    steps = create(
        db,
        settings,
        world,
        p,
        base_level="special",
        level="special",
        ends_at=NOW + timedelta(hours=4),
    )
    steps.do(p.applicant, "submit", NOW)
    with pytest.raises(PermitRefused) as refused:
        steps.do(p.applicant, "approve", NOW)
    assert codes(refused) == [
        "SITE_SURVEY_MISSING",
        "RISK_CONFIRMATION_MISSING",
        "APPROVER_NOT_AUTHORISED",
    ]
    db.rollback()


def test_a_role_without_authority_cannot_approve(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.do(p.applicant, "submit", NOW)
    # A welder may not sign the approval at all.
    with pytest.raises(PermissionDenied):
        steps.do(p.welder, "approve", NOW)
    db.rollback()
    # A regulator reads, never writes.
    reg = user(db, "reg_changning")
    with pytest.raises(PermissionDenied):
        PermitService(db).apply(scope_of(db, settings, reg), reg, steps.id, "approve", {}, NOW)


def unit_head(db: Session, settings: Settings, world: World) -> User:
    AuthService(db, settings).create_user(
        NewUser(
            "unit_b",
            PASSWORD,
            "unit_head",
            "王工段长",
            enterprise_credit_code=world.enterprises["B"].credit_code,
        )
    )
    db.commit()
    return user(db, "unit_b")


def test_the_unit_head_approves_a_second_level_permit_on_a_working_day(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    head = unit_head(db, settings, world)
    monday = NOW + timedelta(hours=22)  # Monday 2026-11-23 10:00, a working day
    steps = create(
        db, settings, world, p, level=None, starts_at=monday, ends_at=monday + timedelta(hours=6)
    )
    row = db.get(Permit, steps.id)
    assert row is not None and row.level == "second"
    steps.do(p.applicant, "submit", monday)
    steps.do(head, "site_survey", monday, photos=PHOTO)
    steps.do(p.welder, "confirm_risks", monday)
    approved = steps.do(head, "approve", monday)
    assert approved.status == "approved"
    event = db.scalars(
        select(PermitEventRow)
        .where(PermitEventRow.permit_id == steps.id)
        .order_by(PermitEventRow.id.desc())
    ).first()
    assert event is not None and event.person_role == "unit"


def test_the_unit_head_cannot_approve_a_permit_raised_on_a_rest_day(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    head = unit_head(db, settings, world)
    # Sunday: the 二级 window is managed at 一级, the safety department's or higher.
    steps = create(db, settings, world, p, level=None)
    row = db.get(Permit, steps.id)
    assert row is not None and row.level == "first"
    steps.do(p.applicant, "submit", NOW)
    steps.do(head, "site_survey", NOW, photos=PHOTO)
    steps.do(p.welder, "confirm_risks", NOW)
    with pytest.raises(PermitRefused) as refused:
        steps.do(head, "approve", NOW)
    assert "APPROVER_NOT_AUTHORISED" in codes(refused)


def test_gas_too_old_or_over_the_limit_stops_the_start(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p, gas_analysis_required=True)
    steps.to_approved()
    for code in ("extinguishers", "welder_grounding", "risk_analysis"):
        steps.do(p.applicant, "confirm_measure", NOW, code=code)
    sample = {"gas": "甲烷", "lel_percent": 5.0, "analyst": "分析员"}
    steps.do(
        p.applicant,
        "gas_sample",
        NOW,
        taken_at=(NOW - timedelta(minutes=40)).isoformat(),
        reading_percent=0.1,
        **sample,
    )
    steps.do(p.applicant, "check_in", NOW, photos=PHOTO)
    steps.do(p.applicant, "clear", NOW, photos=PHOTO)
    with pytest.raises(PermitRefused) as stale:
        steps.do(p.welder, "start", NOW + timedelta(minutes=1), photos=PHOTO)
    assert codes(stale) == ["GAS_SAMPLE_STALE"]
    db.rollback()
    steps.do(
        p.applicant, "gas_sample", NOW, taken_at=NOW.isoformat(), reading_percent=0.9, **sample
    )
    with pytest.raises(PermitRefused) as over:
        steps.do(p.welder, "start", NOW + timedelta(minutes=1), photos=PHOTO)
    assert "GAS_OVER_LIMIT" in codes(over)
    db.rollback()
    # A sample in the future is bad input the rules refuse at once.
    with pytest.raises(PermitRefused) as future:
        steps.do(
            p.applicant,
            "gas_sample",
            NOW,
            taken_at=(NOW + timedelta(minutes=5)).isoformat(),
            reading_percent=0.1,
            **sample,
        )
    assert codes(future) == ["GAS_SAMPLE_IN_FUTURE"]
    db.rollback()
    steps.do(
        p.applicant, "gas_sample", NOW, taken_at=NOW.isoformat(), reading_percent=0.1, **sample
    )
    assert (
        steps.do(p.welder, "start", NOW + timedelta(minutes=1), photos=PHOTO).status
        == "in_progress"
    )


def test_a_gas_sample_names_its_bad_fields(db: Session, settings: Settings, world: World) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.do(p.applicant, "submit", NOW)
    with pytest.raises(InvalidInput) as bad:
        steps.do(p.applicant, "gas_sample", NOW, taken_at="yesterday", lel_percent="x")
    fields = {d.field for d in bad.value.details}
    assert fields >= {"taken_at", "gas", "lel_percent", "reading_percent"}
    db.rollback()


def test_a_machine_on_another_live_permit_is_double_booked(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    first = create(db, settings, world, p)
    first.do(p.applicant, "submit", NOW)
    second = create(db, settings, world, p, starts_at=NOW + timedelta(hours=2))
    with pytest.raises(PermitRefused) as refused:
        second.do(p.applicant, "submit", NOW)
    assert codes(refused) == ["MACHINE_DOUBLE_BOOKED"]
    assert db.get(Permit, first.id).number in refused.value.details[0].reason  # type: ignore[union-attr]
    db.rollback()
    # Once the first is cancelled the machine is free.
    first.do(p.applicant, "cancel", NOW)
    assert second.do(p.applicant, "submit", NOW).status == "submitted"


def test_a_welder_without_a_fitting_certificate_is_refused_at_the_draft(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    cert = db.scalars(
        select(Certificate).where(Certificate.welder_id == world.welders["B"].id)
    ).one()
    cert.item = "钎焊作业"
    db.commit()
    with pytest.raises(PermitRefused) as refused:
        create(db, settings, world, p)
    assert codes(refused) == ["CERT_NOT_FIT"]
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Permit)) == 0


def test_bad_input_names_every_field_and_writes_nothing(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    data = permit_input(
        world,
        p,
        hot_spot_lat=None,
        methods=["laser"],
        base_level="x",
        starts_at=None,
        machine_ids=[world.machines["A"].id],
        welders=[],
    )
    service = PermitService(db)
    with pytest.raises(InvalidInput) as bad:
        service.create(scope_of(db, settings, p.applicant), p.applicant, data, NOW)
    fields = {d.field for d in bad.value.details}
    assert fields >= {"hot_spot", "methods", "base_level", "starts_at", "machine_ids"}
    db.rollback()
    # Welder A is not employed by B.
    data_a = permit_input(world, p, welders=[WelderEntry(world.welders["A"].id)])
    with pytest.raises(InvalidInput) as foreign:
        service.create(scope_of(db, settings, p.applicant), p.applicant, data_a, NOW)
    assert [d.field for d in foreign.value.details] == ["welders"]
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Permit)) == 0


def test_edit_a_draft_and_refused_after_approval(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    service = PermitService(db)
    scope = scope_of(db, settings, p.applicant)
    steps.do(p.applicant, "submit", NOW)
    row = service.edit(
        scope, p.applicant, steps.id, permit_input(world, p, place_description="改：2号楼"), NOW
    )
    db.commit()
    assert (row.place_description, row.status) == ("改：2号楼", "draft")
    steps.to_approved()
    with pytest.raises(PermitRefused) as refused:
        service.edit(scope, p.applicant, steps.id, permit_input(world, p), NOW)
    assert codes(refused) == ["EDIT_AFTER_APPROVAL"]
    db.rollback()
    assert db.get(Permit, steps.id).place_description == "改：2号楼"  # type: ignore[union-attr]


def test_scope_another_enterprise_or_area_is_not_found(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    service = PermitService(db)
    for name in ("ent_a", "reg_huayang", "reg_zhengzhou", "welder_one"):
        who = user(db, name)
        with pytest.raises(NotFound):
            service.get(scope_of(db, settings, who), steps.id)
    for name in ("reg_changning", "reg_changning_zj", "insp_xinjing", "admin", "safety_b"):
        who = user(db, name)
        assert service.get(scope_of(db, settings, who), steps.id).id == steps.id
    # The welder named on it sees it; a welder of another permit does not.
    assert service.get(scope_of(db, settings, p.welder), steps.id).id == steps.id
    # Writes outside the scope are 404 too (enterprise A's admin).
    a = user(db, "ent_a")
    with pytest.raises(NotFound):
        service.apply(scope_of(db, settings, a), a, steps.id, "submit", {}, NOW)
