"""/api/v1/permits/{id}/monitor-readings (a batch, all or nothing, every bad field
named with its index; the permit's enterprise writes, others in scope 403, out of
scope 404) and /api/v1/permit-alarms (scoped like the permits, filtered)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, World
from tests.permit.permits import create, people
from weldguard.config import Settings
from weldguard.deps import get_clock
from weldguard.permit.alarm_models import PermitMonitorReading
from weldguard.permit.supervisor import PermitSupervisor

Headers = Callable[[str], dict[str, str]]
CLOCK = NOW + timedelta(minutes=31)
GOOD = {
    "taken_at": "2026-11-22T12:20:00+08:00",
    "gas": "甲烷",
    "lel_percent": 5.0,
    "reading_percent": 0.1,
    "device": "M-1",
}


@pytest.fixture(autouse=True)
def fixed_clock(client: TestClient) -> None:
    client.app.dependency_overrides[get_clock] = lambda: CLOCK  # type: ignore[attr-defined]


def _count(db: Session) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(PermitMonitorReading)) or 0)


def _url(permit_id: int) -> str:
    return f"/api/v1/permits/{permit_id}/monitor-readings"


def test_a_batch_of_readings_is_stored(
    client: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    draft = client.post(_url(steps.id), json={"readings": [GOOD]}, headers=as_user("safety_b"))
    assert draft.status_code == 409 and "草稿" in draft.json()["error"]["message"]
    steps.to_approved()
    later = {**GOOD, "taken_at": "2026-11-22T04:25:00Z", "reading_percent": 0.2}
    response = client.post(
        _url(steps.id), json={"readings": [GOOD, later]}, headers=as_user("safety_b")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [r["gas"] for r in body["readings"]] == ["甲烷", "甲烷"]
    assert body["readings"][0]["taken_at"].startswith("2026-11-22T04:20:00")
    listed = client.get(_url(steps.id), headers=as_user("reg_changning")).json()
    assert [r["reading_percent"] for r in listed] == [0.2, 0.1]  # newest first
    assert (
        client.post(
            _url(steps.id), json={"readings": [GOOD]}, headers=as_user("boss_b")
        ).status_code
        == 201
    )
    assert _count(db) == 3


BAD: list[tuple[Any, str]] = [
    ({}, "readings"),
    ({"readings": []}, "readings"),
    ({"readings": "甲烷 0.1%"}, "readings"),
    ({"readings": [GOOD] * 501}, "readings"),
    ({"readings": [GOOD, 5]}, "readings[1]"),
    ({"readings": [{**GOOD, "taken_at": None}]}, "readings[0].taken_at"),
    ({"readings": [{**GOOD, "taken_at": "昨天"}]}, "readings[0].taken_at"),
    ({"readings": [{**GOOD, "taken_at": "2026-11-22T12:20:00"}]}, "readings[0].taken_at"),
    ({"readings": [{**GOOD, "taken_at": "2026-11-22T12:40:00+08:00"}]}, "readings[0].taken_at"),
    ({"readings": [GOOD, {**GOOD, "gas": " "}]}, "readings[1].gas"),
    ({"readings": [{**GOOD, "gas": 7}]}, "readings[0].gas"),
    ({"readings": [{**GOOD, "gas": "x" * 33}]}, "readings[0].gas"),
    ({"readings": [{**GOOD, "lel_percent": 0}]}, "readings[0].lel_percent"),
    ({"readings": [{**GOOD, "lel_percent": 101}]}, "readings[0].lel_percent"),
    ({"readings": [{**GOOD, "lel_percent": "5"}]}, "readings[0].lel_percent"),
    ({"readings": [{**GOOD, "lel_percent": True}]}, "readings[0].lel_percent"),
    ({"readings": [{**GOOD, "reading_percent": -0.1}]}, "readings[0].reading_percent"),
    ({"readings": [{**GOOD, "reading_percent": 100.5}]}, "readings[0].reading_percent"),
    ({"readings": [{**GOOD, "reading_percent": None}]}, "readings[0].reading_percent"),
    ({"readings": [{**GOOD, "device": "d" * 65}]}, "readings[0].device"),
    ({"readings": [{**GOOD, "device": ["M-1"]}]}, "readings[0].device"),
]


def test_every_bad_reading_is_named_and_nothing_is_written(
    client: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    headers = as_user("safety_b")
    for body, field in BAD:
        response = client.post(_url(steps.id), json=body, headers=headers)
        assert response.status_code == 422, (field, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        fields = [d["field"] for d in error["details"]]
        assert fields == [field], (body if len(str(body)) < 300 else field, fields)
        assert all(any("\u4e00" <= c <= "\u9fff" for c in d["reason"]) for d in error["details"])
    # Several bad fields of several readings are all named at once.
    both = {"readings": [{**GOOD, "gas": ""}, GOOD, {**GOOD, "lel_percent": 0, "device": 1}]}
    response = client.post(_url(steps.id), json=both, headers=headers)
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["readings[0].gas", "readings[2].lel_percent", "readings[2].device"]
    assert _count(db) == 0


def test_only_the_permits_enterprise_writes_readings(
    client: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    body = {"readings": [GOOD]}
    # Out of scope: another enterprise, another city's regulator, a street elsewhere.
    for username in ("ent_a", "reg_zhengzhou", "reg_huayang", "welder_one"):
        response = client.post(_url(steps.id), json=body, headers=as_user(username))
        assert response.status_code == 404, username
        assert client.get(_url(steps.id), headers=as_user(username)).status_code == 404
    # In scope but not the enterprise's admin or safety officer.
    for username in ("reg_changning", "insp_xinjing", "admin", "welder_b"):
        response = client.post(_url(steps.id), json=body, headers=as_user(username))
        assert response.status_code == 403, username
        assert "管理员或安全管理员" in response.json()["error"]["message"]
    assert client.post(_url(999_999), json=body, headers=as_user("safety_b")).status_code == 404
    assert _count(db) == 0


def test_a_permit_that_is_over_takes_no_readings(
    client: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.do(p.applicant, "cancel", NOW)
    response = client.post(_url(steps.id), json={"readings": [GOOD]}, headers=as_user("safety_b"))
    assert response.status_code == 409
    assert "已取消" in response.json()["error"]["message"]
    assert _count(db) == 0


def test_the_alarm_list_follows_the_permits_scope(
    client: TestClient,
    as_user: Headers,
    db: Session,
    settings: Settings,
    world: World,
    session_factory: sessionmaker[Session],
) -> None:
    p = people(db, settings, world)
    steps = create(db, settings, world, p)
    steps.to_started()
    PermitSupervisor.from_settings(settings, session_factory, on_locked=lambda: None).run_once(
        CLOCK
    )

    def items(username: str, query: str = "") -> list[dict[str, Any]]:
        response = client.get(f"/api/v1/permit-alarms{query}", headers=as_user(username))
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["items"]
        return result

    (alarm,) = items("safety_b")
    assert alarm["permit_id"] == steps.id and alarm["permit_number"].startswith("DH-20261122-")
    assert (alarm["kind"], alarm["kind_label"], alarm["count"]) == (
        "fire_watch_absent",
        "监护人员离岗",
        1,
    )
    assert alarm["enterprise_name"] == world.enterprises["B"].name
    assert alarm["cleared_at"] is None and "未按时签到" in alarm["message"]
    for username in ("reg_changning", "reg_changning_zj", "insp_xinjing", "admin", "welder_b"):
        assert len(items(username)) == 1, username
    # Another district, another street, another enterprise, a welder not on it.
    for username in ("reg_zhengzhou", "reg_huayang", "ent_a", "welder_one"):
        assert items(username) == [], username

    assert len(items("reg_changning", "?state=open")) == 1
    assert items("reg_changning", "?state=cleared") == []
    assert len(items("reg_changning", "?kind=fire_watch_absent")) == 1
    assert items("reg_changning", "?kind=permit_expired") == []
    assert len(items("reg_changning", f"?enterprise_id={world.enterprises['B'].id}")) == 1
    assert items("reg_changning", f"?enterprise_id={world.enterprises['A'].id}") == []
    assert len(items("reg_changning", f"?permit_id={steps.id}&page=1&size=5")) == 1
    bad = client.get("/api/v1/permit-alarms?kind=fire", headers=as_user("reg_changning"))
    assert bad.status_code == 422 and "监护人员离岗" in bad.json()["error"]["details"][0]["reason"]
    assert (
        client.get("/api/v1/permit-alarms?state=all", headers=as_user("admin")).status_code == 422
    )
