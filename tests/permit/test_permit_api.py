"""/api/v1/permits (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.permit.permits import HOT_SPOT, PHOTO, people
from weldguard.config import Settings
from weldguard.deps import get_clock

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def api(client: TestClient) -> TestClient:
    # Every request happens at the world's NOW (a Sunday: the 二级 permit is 一级).
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]
    return client


def body(world: World, welder_user_id: int, watch_user_id: int, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "place_description": "3号楼钢结构焊接",
        "hot_spot": {"lat": HOT_SPOT[0], "lon": HOT_SPOT[1]},
        "methods": ["electric_welding"],
        "base_level": "second",
        "level": "first",
        "starts_at": NOW.isoformat(),
        "ends_at": (NOW + timedelta(hours=6)).isoformat(),
        "welders": [{"welder_id": world.welders["B"].id}],
        "machine_ids": [world.machines["B"].id],
        "lead": {"name": "焊工B", "user_id": welder_user_id, "welder_id": world.welders["B"].id},
        "fire_watch": {"name": "安全员", "user_id": watch_user_id},
        "fire_watch_trained": True,
        "hazards": ["火花飞溅"],
    }
    data.update(changes)
    return data


def test_create_list_read_edit_and_steps(
    api: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    officer = as_user("safety_b")
    created = api.post(
        "/api/v1/permits", json=body(world, p.welder.id, p.applicant.id), headers=officer
    )
    assert created.status_code == 201, created.text
    permit = created.json()
    assert permit["status"] == "draft" and permit["status_label"] == "草稿"
    assert [e["kind"] for e in permit["events"]] == ["create"]
    assert permit["events"][0]["payload"]["machine_ids"] == [world.machines["B"].id]
    pid = permit["id"]

    edited = api.patch(
        f"/api/v1/permits/{pid}",
        json=body(world, p.welder.id, p.applicant.id, place_description="2号楼"),
        headers=officer,
    )
    assert edited.status_code == 200 and edited.json()["place_description"] == "2号楼"

    submitted = api.post(f"/api/v1/permits/{pid}/events", json={"kind": "submit"}, headers=officer)
    assert submitted.status_code == 201 and submitted.json()["status"] == "submitted"

    boss = as_user("boss_b")
    refused = api.post(f"/api/v1/permits/{pid}/events", json={"kind": "approve"}, headers=boss)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "permit_refused"
    assert [d["code"] for d in error["details"]] == [
        "SITE_SURVEY_MISSING",
        "RISK_CONFIRMATION_MISSING",
    ]
    assert all(d["reason"] for d in error["details"])

    survey = api.post(
        f"/api/v1/permits/{pid}/events",
        json={"kind": "site_survey", "photos": PHOTO, "note": "现场已勘查"},
        headers=boss,
    )
    assert survey.status_code == 201
    event = survey.json()["events"][-1]
    assert (event["kind"], event["photos"], event["person_name"]) == ("site_survey", PHOTO, "李总")
    assert event["payload"] == {"note": "现场已勘查"}

    # Lists: the enterprise and its area's regulators; filters.
    listed = api.get("/api/v1/permits", params={"status": "submitted"}, headers=officer).json()
    assert [x["id"] for x in listed["items"]] == [pid] and listed["total"] == 1
    assert (
        api.get("/api/v1/permits", params={"status": "draft"}, headers=officer).json()["total"] == 0
    )
    reg = api.get("/api/v1/permits", headers=as_user("reg_changning")).json()
    assert [x["id"] for x in reg["items"]] == [pid]
    assert api.get("/api/v1/permits", headers=as_user("reg_zhengzhou")).json()["total"] == 0
    assert api.get("/api/v1/permits", headers=as_user("welder_b")).json()["total"] == 1
    assert api.get("/api/v1/permits", headers=as_user("welder_one")).json()["total"] == 0
    day = NOW.date().isoformat()
    assert (
        api.get("/api/v1/permits", params={"since": day, "until": day}, headers=officer).json()[
            "total"
        ]
        == 1
    )
    later = (NOW.date() + timedelta(days=3)).isoformat()
    assert api.get("/api/v1/permits", params={"since": later}, headers=officer).json()["total"] == 0


def test_errors_scope_and_roles(
    api: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    p = people(db, settings, world)
    officer = as_user("safety_b")
    bad = api.post(
        "/api/v1/permits",
        json=body(world, p.welder.id, p.applicant.id, base_level="x", hot_spot={}),
        headers=officer,
    )
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["error"]["details"]}
    assert {"base_level", "hot_spot"} <= fields
    pid = api.post(
        "/api/v1/permits", json=body(world, p.welder.id, p.applicant.id), headers=officer
    ).json()["id"]

    for name in ("ent_a", "reg_zhengzhou", "reg_huayang", "welder_one"):
        assert api.get(f"/api/v1/permits/{pid}", headers=as_user(name)).status_code == 404
    assert api.get(f"/api/v1/permits/{pid}", headers=as_user("welder_b")).status_code == 200
    # A regulator reads but does not write; a welder signs only the work's steps.
    reg = as_user("reg_changning")
    assert api.get(f"/api/v1/permits/{pid}", headers=reg).status_code == 200
    assert (
        api.post(f"/api/v1/permits/{pid}/events", json={"kind": "submit"}, headers=reg).status_code
        == 403
    )
    welder = as_user("welder_b")
    assert (
        api.post(
            f"/api/v1/permits/{pid}/events", json={"kind": "submit"}, headers=welder
        ).status_code
        == 403
    )
    unknown = api.post(f"/api/v1/permits/{pid}/events", json={"kind": "fly"}, headers=officer)
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "kind"
    assert api.get("/api/v1/permits", params={"status": "nope"}, headers=officer).status_code == 422
    assert api.get("/api/v1/permits/999999", headers=officer).status_code == 404


def test_step_photos_are_uploaded_then_named(
    api: TestClient, as_user: Headers, db: Session, settings: Settings, world: World
) -> None:
    import io

    from PIL import Image

    p = people(db, settings, world)
    officer, boss = as_user("safety_b"), as_user("boss_b")
    permit = api.post(
        "/api/v1/permits", json=body(world, p.welder.id, p.applicant.id), headers=officer
    ).json()
    url = f"/api/v1/permits/{permit['id']}"
    assert api.post(f"{url}/events", json={"kind": "submit"}, headers=officer).status_code == 201
    image = io.BytesIO()
    Image.new("RGB", (4, 4)).save(image, "PNG")
    uploaded = api.post(
        f"{url}/photos", files={"photo": ("site.png", image.getvalue(), "image/png")}, headers=boss
    )
    assert uploaded.status_code == 201, uploaded.text
    key = uploaded.json()["photo"]
    assert key.startswith("photos/") and key.endswith(".png")
    # Not a photo: refused by its bytes, whatever its name says.
    fake = api.post(
        f"{url}/photos", files={"photo": ("x.jpg", b"<svg/>", "image/jpeg")}, headers=boss
    )
    assert fake.status_code == 415 and fake.json()["error"]["details"][0]["field"] == "photo"
    # A key the upload never handed out is refused, and nothing is written.
    bad = api.post(
        f"{url}/events",
        json={"kind": "site_survey", "photos": ["../../secret.key"]},
        headers=boss,
    )
    assert bad.status_code == 422 and "照片编号无效" in bad.text
    # The photo is served only once a step names it, and only within scope.
    assert api.get(f"{url}/photos/{key}", headers=boss).status_code == 404
    step = api.post(f"{url}/events", json={"kind": "site_survey", "photos": [key]}, headers=boss)
    assert step.status_code == 201, step.text
    served = api.get(f"{url}/photos/{key}", headers=as_user("reg_changning"))
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert api.get(f"{url}/photos/{key}", headers=as_user("ent_a")).status_code == 404
    # Readers cannot upload.
    readers = as_user("reg_changning")
    refused = api.post(
        f"{url}/photos", files={"photo": ("a.png", image.getvalue(), "image/png")}, headers=readers
    )
    assert refused.status_code == 403
