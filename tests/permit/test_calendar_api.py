"""GET/PUT /api/v1/calendar/{year}: every signed-in user reads, the admin writes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.permit.conftest import days_of
from weldguard.deps import get_clock
from weldguard.permit.calendar_seed import SEED_SOURCE, built_in_days

Headers = Callable[[str], dict[str, str]]
BODY = {
    "days": [
        {"date": "2027-10-01", "kind": "holiday", "name": "国庆节"},
        {"date": "2027-10-09", "kind": "workday", "name": "国庆节"},
        {"date": "2027-10-02", "kind": "节假日", "name": "国庆节"},
    ]
}


@pytest.fixture
def api(client: TestClient, world: World) -> TestClient:
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]
    return client


@pytest.mark.parametrize("username", ["admin", "reg_changning", "ent_a", "welder_one"])
def test_every_signed_in_user_reads(api: TestClient, as_user: Headers, username: str) -> None:
    # The world's reference data carries the built-in schedule.
    response = api.get("/api/v1/calendar/2026", headers=as_user(username))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["year"] == 2026 and len(body["days"]) == len(built_in_days(2026))
    assert body["holiday_count"] + body["workday_count"] == len(body["days"])
    day = body["days"][0]
    assert set(day) == {
        "date",
        "weekday",
        "kind",
        "kind_label",
        "name",
        "source",
        "updated_by",
        "updated_at",
    }
    assert day["source"] == SEED_SOURCE and day["kind_label"] in ("节假日", "调休上班")
    assert api.get("/api/v1/calendar/2030", headers=as_user(username)).json()["days"] == []


def test_reading_needs_a_sign_in_and_a_sane_year(api: TestClient, as_user: Headers) -> None:
    assert api.get("/api/v1/calendar/2026").status_code == 401
    assert api.get("/api/v1/calendar/1900", headers=as_user("admin")).status_code == 422
    assert api.get("/api/v1/calendar/abc", headers=as_user("admin")).status_code == 422


def test_admin_replaces_a_year(api: TestClient, as_user: Headers, db: Session) -> None:
    response = api.put("/api/v1/calendar/2027", json=BODY, headers=as_user("admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert [d["date"] for d in body["days"]] == ["2027-10-01", "2027-10-02", "2027-10-09"]
    assert (body["holiday_count"], body["workday_count"]) == (2, 1)
    assert body["days"][2]["weekday"] == "星期六" and body["days"][0]["updated_by"] == "admin"
    assert days_of(db, 2027)["2027-10-09"] == ("workday", "国庆节")
    assert len(days_of(db, 2026)) == len(built_in_days(2026))
    read = api.get("/api/v1/calendar/2027", headers=as_user("welder_one")).json()
    assert read == body


@pytest.mark.parametrize("username", ["reg_changning", "insp_xinjing", "ent_a", "welder_one"])
def test_others_may_not_write(
    api: TestClient, as_user: Headers, db: Session, username: str
) -> None:
    response = api.put("/api/v1/calendar/2027", json=BODY, headers=as_user(username))
    assert response.status_code == 403
    assert days_of(db, 2027) == {}


def test_bad_entries_are_named_and_nothing_is_written(
    api: TestClient, as_user: Headers, db: Session
) -> None:
    body = {
        "days": [
            {"date": "2027-10-01", "kind": "holiday", "name": "国庆节"},
            {"date": "2027-10-01", "kind": "holiday", "name": "国庆节"},
            {"date": "2027-10-08", "kind": "workday", "name": "国庆节"},  # a Friday
            {"date": "2026-10-01", "kind": "holiday", "name": "国庆节"},
            {"date": "10/1", "kind": "day off", "name": ""},
        ]
    }
    response = api.put("/api/v1/calendar/2027", json=body, headers=as_user("admin"))
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == [
        "days[1].date",
        "days[2].kind",
        "days[3].date",
        "days[4].date",
        "days[4].kind",
        "days[4].name",
    ]
    assert days_of(db, 2027) == {}
    assert api.put("/api/v1/calendar/2101", json=BODY, headers=as_user("admin")).status_code == 422
