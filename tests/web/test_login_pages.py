"""Sign-in, sign-out, CSRF and the redirect to the login page."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import Personas
from tests.web.conftest import csrf_of, login
from weldguard.deps import SESSION_COOKIE


def test_pages_redirect_to_login_with_next(client: TestClient, world: object) -> None:
    response = client.get("/enterprises?q=华阳", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/enterprises%3Fq%3D")
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert "登录" in page.text and 'name="csrf_token"' in page.text
    assert 'name="next" value="/enterprises?q=' in page.text


def test_login_sets_session_cookie_and_follows_next(client: TestClient, personas: Personas) -> None:
    response = login(client, personas.reg_changning, next_url="/machines?status=chip_fitted")
    assert response.status_code == 303
    assert response.headers["location"] == "/machines?status=chip_fitted"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # settings.cookie_secure is off in tests
    home = client.get("/")
    assert home.status_code == 200
    assert "reg_changning" in home.text and "监管人员" in home.text
    assert "长宁区" in home.text and "应急管理局" in home.text


def test_next_must_be_a_local_path(client: TestClient, personas: Personas) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        response = login(client, personas.reg_changning, next_url=target)
        assert response.status_code == 303
        assert response.headers["location"] == "/", target


def test_wrong_password_rerenders_and_lockout_is_kept(
    client: TestClient, personas: Personas
) -> None:
    for _ in range(5):
        response = login(client, personas.admin, password="wrong-password")
        assert response.status_code == 401
        assert "用户名或密码错误" in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    # The failure counter was committed although every sign-in failed.
    locked = login(client, personas.admin)
    assert locked.status_code == 423
    assert "锁定" in locked.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_unknown_user_gets_the_same_message(client: TestClient, world: object) -> None:
    response = login(client, "ghost", password="whatever-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text


def test_login_without_csrf_token_is_refused(client: TestClient, personas: Personas) -> None:
    client.get("/login")
    response = client.post(
        "/login",
        data={"username": personas.admin, "password": "password123", "csrf_token": "x" * 43},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "页面已过期" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    client.cookies.clear()
    response = client.post(
        "/login",
        data={"username": personas.admin, "password": "password123"},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_logout_revokes_the_session(client: TestClient, personas: Personas) -> None:
    assert login(client, personas.reg_huayang).status_code == 303
    raw = client.cookies.get(SESSION_COOKIE)
    assert raw
    home = client.get("/")
    # Without the CSRF token, no sign-out.
    refused = client.post("/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403
    response = client.post(
        "/logout", data={"csrf_token": csrf_of(client, home.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    # The old cookie no longer opens anything, even if replayed.
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, raw)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_signed_in_user_visiting_login_goes_home(client: TestClient, personas: Personas) -> None:
    login(client, personas.reg_huayang)
    response = client.get("/login", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_api_stays_json(client: TestClient, world: object) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
