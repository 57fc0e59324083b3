"""/api/v1/mobile-jobs: declaring, reading within scope, cancelling, photos, and
every bad input named by its field with nothing written (both backends)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, PASSWORD, World
from tests.web.test_device_pages import png_bytes
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.deps import get_clock
from weldguard.machine.models import MachineStatus
from weldguard.permit.mobile_models import MobileJob, MobileJobMachine, MobileJobWelder

Headers = Callable[[str], dict[str, str]]
H = timedelta(hours=1)


@pytest.fixture
def api(client: TestClient, world: World, db: Session) -> Iterator[TestClient]:
    """The API at the world's NOW, enterprise A registered for mobile work."""
    world.enterprises["A"].mobile_work = True
    db.commit()
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]
    yield client
    client.app.dependency_overrides.pop(get_clock, None)  # type: ignore[attr-defined]


def body(world: World, **changes: Any) -> dict[str, Any]:
    """Enterprise A's crew and machine at client C (a registered shopping mall)."""
    data: dict[str, Any] = {
        "starts_at": (NOW + H).isoformat(),
        "ends_at": (NOW + 9 * H).isoformat(),
        "client_credit_code": world.enterprises["C"].credit_code,
        "fire_watch_name": "李看火",
        "fire_watch_phone": "13912345678",
        "description": "空调支架焊接",
        "welder_ids": [world.welders["A"].id],
        "machine_ids": [world.machines["A"].id],
    }
    data.update(changes)
    return data


