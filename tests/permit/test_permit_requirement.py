"""Where a permit is required, configured per sector (settings) and per enterprise
(a regulator either way; the enterprise may only require): the scan follows it,
the API sets it (the page: tests/web/test_permit_pages.py), nobody outside the scope reaches it
(both backends)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import World
from tests.permit.permits import people
from tests.permit.test_permit_scan import SCAN_AT, _scan
from tests.unlock.test_scan_service import live_machine
from weldguard.config import Settings
from weldguard.enterprise.models import Enterprise

Headers = Callable[[str], dict[str, str]]


def codes(result: Any) -> list[str]:
    return list(result.record.reason_codes)


def test_an_enterprise_setting_wins_over_its_sector(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", now=SCAN_AT)
    assert codes(_scan(db, settings, p.welder, machine.code)) == ["PERMIT_REQUIRED"]
    b = db.get(Enterprise, world.enterprises["B"].id)
    assert b is not None
    b.permit_required = False
    db.commit()
    allowed = _scan(db, settings, p.welder, machine.code)
    assert allowed.allowed, allowed.record.reasons


def test_a_sector_left_out_of_the_settings_needs_no_permit(
    db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    machine, _, _ = live_machine(db, settings, world, enterprise="B", now=SCAN_AT)
    relaxed = settings.model_copy(update={"permit_sectors": "危化,人员密集场所"})
    allowed = _scan(db, relaxed, p.welder, machine.code)
    assert allowed.allowed, allowed.record.reasons
    everywhere = settings.model_copy(update={"permit_sectors": "", "permit_everywhere": True})
    assert codes(_scan(db, everywhere, p.welder, machine.code)) == ["PERMIT_REQUIRED"]


def test_the_api_sets_it_within_the_scope(
    client: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    people(db, settings, world)
    a, b = world.enterprises["A"].id, world.enterprises["B"].id
    url = "/api/v1/enterprises/{}/permit-requirement"
    # The district's regulator requires it at A (a 工贸 workshop), then resets it.
    done = client.put(
        url.format(a), json={"permit_required": True}, headers=as_user("reg_changning")
    )
    assert done.status_code == 200 and done.json()["permit_required"] is True
    reset = client.put(
        url.format(a), json={"permit_required": None}, headers=as_user("reg_changning")
    )
    assert reset.json()["permit_required"] is None
    # Another city's regulator does not see A at all.
    foreign = client.put(
        url.format(a), json={"permit_required": False}, headers=as_user("reg_zhengzhou")
    )
    assert foreign.status_code == 404
    # The enterprise may require permits for itself, never relax the rule.
    own = client.put(url.format(b), json={"permit_required": True}, headers=as_user("safety_b"))
    assert own.status_code == 200
    relax = client.put(url.format(b), json={"permit_required": False}, headers=as_user("safety_b"))
    assert relax.status_code == 403
    assert (
        client.put(
            url.format(a), json={"permit_required": True}, headers=as_user("safety_b")
        ).status_code
        == 404
    )
    # An inspector reads only.
    assert (
        client.put(
            url.format(b), json={"permit_required": None}, headers=as_user("insp_xinjing")
        ).status_code
        == 403
    )
    bad = client.put(
        url.format(b), json={"permit_required": "yes please"}, headers=as_user("reg_changning")
    )
    assert bad.status_code == 422
    db.expire_all()
    ent = db.get(Enterprise, b)
    assert ent is not None and ent.permit_required is True
