"""Helpers for the page tests: a fixed clock and cookie sign-in with CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.factories import NOW, PASSWORD
from weldguard.deps import get_clock
from weldguard.web.csrf import CSRF_COOKIE

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fixed_clock(client: TestClient) -> None:
    """Pages compute certificate status from today: pin it to the world's day."""
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]


def csrf_of(client: TestClient, html: str | None = None) -> str:
    if html:
        match = CSRF_INPUT.search(html)
        if match:
            return match.group(1)
    token = client.cookies.get(CSRF_COOKIE)
    assert token, "no CSRF cookie"
    return token


def login(
    client: TestClient, username: str, password: str = PASSWORD, next_url: str = "/"
) -> httpx.Response:
    """Signs in through the login form as a browser does (switching user if needed)."""
    client.cookies.clear()
    form = client.get("/login")
    assert form.status_code == 200
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "next": next_url,
            "csrf_token": csrf_of(client, form.text),
        },
        follow_redirects=False,
    )


@pytest.fixture
def sign_in(client: TestClient) -> Callable[[str], TestClient]:
    def do(username: str) -> TestClient:
        response = login(client, username)
        assert response.status_code == 303, response.text
        return client

    return do