def declare(api: TestClient, as_user: Headers, world: World, **changes: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/mobile-jobs", json=body(world, **changes), headers=as_user("ent_a")
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def job_count(db: Session) -> tuple[int, int, int]:
    db.expire_all()
    return (
        db.scalar(select(func.count()).select_from(MobileJob)) or 0,
        db.scalar(select(func.count()).select_from(MobileJobWelder)) or 0,
        db.scalar(select(func.count()).select_from(MobileJobMachine)) or 0,
    )


def test_a_contractor_declares_a_job_at_a_registered_client(
    api: TestClient, as_user: Headers, world: World
) -> None:
    job = declare(api, as_user, world)
    client = world.enterprises["C"]
    assert job["status"] == "declared" and job["state"] == "upcoming"
    assert job["state_label"] == "未开始" and job["may_cancel"] is True
    assert job["contractor_enterprise_id"] == world.enterprises["A"].id
    assert (job["client_enterprise_id"], job["client_name"]) == (client.id, client.name)
    # The place defaults to the client's address and street.
    assert job["address"] == client.address and job["area_path"] == client.area_path
    assert job["area_code"] == "310105009"
    assert job["welder_ids"] == [world.welders["A"].id]
    assert job["machine_ids"] == [world.machines["A"].id]
    assert job["fire_watch_phone"] == "13912345678"


def test_an_unregistered_client_with_its_own_place(
    api: TestClient, as_user: Headers, world: World
) -> None:
    job = declare(
        api,
        as_user,
        world,
        client_credit_code="",
        client_name="王先生（个人住宅）",
        client_contact="王先生",
        client_phone="139-0000-1111",
        address="长宁区新泾镇某小区 5 号楼",
        area="310105102",
        latitude=31.2201,
        longitude=121.3801,
    )
    assert job["client_enterprise_id"] is None and job["client_phone"] == "13900001111"
    assert job["area_code"] == "310105102" and job["latitude"] == pytest.approx(31.2201)


def test_reads_follow_the_scope(api: TestClient, as_user: Headers, world: World) -> None:
    job = declare(api, as_user, world)  # at C's premises, 虹桥街道
    url = f"/api/v1/mobile-jobs/{job['id']}"
    for who in ("ent_a", "admin", "reg_changning", "welder_one"):
        assert api.get(url, headers=as_user(who)).status_code == 200, who
        listed = api.get("/api/v1/mobile-jobs", headers=as_user(who)).json()
        assert [j["id"] for j in listed["items"]] == [job["id"]], who
    # Another enterprise, a regulator of another street (A's own: the job is not
    # there) or city, an inspector elsewhere: as if it did not exist.
    for who in ("safety_b", "reg_huayang", "reg_zhengzhou", "insp_xinjing"):
        response = api.get(url, headers=as_user(who))
        assert response.status_code == 404, who
        assert response.json()["error"]["code"] == "not_found"
        assert api.get("/api/v1/mobile-jobs", headers=as_user(who)).json()["total"] == 0, who
    assert api.get("/api/v1/mobile-jobs/999999", headers=as_user("admin")).status_code == 404


def test_list_filters_by_state(api: TestClient, as_user: Headers, world: World) -> None:
    job = declare(api, as_user, world)
    headers = as_user("ent_a")
    upcoming = api.get("/api/v1/mobile-jobs?state=upcoming", headers=headers).json()
    assert upcoming["total"] == 1 and upcoming["items"][0]["id"] == job["id"]
    assert api.get("/api/v1/mobile-jobs?state=active", headers=headers).json()["total"] == 0
    bad = api.get("/api/v1/mobile-jobs?state=soon", headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "state"


def test_overlapping_jobs_for_one_machine_are_refused(
    api: TestClient, as_user: Headers, world: World, db: Session
) -> None:
    first = declare(api, as_user, world)
    response = api.post(
        "/api/v1/mobile-jobs",
        json=body(world, starts_at=(NOW + 8 * H).isoformat(), ends_at=(NOW + 10 * H).isoformat()),
        headers=as_user("ent_a"),
    )
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["field"] == "machine_ids" and f"编号 {first['id']}" in detail["reason"]
    assert job_count(db) == (1, 1, 1)
    # Touching windows are fine (half-open), and so is a cancelled job's window.
    declare(
        api, as_user, world, starts_at=(NOW + 9 * H).isoformat(), ends_at=(NOW + 10 * H).isoformat()
    )
    cancelled = api.post(f"/api/v1/mobile-jobs/{first['id']}/cancel", headers=as_user("ent_a"))
    assert cancelled.status_code == 200
    declare(api, as_user, world)


def test_cancel_before_the_window_and_end_during_it(
    api: TestClient, as_user: Headers, world: World
) -> None:
    job = declare(api, as_user, world)
    url = f"/api/v1/mobile-jobs/{job['id']}/cancel"
    # Only the declaring side may withdraw it; outside the scope it is missing.
    assert api.post(url, headers=as_user("reg_changning")).status_code == 403
    assert api.post(url, headers=as_user("safety_b")).status_code == 404
    done = api.post(url, headers=as_user("ent_a"))
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["state"]) == ("cancelled", "cancelled")
    assert done.json()["ends_at"] == job["ends_at"]  # the window is kept for the record
    assert api.post(url, headers=as_user("ent_a")).status_code == 409

    second = declare(api, as_user, world)
    api.app.dependency_overrides[get_clock] = lambda: NOW + 2 * H  # type: ignore[attr-defined]
    ended = api.post(f"/api/v1/mobile-jobs/{second['id']}/cancel", headers=as_user("ent_a"))
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert ended.json()["ends_at"].startswith((NOW + 2 * H).strftime("%Y-%m-%dT%H:%M"))


def test_a_welder_declares_for_themself(api: TestClient, as_user: Headers, world: World) -> None:
    data = body(world, welder_ids=[], client_credit_code=world.enterprises["B"].credit_code)
    response = api.post("/api/v1/mobile-jobs", json=data, headers=as_user("welder_one"))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["welder_ids"] == [world.welders["A"].id] and job["declared_by_welder_id"]
    assert job["contractor_enterprise_id"] is None
    # Naming someone else is refused.
    other = body(world, welder_ids=[world.welders["B"].id])
    refused = api.post("/api/v1/mobile-jobs", json=other, headers=as_user("welder_one"))
    assert refused.status_code == 422
    assert "welder_ids" in [d["field"] for d in refused.json()["error"]["details"]]


def test_who_may_declare(api: TestClient, as_user: Headers, world: World) -> None:
    for who in ("reg_changning", "insp_xinjing", "installer_cn"):
        response = api.post("/api/v1/mobile-jobs", json=body(world), headers=as_user(who))
        assert response.status_code == 403, who
    # The admin names the contractor.
    missing = api.post("/api/v1/mobile-jobs", json=body(world), headers=as_user("admin"))
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "contractor_enterprise_id"
    ok = api.post(
        "/api/v1/mobile-jobs",
        json=body(world, contractor_enterprise_id=world.enterprises["A"].id),
        headers=as_user("admin"),
    )
    assert ok.status_code == 201, ok.text


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("no start", {"starts_at": None}, "starts_at"),
    ("naive start", {"starts_at": "2026-11-22T13:00:00"}, "starts_at"),
    ("start long past", {"starts_at": (NOW - 2 * H).isoformat()}, "starts_at"),
    ("no end", {"ends_at": None}, "ends_at"),
    ("end before start", {"ends_at": NOW.isoformat()}, "ends_at"),
    ("too long", {"ends_at": (NOW + 74 * H).isoformat()}, "ends_at"),
    ("bad credit code", {"client_credit_code": "123"}, "client_credit_code"),
    ("unknown client", {"client_credit_code": "91310105MA1FL99997"}, "client_credit_code"),
    (
        "no client",
        {
            "client_credit_code": "",
            "client_contact": "王",
            "client_phone": "13900001111",
            "address": "某地",
            "area": "310105102",
        },
        "client_name",
    ),
    (
        "no client contact",
        {
            "client_credit_code": "",
            "client_name": "王",
            "client_phone": "13900001111",
            "address": "某地",
            "area": "310105102",
        },
        "client_contact",
    ),
    (
        "bad client phone",
        {
            "client_credit_code": "",
            "client_name": "王",
            "client_contact": "王",
            "client_phone": "123",
            "address": "某地",
            "area": "310105102",
        },
        "client_phone",
    ),
    (
        "no address",
        {
            "client_credit_code": "",
            "client_name": "王",
            "client_contact": "王",
            "client_phone": "13900001111",
            "area": "310105102",
        },
        "address",
    ),
    (
        "no area",
        {
            "client_credit_code": "",
            "client_name": "王",
            "client_contact": "王",
            "client_phone": "13900001111",
            "address": "某地",
        },
        "area",
    ),
    ("unknown area", {"area": "999999999"}, "area"),
    ("city as area", {"area": "310100"}, "area"),
    ("half a position", {"latitude": 31.2}, "longitude"),
    ("position out of range", {"latitude": 91.0, "longitude": 121.0}, "latitude"),
    ("no fire watch", {"fire_watch_name": " "}, "fire_watch_name"),
    ("bad fire watch phone", {"fire_watch_phone": "12345"}, "fire_watch_phone"),
    ("long description", {"description": "焊" * 513}, "description"),
    ("no welders", {"welder_ids": []}, "welder_ids"),
    ("welder of another enterprise", {"welder_ids": [-1]}, "welder_ids"),
    ("no machines", {"machine_ids": []}, "machine_ids"),
    ("unknown machine", {"machine_ids": [999999]}, "machine_ids"),
    ("another enterprise's machine", {"machine_ids": ["Z"]}, "machine_ids"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_the_field_and_writes_nothing(
    api: TestClient,
    as_user: Headers,
    world: World,
    db: Session,
    case: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    if changes.get("welder_ids") == [-1]:
        changes = {"welder_ids": [world.welders["B"].id]}
    if changes.get("machine_ids") == ["Z"]:
        changes = {"machine_ids": [world.machines["Z"].id]}
    response = api.post(
        "/api/v1/mobile-jobs", json=body(world, **changes), headers=as_user("ent_a")
    )
    assert response.status_code == 422, response.text
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == [field], (case, response.json())
    assert job_count(db) == (0, 0, 0)


def test_machines_rules(api: TestClient, as_user: Headers, world: World, db: Session) -> None:
    machine = world.machines["A"]
    machine.status = MachineStatus.RETIRED.value
    db.commit()
    retired = api.post("/api/v1/mobile-jobs", json=body(world), headers=as_user("ent_a"))
    assert retired.status_code == 422 and "已报废" in retired.text
    machine.status = MachineStatus.CHIP_FITTED.value
    world.enterprises["A"].mobile_work = False
    db.commit()
    stay_home = api.post("/api/v1/mobile-jobs", json=body(world), headers=as_user("ent_a"))
    assert stay_home.status_code == 422 and "流动作业单位" in stay_home.text
    # The client's own machine needs no such flag: it does not leave.
    own = body(
        world,
        client_credit_code=world.enterprises["B"].credit_code,
        machine_ids=[world.machines["B"].id],
    )
    assert api.post("/api/v1/mobile-jobs", json=own, headers=as_user("ent_a")).status_code == 201
    assert job_count(db)[0] == 1


def test_photos_are_checked_stored_and_served(
    api: TestClient, as_user: Headers, world: World
) -> None:
    job = declare(api, as_user, world)
    url = f"/api/v1/mobile-jobs/{job['id']}/photos"
    headers = as_user("ent_a")
    ok = api.post(url, files={"photo": ("site.png", png_bytes(), "image/png")}, headers=headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["photo_count"] == 1
    served = api.get(f"{url}/0", headers=as_user("reg_changning"))
    assert served.status_code == 200 and served.content == png_bytes()
    assert served.headers["content-type"] == "image/png"
    assert api.get(f"{url}/0", headers=as_user("safety_b")).status_code == 404
    assert api.get(f"{url}/1", headers=headers).status_code == 404
    # Not an image by its bytes, whatever its name says; empty.
    fake = api.post(url, files={"photo": ("x.png", b"GIF89a....", "image/png")}, headers=headers)
    assert fake.status_code == 415 and fake.json()["error"]["details"][0]["field"] == "photo"
    empty = api.post(url, files={"photo": ("x.png", b"", "image/png")}, headers=headers)
    assert empty.status_code == 422
    # Only the declaring side uploads; not after the job is withdrawn.
    other = api.post(
        url, files={"photo": ("a.png", png_bytes(), "image/png")}, headers=as_user("reg_changning")
    )
    assert other.status_code == 403
    api.post(f"/api/v1/mobile-jobs/{job['id']}/cancel", headers=headers)
    late = api.post(url, files={"photo": ("a.png", png_bytes(), "image/png")}, headers=headers)
    assert late.status_code == 409
    assert api.get(f"/api/v1/mobile-jobs/{job['id']}", headers=headers).json()["photo_count"] == 1


def test_the_client_sees_the_jobs_at_its_premises(
    api: TestClient, as_user: Headers, world: World, db: Session, settings: Settings
) -> None:
    AuthService(db, settings).create_user(
        NewUser(
            "ent_c",
            PASSWORD,
            "enterprise_admin",
            enterprise_credit_code=world.enterprises["C"].credit_code,
        )
    )
    db.commit()
    job = declare(api, as_user, world)
    seen = api.get(f"/api/v1/mobile-jobs/{job['id']}", headers=as_user("ent_c"))
    assert seen.status_code == 200 and seen.json()["may_cancel"] is False
    # Seeing is not withdrawing: that is the contractor's.
    assert (
        api.post(f"/api/v1/mobile-jobs/{job['id']}/cancel", headers=as_user("ent_c")).status_code
        == 403
    )
