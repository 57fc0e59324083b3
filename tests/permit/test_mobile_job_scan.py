"""Mobile jobs bound to unlocking: ScanService against the database (both backends).

A mobile welder (not the machine owner's) needs a declared job naming them and the
machine, covering now. A contractor's machine on a job at a registered client works
under the client's place rules; at an unregistered client, under the special
periods of the job's street. A stay-at-home owner's welder spends no query on jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tests.factories import (
    ADMIN_SCOPE,
    NOW,
    PASSWORD,
    TEST_SECRET_FOR_DEVICES,
    TODAY,
    World,
    id_number,
)
from tests.unlock.test_scan_round_trips import allowed_writes, statements
from tests.unlock.test_scan_service import live_machine, scan, user
from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.machine.models import Machine
from weldguard.permit.mobile_models import MobileJob
from weldguard.permit.mobile_service import MobileJobInput, MobileJobService
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import SpecialPeriod
from weldguard.unlock.service import ScanService
from weldguard.welder.identity import IdentityVault
from weldguard.welder.service import WelderInput, WelderService

H = timedelta(hours=1)


def welder_b(db: Session, settings: Settings, world: World) -> Scope:
    """An account for 焊工B, employed by B only: a mobile welder as far as A's
    machines are concerned."""
    AuthService(db, settings).create_user(
        NewUser("welder_b", PASSWORD, "welder", welder_id=world.welders["B"].id)
    )
    db.commit()
    return Scope(role=Role.WELDER, user_id=0, welder_id=world.welders["B"].id)


def declare(
    db: Session,
    scope: Scope,
    machine: Machine,
    welder_ids: Sequence[int],
    starts: datetime = NOW - timedelta(minutes=5),
    hours: int = 4,
    **place: str,
) -> MobileJob:
    data = MobileJobInput(
        starts_at=starts,
        ends_at=starts + hours * H,
        fire_watch_name="李看火",
        fire_watch_phone="13912345678",
        welder_ids=tuple(welder_ids),
        machine_ids=(machine.id,),
        **place,  # type: ignore[arg-type]
    )
    job = MobileJobService(db).declare(scope, data, None, NOW - timedelta(minutes=6))
    db.commit()
    return job


def test_a_mobile_welder_needs_a_job_covering_now(
    db: Session, settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world)  # enterprise A's
    scope = welder_b(db, settings, world)
    service, signer = ScanService(db, settings), signer_for(settings)
    who = user(db, "welder_b")

    refused = scan(service, signer, who, machine)
    assert refused.record.reason_codes == ["NOT_EMPLOYED"]

    # 焊工B declares a job on A's machine at A's premises (the client's own machine).
    job = declare(
        db,
        scope,
        machine,
        [world.welders["B"].id],
        client_credit_code=world.enterprises["A"].credit_code,
    )
    allowed = scan(service, signer, who, machine)
    assert allowed.allowed, allowed.record.reason_codes
    # The session cannot outlive the job.
    assert allowed.decision.valid_until == job.ends_at
    db.commit()


def test_outside_the_window_the_mobile_welder_is_refused(
    db: Session, settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world, now=NOW + 5 * H)
    scope = welder_b(db, settings, world)
    declare(
        db,
        scope,
        machine,
        [world.welders["B"].id],
        client_credit_code=world.enterprises["A"].credit_code,
    )
    service, signer = ScanService(db, settings), signer_for(settings)
    later = scan(service, signer, user(db, "welder_b"), machine, now=NOW + 5 * H)
    assert later.record.reason_codes == ["NOT_EMPLOYED"]


def test_a_cancelled_job_no_longer_covers(db: Session, settings: Settings, world: World) -> None:
    machine, _, _ = live_machine(db, settings, world)
    scope = welder_b(db, settings, world)
    job = declare(
        db,
        scope,
        machine,
        [world.welders["B"].id],
        client_credit_code=world.enterprises["A"].credit_code,
    )
    MobileJobService(db).cancel(scope, job.id, None, NOW)
    db.commit()
    service, signer = ScanService(db, settings), signer_for(settings)
    refused = scan(service, signer, user(db, "welder_b"), machine)
    assert refused.record.reason_codes == ["NOT_EMPLOYED"]


def test_a_job_naming_another_welder_does_not_cover(
    db: Session, settings: Settings, world: World
) -> None:
    machine, _, _ = live_machine(db, settings, world)
    welder_b(db, settings, world)
    world.enterprises["A"].mobile_work = True
    db.commit()
    # A declares its own welder for the machine; 焊工B is not named.
    declare(
        db,
        a_scope(world),
        machine,
        [world.welders["A"].id],
        client_credit_code=world.enterprises["A"].credit_code,
    )
    service, signer = ScanService(db, settings), signer_for(settings)
    refused = scan(service, signer, user(db, "welder_b"), machine)
    assert refused.record.reason_codes == ["NOT_EMPLOYED"]


def a_scope(world: World) -> Scope:
    return Scope(role=Role.ENTERPRISE_ADMIN, user_id=0, enterprise_id=world.enterprises["A"].id)


def test_a_contractor_machine_at_a_registered_client_works_under_its_rules(
    db: Session, settings: Settings, world: World
) -> None:
    """At B's construction site a permit is required (B's sector), which A's own
    premises do not ask for: the job moved the place of work."""
    world.enterprises["A"].mobile_work = True
    db.commit()
    home, _, _ = live_machine(db, settings, world)
    away, _, _ = live_machine(db, settings, world)
    declare(
        db,
        a_scope(world),
        away,
        [world.welders["A"].id],
        client_credit_code=world.enterprises["B"].credit_code,
    )
    service, signer = ScanService(db, settings), signer_for(settings)
    at_b = scan(service, signer, user(db, "welder_one"), away)
    assert at_b.record.reason_codes == ["PERMIT_REQUIRED"]
    db.commit()
    assert scan(service, signer, user(db, "welder_one"), home).allowed


def test_an_unregistered_clients_street_brings_its_special_periods(
    db: Session, settings: Settings, world: World
) -> None:
    world.enterprises["A"].mobile_work = True
    machine, _, _ = live_machine(db, settings, world)
    xinjing = world.places["310105102"]
    db.add(
        SpecialPeriod(
            title="新泾镇重大活动保障",
            kind="ban_hot_work",
            jurisdiction_id=xinjing.id,
            area_path=xinjing.path,
            sectors=None,
            starts_at=NOW - H,
            ends_at=NOW + 24 * H,
            declared_at=NOW - 48 * H,
        )
    )
    db.commit()
    declare(
        db,
        a_scope(world),
        machine,
        [world.welders["A"].id],
        client_name="王先生",
        client_contact="王先生",
        client_phone="13900001111",
        address="新泾镇某小区",
        area="310105102",
    )
    service, signer = ScanService(db, settings), signer_for(settings)
    result = scan(service, signer, user(db, "welder_one"), machine)
    assert result.record.reason_codes == ["SPECIAL_PERIOD"]
    assert "新泾镇重大活动保障" in result.record.reasons[0]["message"]


def test_the_stay_at_home_scan_reads_no_jobs(db: Session, settings: Settings, world: World) -> None:
    """The owner's welder at an enterprise not registered for mobile work: the
    statements of tests/unlock/test_scan_round_trips.py, no more."""
    machine, _, _ = live_machine(db, settings, world)
    service = ScanService(db, settings, claim_for_bus=True)
    signer = signer_for(settings)
    welder = user(db, "welder_one")
    with statements(db) as seen:
        result = scan(service, signer, welder, machine)
    assert result.allowed
    assert seen == ["SELECT", "SELECT", *allowed_writes(db)], seen


def test_a_mobile_work_owner_spends_one_select_on_jobs(
    db: Session, settings: Settings, world: World
) -> None:
    world.enterprises["A"].mobile_work = True
    db.commit()
    machine, _, _ = live_machine(db, settings, world)
    service = ScanService(db, settings, claim_for_bus=True)
    signer = signer_for(settings)
    welder = user(db, "welder_one")
    with statements(db) as seen:
        result = scan(service, signer, welder, machine)
    assert result.allowed
    assert seen == ["SELECT", "SELECT", "SELECT", *allowed_writes(db)], seen


def test_a_welder_not_named_cannot_use_the_machine_at_the_client(
    db: Session, settings: Settings, world: World
) -> None:
    """The machine is at B's site for the job; A's welder not named in it is
    refused there, though A employs them."""
    world.enterprises["A"].mobile_work = True
    db.commit()
    machine, _, _ = live_machine(db, settings, world)
    other = AuthService(db, settings)
    second = WelderService(db, IdentityVault(TEST_SECRET_FOR_DEVICES)).register(
        WelderInput(name="焊工A2", id_number=id_number(9), phone="13900000099"), TODAY
    )
    WelderService(db, IdentityVault(TEST_SECRET_FOR_DEVICES)).employ(
        ADMIN_SCOPE, second, world.enterprises["A"].id, TODAY - timedelta(days=30)
    )
    other.create_user(NewUser("welder_a2", PASSWORD, "welder", welder_id=second.id))
    db.commit()
    declare(
        db,
        a_scope(world),
        machine,
        [world.welders["A"].id],
        client_credit_code=world.enterprises["B"].credit_code,
    )
    service, signer = ScanService(db, settings), signer_for(settings)
    refused = scan(service, signer, user(db, "welder_a2"), machine)
    assert "MOBILE_JOB_NOT_DECLARED" in refused.record.reason_codes
