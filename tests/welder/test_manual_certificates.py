"""An enterprise enters a certificate the authority's feed does not have yet and
vouches for it provisionally."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.factories import World, id_number

Headers = Callable[[str], dict[str, str]]


def _new_welder(client: TestClient, world: World, headers: dict[str, str]) -> int:
    body = {"name": "赵六", "id_number": id_number(60), "enterprise_id": world.enterprises["A"].id}
    response = client.post("/api/v1/welders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_manual_certificate_is_pending_until_confirmed(
    client: TestClient, world: World, as_user: Headers
) -> None:
    headers = as_user("ent_a")
    welder_id = _new_welder(client, world, headers)
    body = {
        "kind": "special_operation",
        "number": "T" + id_number(60),
        "item": "熔化焊接与热切割作业",
        "issue_date": "2026-11-20",
        "issuing_authority": "上海市应急管理局",
    }
    created = client.post(f"/api/v1/welders/{welder_id}/certificates", json=body, headers=headers)
    assert created.status_code == 201, created.text
    certificate = created.json()
    assert certificate["status"] == "pending_verification"
    assert certificate["source"] == "企业录入"
    # Another enterprise cannot vouch for it, nor even see it.
    other = client.post(
        f"/api/v1/certificates/{certificate['id']}/confirm", headers=as_user("safety_b")
    )
    assert other.status_code == 404
    confirmed = client.post(f"/api/v1/certificates/{certificate['id']}/confirm", headers=headers)
    assert confirmed.status_code == 200
    assert confirmed.json()["confirmed_by_enterprise_id"] == world.enterprises["A"].id
    # A regulator may not vouch: that is the employer's duty.
    assert (
        client.post(
            f"/api/v1/certificates/{certificate['id']}/confirm", headers=as_user("reg_changning")
        ).status_code
        == 403
    )


def test_manual_certificate_of_someone_else_is_refused(
    client: TestClient, world: World, as_user: Headers
) -> None:
    headers = as_user("ent_a")
    welder_id = _new_welder(client, world, headers)
    body = {
        "kind": "special_operation",
        "number": "T" + id_number(61),  # another person's number: 人证不符
        "item": "熔化焊接与热切割作业",
        "issue_date": "2026-11-20",
        "issuing_authority": "上海市应急管理局",
    }
    response = client.post(f"/api/v1/welders/{welder_id}/certificates", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "number"
    body["number"] = "T" + id_number(60)
    body["item"] = "建筑焊工"
    wrong_item = client.post(
        f"/api/v1/welders/{welder_id}/certificates", json=body, headers=headers
    )
    assert wrong_item.status_code == 422
    assert wrong_item.json()["error"]["details"][0]["field"] == "item"


def test_verified_certificates_need_no_confirmation(
    client: TestClient, world: World, as_user: Headers
) -> None:
    listed = client.get("/api/v1/certificates", headers=as_user("ent_a")).json()["items"]
    response = client.post(
        f"/api/v1/certificates/{listed[0]['id']}/confirm", headers=as_user("ent_a")
    )
    assert response.status_code == 422


def test_ending_employment_keeps_history_and_scope(
    client: TestClient, world: World, as_user: Headers
) -> None:
    welder_id = world.welders["A"].id
    enterprise_id = world.enterprises["A"].id
    url = f"/api/v1/welders/{welder_id}/employment/{enterprise_id}/end"
    assert client.post(url, headers=as_user("safety_b")).status_code == 404
    assert client.post(url, headers=as_user("ent_a")).status_code == 204
    # Former employees stay visible to the enterprise as history...
    detail = client.get(f"/api/v1/welders/{welder_id}", headers=as_user("ent_a")).json()
    assert detail["employments"][0]["end_date"] is not None
    # ...and cannot be ended twice.
    assert client.post(url, headers=as_user("ent_a")).status_code == 404
