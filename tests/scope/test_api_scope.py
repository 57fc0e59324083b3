"""Nobody reaches data outside their scope: every list, detail and write of the
API, for personas at every level. Out-of-scope records answer 404, exactly like
records that do not exist."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.factories import World, enterprise_row, id_number

Headers = Callable[[str], dict[str, str]]

VISIBLE = {
    "admin": {"A", "B", "C", "Z"},
    "reg_changning": {"A", "B", "C"},
    "reg_changning_zj": {"B"},  # 住建 oversees construction sites only
    "reg_huayang": {"A"},
    "reg_zhengzhou": {"Z"},
    "insp_xinjing": {"B"},
    "ent_a": {"A"},
    "safety_b": {"B"},
    "welder_one": {"A"},
    "installer_cn": {"A", "B", "C"},
}
PERSONAS = sorted(VISIBLE)


def _keys_by_id(world: World, kind: str) -> dict[int, str]:
    source = {
        "enterprises": world.enterprises,
        "machines": world.machines,
        "welders": world.welders,
    }[kind]
    return {obj.id: key for key, obj in source.items()}


@pytest.mark.parametrize("username", PERSONAS)
@pytest.mark.parametrize("kind", ["enterprises", "machines", "welders"])
def test_lists_and_details_stay_in_scope(
    client: TestClient, world: World, as_user: Headers, username: str, kind: str
) -> None:
    headers = as_user(username)
    expected = VISIBLE[username]
    if kind == "welders" and username == "welder_one":
        expected = {"A"}  # a welder sees only themself
    listed = client.get(f"/api/v1/{kind}", params={"size": 200}, headers=headers)
    assert listed.status_code == 200, listed.text
    keys = _keys_by_id(world, kind)
    assert {keys[item["id"]] for item in listed.json()["items"]} == expected
    for obj_id, key in keys.items():
        detail = client.get(f"/api/v1/{kind}/{obj_id}", headers=headers)
        if key in expected:
            assert detail.status_code == 200, (key, detail.text)
        else:
            assert detail.status_code == 404, (key, detail.text)
            assert detail.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("username", PERSONAS)
def test_certificates_stay_in_scope(
    client: TestClient, world: World, as_user: Headers, username: str
) -> None:
    headers = as_user(username)
    expected_welders = {"A"} if username == "welder_one" else VISIBLE[username]
    listed = client.get("/api/v1/certificates", params={"size": 200}, headers=headers).json()
    welder_keys = _keys_by_id(world, "welders")
    assert {welder_keys[c["welder_id"]] for c in listed["items"]} == expected_welders
    admin = as_user("admin")
    for certificate in client.get("/api/v1/certificates", headers=admin).json()["items"]:
        status = client.get(
            f"/api/v1/certificates/{certificate['id']}", headers=headers
        ).status_code
        assert status == (200 if welder_keys[certificate["welder_id"]] in expected_welders else 404)


def test_missing_and_foreign_records_answer_alike(
    client: TestClient, world: World, as_user: Headers
) -> None:
    headers = as_user("reg_huayang")
    foreign = client.get(f"/api/v1/enterprises/{world.enterprises['Z'].id}", headers=headers)
    missing = client.get("/api/v1/enterprises/999999", headers=headers)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


@pytest.mark.parametrize(
    ("username", "target", "status"),
    [
        ("ent_a", "A", 201),
        ("ent_a", "B", 404),
        ("safety_b", "Z", 404),
        ("reg_huayang", "A", 201),
        ("reg_huayang", "B", 404),
        ("reg_changning_zj", "A", 404),
        ("insp_xinjing", "B", 403),
        ("welder_one", "A", 403),
        ("installer_cn", "A", 403),
    ],
)
def test_machine_writes_stay_in_scope(
    client: TestClient, world: World, as_user: Headers, username: str, target: str, status: int
) -> None:
    body = {
        "serial_number": f"NEW-{username}",
        "make": "佳士",
        "model": "NB-350",
        "process": "mig_mag",
        "rated_current_a": 350,
        "enterprise_id": world.enterprises[target].id,
    }
    response = client.post("/api/v1/machines", json=body, headers=as_user(username))
    assert response.status_code == status, response.text


def test_retiring_a_foreign_machine_is_404(
    client: TestClient, world: World, as_user: Headers
) -> None:
    response = client.post(
        f"/api/v1/machines/{world.machines['B'].id}/retire", headers=as_user("ent_a")
    )
    assert response.status_code == 404
    own = client.post(f"/api/v1/machines/{world.machines['A'].id}/retire", headers=as_user("ent_a"))
    assert own.status_code == 200
    assert own.json()["status"] == "retired"


def api_row(n: int, name: str, district: str, street: str, **extra: object) -> dict[str, object]:
    row = enterprise_row(n, name, district, street, **extra)
    row.update(involves_welding=True, mobile_work=False)
    return row


def test_regulator_cannot_register_enterprises_outside_area(
    client: TestClient, world: World, as_user: Headers
) -> None:
    row = api_row(50, "郑州新建焊接有限公司", "金水区", "", city="郑州市")
    response = client.post("/api/v1/enterprises", json=row, headers=as_user("reg_changning"))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["reason"] == "所属区域不在您的管辖范围内"
    inside = api_row(51, "长宁新建焊接有限公司", "长宁区", "天山路街道")
    assert (
        client.post(
            "/api/v1/enterprises", json=inside, headers=as_user("reg_changning")
        ).status_code
        == 201
    )
    # An enterprise registered elsewhere cannot be taken over by re-registering it.
    takeover = api_row(4, "郑州中原重工机械有限公司", "长宁区", "天山路街道")
    response = client.post("/api/v1/enterprises", json=takeover, headers=as_user("reg_changning"))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["reason"] == "该统一社会信用代码已由其他辖区登记"


def test_enterprise_users_cannot_edit_the_register(
    client: TestClient, world: World, as_user: Headers
) -> None:
    row = api_row(1, "改名公司", "长宁区", "华阳路街道")
    response = client.put(
        f"/api/v1/enterprises/{world.enterprises['A'].id}", json=row, headers=as_user("ent_a")
    )
    assert response.status_code == 403


def test_foreign_sites_hours_and_employment_are_404(
    client: TestClient, world: World, as_user: Headers
) -> None:
    headers = as_user("ent_a")
    b = world.enterprises["B"].id
    assert client.get(f"/api/v1/enterprises/{b}/sites", headers=headers).status_code == 404
    assert (
        client.post(
            f"/api/v1/enterprises/{b}/sites", json={"name": "车间"}, headers=headers
        ).status_code
        == 404
    )
    hours = [{"days": [1, 2], "open": "09:00", "close": "18:00"}]
    assert (
        client.put(
            f"/api/v1/enterprises/{b}/opening-hours", json=hours, headers=headers
        ).status_code
        == 404
    )
    welder = {"name": "新焊工", "id_number": id_number(90), "enterprise_id": b}
    assert client.post("/api/v1/welders", json=welder, headers=headers).status_code == 404
    welder["enterprise_id"] = world.enterprises["A"].id
    assert client.post("/api/v1/welders", json=welder, headers=headers).status_code == 201


def test_jurisdiction_tree_is_the_callers_subtree(
    client: TestClient, world: World, as_user: Headers
) -> None:
    codes = {
        n["code"]
        for n in client.get("/api/v1/jurisdictions", headers=as_user("reg_changning")).json()
    }
    assert "310105" in codes and "310105102" in codes
    assert not any(code.startswith("41") for code in codes)
    assert client.get("/api/v1/jurisdictions", headers=as_user("ent_a")).json() == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("SN-", {"A", "B", "C", "Z"}),
        ("SN-B", {"B"}),
        ("瑞凌", {"A", "B", "C", "Z"}),
        ("ZX7", {"A", "B", "C", "Z"}),
        ("B-001", set()),
    ],
)
def test_machine_search_is_a_scoped_prefix_search(
    client: TestClient, world: World, as_user: Headers, q: str, expected: set[str]
) -> None:
    keys = _keys_by_id(world, "machines")
    for username in ("admin", "reg_huayang"):
        found = client.get("/api/v1/machines", params={"q": q}, headers=as_user(username)).json()
        assert {keys[m["id"]] for m in found["items"]} == expected & VISIBLE[username]
    code = world.machines["C"].code
    found = client.get("/api/v1/machines", params={"q": code[:6].lower()}, headers=as_user("admin"))
    assert world.machines["C"].id in {m["id"] for m in found.json()["items"]}
