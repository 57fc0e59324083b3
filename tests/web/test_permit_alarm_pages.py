"""The permit alarm page (作业票报警): scoped like the permits, filtered by kind,
state, area and enterprise, each row linking to its permit."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.permit.permits import create, people
from weldguard.config import Settings
from weldguard.permit.alarm_models import PermitAlarm
from weldguard.permit.models import Permit

SignIn = Callable[[str], TestClient]
TOTAL = re.compile(r"共 <b>(\d+\+?)</b> 条报警")


def total(html: str) -> int:
    match = TOTAL.search(html)
    assert match, "no total on the page"
    return int(match.group(1).rstrip("+"))


def _alarms(db: Session, settings: Settings, world: World) -> Permit:
    """A permit of B with an open 监护人员离岗 (seen 3 times) and a cleared expiry."""
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    row = db.get(Permit, steps.id)
    assert row is not None
    for kind, message, cleared in (
        ("fire_watch_absent", "监护人安全员未按时签到，视为离岗", False),
        ("permit_expired", "作业票已于 2026-11-22 18:00 到期", True),
    ):
        db.add(
            PermitAlarm(
                permit_id=row.id,
                enterprise_id=row.enterprise_id,
                area_path=row.area_path,
                kind=kind,
                message=message,
                raised_at=NOW + timedelta(minutes=len(kind)),
                last_seen_at=NOW + timedelta(minutes=40),
                count=3 if not cleared else 1,
                cleared_at=NOW + timedelta(hours=1) if cleared else None,
            )
        )
    db.commit()
    return row


def test_the_permit_alarm_list_is_scoped_and_filtered(
    sign_in: SignIn, db: Session, settings: Settings, world: World
) -> None:
    permit = _alarms(db, settings, world)
    client = sign_in("reg_changning")
    page = client.get("/permit-alarms").text
    assert 'href="/permit-alarms"' in page and "作业票报警" in page
    assert total(page) == 2
    for text in ("监护人员离岗", "作业票到期", "未消除", "已消除", "巡查发现 3 次", permit.number):
        assert text in page, text
    assert f'href="/permits/{permit.id}"' in page
    assert total(client.get("/permit-alarms?kind=fire_watch_absent").text) == 1
    assert total(client.get("/permit-alarms?state=open").text) == 1
    assert total(client.get("/permit-alarms?state=cleared").text) == 1
    assert total(client.get("/permit-alarms?area=310105102").text) == 2  # 新泾镇: B
    assert total(client.get("/permit-alarms?area=310105001").text) == 0  # 华阳路
    b = world.enterprises["B"].id
    assert total(client.get(f"/permit-alarms?enterprise_id={b}").text) == 2
    partial = client.get("/permit-alarms?state=open", headers={"HX-Request": "true"}).text
    assert "<html" not in partial and total(partial) == 1
    # Filters naming something out of reach are a 404.
    z = world.enterprises["Z"].id
    assert client.get(f"/permit-alarms?enterprise_id={z}").status_code == 404
    assert client.get("/permit-alarms?area=410100").status_code == 404

    assert total(sign_in("safety_b").get("/permit-alarms").text) == 2
    assert total(sign_in("admin").get("/permit-alarms").text) == 2
    assert total(sign_in("ent_a").get("/permit-alarms").text) == 0
    assert total(sign_in("reg_huayang").get("/permit-alarms").text) == 0
    for username in ("installer_cn", "welder_one"):
        assert sign_in(username).get("/permit-alarms").status_code == 403


def test_another_districts_regulator_sees_no_permit_alarm(
    sign_in: SignIn, db: Session, settings: Settings, world: World
) -> None:
    _alarms(db, settings, world)
    page = sign_in("reg_zhengzhou").get("/permit-alarms").text
    assert total(page) == 0 and "没有符合条件的作业票报警" in page
    assert "监护人员离岗" not in page.split("</select>")[-1]


def test_a_permit_shows_its_open_alarms_and_links_to_their_record(
    sign_in: SignIn, db: Session, settings: Settings, world: World
) -> None:
    permit = _alarms(db, settings, world)
    client = sign_in("safety_b")
    page = client.get(f"/permits/{permit.id}").text
    assert "未消除的报警" in page and "监护人安全员未按时签到" in page
    assert "作业票已于 2026-11-22 18:00 到期" not in page  # cleared: only in the record
    listing = client.get(f"/permit-alarms?permit_id={permit.id}").text
    assert total(listing) == 2 and permit.number in listing
    # A permit out of reach, or no permit id at all, is a 404, never an unfiltered list.
    assert sign_in("ent_a").get(f"/permit-alarms?permit_id={permit.id}").status_code == 404
    assert client.get("/permit-alarms?permit_id=abc").status_code == 404
