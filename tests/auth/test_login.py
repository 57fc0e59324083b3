import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import Personas, World
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.errors import Conflict


def test_token_login_and_me(client: TestClient, personas: Personas) -> None:
    response = client.post(
        "/api/v1/auth/token", json={"username": personas.reg_changning, "password": "password123"}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["jurisdiction"] == "上海市上海市长宁区"
    assert me.json()["role_label"] == "监管人员"


def test_wrong_password_is_401_with_one_error_format(
    client: TestClient, personas: Personas
) -> None:
    response = client.post(
        "/api/v1/auth/token", json={"username": personas.admin, "password": "nope"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthenticated", "message": "用户名或密码错误"}}


def test_lockout_after_repeated_failures(client: TestClient, personas: Personas) -> None:
    for _ in range(5):
        assert (
            client.post(
                "/api/v1/auth/token", json={"username": personas.admin, "password": "bad"}
            ).status_code
            == 401
        )
    locked = client.post(
        "/api/v1/auth/token", json={"username": personas.admin, "password": "password123"}
    )
    assert locked.status_code == 423
    assert "锁定" in locked.json()["error"]["message"]


def test_unknown_user_and_no_token(client: TestClient, world: object) -> None:
    assert (
        client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"}).status_code
        == 401
    )
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_api_ignores_the_session_cookie(client: TestClient, personas: Personas) -> None:
    token = client.post(
        "/api/v1/auth/token", json={"username": personas.admin, "password": "password123"}
    ).json()["access_token"]
    client.cookies.set("wg_session", token)
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_welder_record_has_one_account(db: Session, settings: Settings, world: World) -> None:
    """A second account for a welder who has one is refused, naming the first: the
    scan page signs in by the welder's phone number, which must name one account."""
    with pytest.raises(Conflict) as refused:
        AuthService(db, settings).create_user(
            NewUser("welder_one_again", "password123", "welder", welder_id=world.welders["A"].id)
        )
    assert "welder_one" in refused.value.message
