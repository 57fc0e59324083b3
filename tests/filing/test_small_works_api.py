"""/api/v1/small-works: filing with the street, reading within scope, checks and
closing, and every bad input named by its field with nothing written (both
backends)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import NOW, TODAY, World
from weldguard.deps import get_clock
from weldguard.filing.models import SmallWorkCheck, SmallWorkFiling

Headers = Callable[[str], dict[str, str]]
URL = "/api/v1/small-works"


@pytest.fixture
def api(client: TestClient, world: World) -> Iterator[TestClient]:
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]
    yield client
    client.app.dependency_overrides.pop(get_clock, None)  # type: ignore[attr-defined]


def body(**changes: Any) -> dict[str, Any]:
    """Enterprise A files works for a household in 华阳路街道."""
    data: dict[str, Any] = {
        "owner_kind": "person",
        "owner_name": "赵女士",
        "owner_phone": "13600001111",
        "address": "长宁区华阳路街道某小区 3 号 201 室",
        "street": "310105001",
        "description": "阳台防盗窗拆除及焊接安装",
        "expected_start": (TODAY + timedelta(days=2)).isoformat(),
        "expected_end": (TODAY + timedelta(days=4)).isoformat(),
        "contractor_name": "某某装修队",
        "hot_work": True,
        "hot_work_method": "电焊",
        "contact_name": "孙师傅",
        "contact_phone": "13700002222",
    }
    data.update(changes)
    return data


def file(api: TestClient, as_user: Headers, **changes: Any) -> dict[str, Any]:
    response = api.post(URL, json=body(**changes), headers=as_user("ent_a"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def counts(db: Session) -> tuple[int, int]:
    db.expire_all()
    return (
        db.scalar(select(func.count()).select_from(SmallWorkFiling)) or 0,
        db.scalar(select(func.count()).select_from(SmallWorkCheck)) or 0,
    )


def test_an_enterprise_files_small_works_with_the_street(
    api: TestClient, as_user: Headers, world: World
) -> None:
    filing = file(api, as_user)
    assert (filing["status"], filing["status_label"]) == ("filed", "已备案")
    assert filing["enterprise_id"] == world.enterprises["A"].id
    assert filing["street_code"] == "310105001" and filing["owner_phone"] == "13600001111"
    assert filing["hot_work_method"] == "电焊" and filing["checks"] == []
    assert filing["may_check"] is False


def test_a_registered_owner_and_contractor(api: TestClient, as_user: Headers, world: World) -> None:
    filing = file(
        api,
        as_user,
        owner_kind="enterprise",
        owner_credit_code=world.enterprises["C"].credit_code,
        owner_phone="",
        contractor_credit_code=world.enterprises["B"].credit_code,
        hot_work=False,
        hot_work_method="电焊",
    )
    assert filing["owner_enterprise_id"] == world.enterprises["C"].id
    assert filing["owner_name"] == world.enterprises["C"].name
    assert filing["contractor_enterprise_id"] == world.enterprises["B"].id
    assert filing["hot_work"] is False and filing["hot_work_method"] == ""


def test_reads_follow_the_scope(api: TestClient, as_user: Headers) -> None:
    filing = file(api, as_user)  # 华阳路街道
    url = f"{URL}/{filing['id']}"
    for who in ("ent_a", "admin", "reg_changning", "reg_changning_zj", "reg_huayang"):
        assert api.get(url, headers=as_user(who)).status_code == 200, who
        assert api.get(URL, headers=as_user(who)).json()["total"] == 1, who
    # Another enterprise, the regulator of another city, an inspector of another
    # street, a welder, an installer: as if it did not exist.
    for who in ("safety_b", "reg_zhengzhou", "insp_xinjing", "welder_one", "installer_cn"):
        response = api.get(url, headers=as_user(who))
        assert response.status_code == 404, who
        assert api.get(URL, headers=as_user(who)).json()["total"] == 0, who


def test_list_filters(api: TestClient, as_user: Headers) -> None:
    file(api, as_user)
    file(api, as_user, street="310105102")
    headers = as_user("reg_changning")
    assert api.get(f"{URL}?area=310105102", headers=headers).json()["total"] == 1
    assert api.get(f"{URL}?status=filed", headers=headers).json()["total"] == 2
    assert api.get(f"{URL}?status=closed", headers=headers).json()["total"] == 0
    bad = api.get(f"{URL}?status=done", headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "status"
    # An area outside the caller's reach is not found.
    assert api.get(f"{URL}?area=410100", headers=headers).status_code == 404


def test_the_street_checks_and_closes(api: TestClient, as_user: Headers, db: Session) -> None:
    filing = file(api, as_user)
    checks, close = f"{URL}/{filing['id']}/checks", f"{URL}/{filing['id']}/close"
    street = as_user("reg_huayang")
    # Not closable before a check in order.
    assert api.post(close, headers=street).status_code == 409
    rectify = api.post(checks, json={"result": "需整改", "notes": "未配灭火器"}, headers=street)
    assert rectify.status_code == 201, rectify.text
    assert rectify.json()["status"] == "rectification_required"
    assert api.post(close, headers=street).status_code == 409
    passed = api.post(checks, json={"result": "合格"}, headers=street)
    assert passed.json()["status"] == "checked"
    assert [c["result"] for c in passed.json()["checks"]] == ["需整改", "合格"]
    assert passed.json()["checks"][0]["notes"] == "未配灭火器"
    closed = api.post(close, headers=street)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    late = api.post(checks, json={"result": "合格"}, headers=street)
    assert late.status_code == 409
    assert counts(db) == (1, 2)


def test_who_may_check(api: TestClient, as_user: Headers, db: Session) -> None:
    filing = file(api, as_user)
    checks = f"{URL}/{filing['id']}/checks"
    # The filer and an inspector see it but do not check it.
    for who in ("ent_a",):
        assert api.post(checks, json={"result": "合格"}, headers=as_user(who)).status_code == 403
    # Outside the reach: not found.
    for who in ("reg_zhengzhou", "safety_b"):
        response = api.post(checks, json={"result": "合格"}, headers=as_user(who))
        assert response.status_code == 404, who
    # The district above the street may.
    ok = api.post(checks, json={"result": "合格"}, headers=as_user("reg_changning"))
    assert ok.status_code == 201
    assert counts(db) == (1, 1)


@pytest.mark.parametrize(
    ("check", "field"),
    [
        ({"result": "好"}, "result"),
        ({"result": ""}, "result"),
        ({"result": "需整改"}, "notes"),  # what to rectify must be said
        ({"result": "合格", "notes": "注" * 1025}, "notes"),
        ({"result": "合格", "checked_at": "2026-11-22T10:00:00"}, "checked_at"),
        ({"result": "合格", "checked_at": (NOW + timedelta(hours=1)).isoformat()}, "checked_at"),
        ({"result": "合格", "checked_at": (NOW - timedelta(days=1)).isoformat()}, "checked_at"),
    ],
)
def test_bad_checks_name_the_field(
    api: TestClient, as_user: Headers, db: Session, check: dict[str, Any], field: str
) -> None:
    filing = file(api, as_user)
    response = api.post(f"{URL}/{filing['id']}/checks", json=check, headers=as_user("reg_huayang"))
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert counts(db) == (1, 0)
    assert api.get(f"{URL}/{filing['id']}", headers=as_user("ent_a")).json()["status"] == "filed"


BAD_FILINGS: list[tuple[str, dict[str, Any], str]] = [
    ("owner kind", {"owner_kind": "company"}, "owner_kind"),
    ("no owner name", {"owner_name": ""}, "owner_name"),
    ("no owner phone", {"owner_phone": ""}, "owner_phone"),
    ("bad owner phone", {"owner_phone": "1234"}, "owner_phone"),
    (
        "unknown owner",
        {"owner_kind": "enterprise", "owner_credit_code": "91310105MA1FL99997"},
        "owner_credit_code",
    ),
    (
        "bad owner code",
        {"owner_kind": "enterprise", "owner_credit_code": "12"},
        "owner_credit_code",
    ),
    ("no address", {"address": " "}, "address"),
    ("no street", {"street": ""}, "street"),
    ("unknown street", {"street": "310105999"}, "street"),
    ("district, not street", {"street": "310105"}, "street"),
    ("no description", {"description": ""}, "description"),
    ("long description", {"description": "工" * 513}, "description"),
    ("no start", {"expected_start": None}, "expected_start"),
    ("start past", {"expected_start": (TODAY - timedelta(days=1)).isoformat()}, "expected_start"),
    ("end before start", {"expected_end": TODAY.isoformat()}, "expected_end"),
    ("too long", {"expected_end": (TODAY + timedelta(days=200)).isoformat()}, "expected_end"),
    ("no contractor", {"contractor_name": ""}, "contractor_name"),
    (
        "unknown contractor",
        {"contractor_credit_code": "91310105MA1FL99997"},
        "contractor_credit_code",
    ),
    ("hot work unsaid", {"hot_work": None}, "hot_work"),
    ("no method", {"hot_work_method": ""}, "hot_work_method"),
    ("unknown method", {"hot_work_method": "激光"}, "hot_work_method"),
    ("no contact", {"contact_name": ""}, "contact_name"),
    ("bad contact phone", {"contact_phone": "abc"}, "contact_phone"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_FILINGS, ids=[c[0] for c in BAD_FILINGS])
def test_bad_filings_name_the_field_and_write_nothing(
    api: TestClient,
    as_user: Headers,
    db: Session,
    case: str,
    changes: dict[str, Any],
    field: str,
) -> None:
    response = api.post(URL, json=body(**changes), headers=as_user("ent_a"))
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field], case
    assert counts(db) == (0, 0)


def test_who_may_file(api: TestClient, as_user: Headers, world: World, db: Session) -> None:
    for who in ("reg_huayang", "insp_xinjing", "welder_one", "installer_cn"):
        assert api.post(URL, json=body(), headers=as_user(who)).status_code == 403, who
    missing = api.post(URL, json=body(), headers=as_user("admin"))
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "enterprise_id"
    assert counts(db) == (0, 0)
    ok = api.post(URL, json=body(enterprise_id=world.enterprises["B"].id), headers=as_user("admin"))
    assert ok.status_code == 201 and ok.json()["enterprise_id"] == world.enterprises["B"].id
