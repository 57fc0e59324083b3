"""Registering enterprises and their sites through the API: every bad field is
named, and nothing is half-written."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import World, credit_code, enterprise_row
from weldguard.enterprise.models import Enterprise

Headers = Callable[[str], dict[str, str]]


def api_row(n: int, **extra: object) -> dict[str, object]:
    row = enterprise_row(n, f"测试企业{n}", "长宁区", "新华路街道")
    row.update(involves_welding=True, mobile_work=False)
    row.update(extra)
    return row


def _count(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count(Enterprise.id))) or 0


def test_register_and_update(client: TestClient, world: World, as_user: Headers) -> None:
    headers = as_user("reg_changning")
    created = client.post("/api/v1/enterprises", json=api_row(70), headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["area_path"] == world.places["310105004"].path
    updated = client.put(
        f"/api/v1/enterprises/{body['id']}",
        json=api_row(70, name="测试企业七十（更名）", production_status="停产"),
        headers=headers,
    )
    assert updated.status_code == 200
    assert updated.json()["production_status"] == "停产"
    renumbered = client.put(f"/api/v1/enterprises/{body['id']}", json=api_row(71), headers=headers)
    assert renumbered.status_code == 422
    assert renumbered.json()["error"]["details"][0]["field"] == "credit_code"


@pytest.mark.parametrize(
    ("change", "field", "reason_part"),
    [
        ({"credit_code": credit_code(72)[:-1] + "0"}, "credit_code", "校验"),
        ({"credit_code": "123"}, "credit_code", "18"),
        ({"street": "不存在街道"}, "street", "没有镇街"),
        ({"district": "浦东新区"}, "district", "没有区县"),
        ({"city": "北京市"}, "city", "未知的地市"),
        ({"sector": "养猪场"}, "sector", "未知的企业类型"),
        ({"sector": "人员密集场所"}, "crowded_subtype", "必须填写"),
        ({"name": "长" * 129}, "name", "超过 128"),
        ({"production_status": "放假"}, "production_status", "未知的生产状态"),
        ({"legal_rep_phone": "12345"}, "legal_rep_phone", ""),
        ({"declared_machine_count": -1}, "declared_machine_count", "0 到"),
        ({"name": ""}, "name", "不能为空"),
    ],
)
def test_bad_fields_are_named_and_nothing_written(
    client: TestClient,
    world: World,
    as_user: Headers,
    db: Session,
    change: dict[str, object],
    field: str,
    reason_part: str,
) -> None:
    before = _count(db)
    response = client.post(
        "/api/v1/enterprises", json=api_row(72, **change), headers=as_user("reg_changning")
    )
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert any(d["field"] == field and reason_part in d["reason"] for d in details), details
    assert _count(db) == before


def test_every_bad_field_is_reported_at_once(
    client: TestClient, world: World, as_user: Headers
) -> None:
    row = api_row(73, credit_code="bad", street="无此街道", production_status="?")
    details = client.post("/api/v1/enterprises", json=row, headers=as_user("admin")).json()[
        "error"
    ]["details"]
    assert {d["field"] for d in details} >= {"credit_code", "street", "production_status"}


def test_sites_and_opening_hours(client: TestClient, world: World, as_user: Headers) -> None:
    headers = as_user("ent_a")
    enterprise_id = world.enterprises["A"].id
    site = {
        "name": "一号车间",
        "address": "长宁区长宁路1号",
        "latitude": 31.22,
        "longitude": 121.42,
        "polygon": [[31.22, 121.42], [31.221, 121.42], [31.221, 121.421]],
    }
    assert (
        client.post(
            f"/api/v1/enterprises/{enterprise_id}/sites", json=site, headers=headers
        ).status_code
        == 201
    )
    sites = client.get(f"/api/v1/enterprises/{enterprise_id}/sites", headers=headers).json()
    assert [s["name"] for s in sites] == ["一号车间"]
    bad = dict(site, latitude=120.0, polygon=[[1, 2]])
    response = client.post(f"/api/v1/enterprises/{enterprise_id}/sites", json=bad, headers=headers)
    assert {d["field"] for d in response.json()["error"]["details"]} == {"latitude", "polygon"}
    hours = [{"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "21:30"}]
    ok = client.put(
        f"/api/v1/enterprises/{enterprise_id}/opening-hours", json=hours, headers=headers
    )
    assert ok.status_code == 200 and ok.json()["opening_hours"] == hours
    wrong = [{"days": [0, 8], "open": "25:00", "close": "21:30"}]
    response = client.put(
        f"/api/v1/enterprises/{enterprise_id}/opening-hours", json=wrong, headers=headers
    )
    assert response.status_code == 422
    assert len(response.json()["error"]["details"]) == 2


def test_machine_registration_validates(client: TestClient, world: World, as_user: Headers) -> None:
    body = {
        "serial_number": "",
        "make": "佳士",
        "model": "NB-350",
        "process": "laser",
        "rated_current_a": 0,
        "enterprise_id": world.enterprises["A"].id,
    }
    response = client.post("/api/v1/machines", json=body, headers=as_user("ent_a"))
    assert response.status_code == 422
    assert {d["field"] for d in response.json()["error"]["details"]} == {
        "serial_number",
        "process",
        "rated_current_a",
    }
    duplicate = dict(
        body, serial_number="SN-A-001", make="瑞凌", process="manual_arc", rated_current_a=400
    )
    assert (
        client.post("/api/v1/machines", json=duplicate, headers=as_user("ent_a")).status_code == 409
    )


def test_request_validation_uses_the_one_error_format(
    client: TestClient, world: World, as_user: Headers
) -> None:
    response = client.get("/api/v1/enterprises", params={"page": 0}, headers=as_user("admin"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"][0]["field"] == "page"
